"""`import nbfan as modal`: Modal-style scripts run unchanged through `nbfan run` (and plain
`python` with `app.run()`), and the compatibility names behave as documented."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from clitools import REPO, SCRIPTS, run_nbfan

import nbfan as modal
from nbfan.exception import ExecutionError, InvalidError, NotFoundError

app = modal.App("test-modal-compat")


@pytest.fixture
def scheduler(local_cluster) -> str:
    return local_cluster.scheduler_address


def test_modal_features_script(scheduler):
    secrets = Path(os.environ["NBFAN_HOME"]) / "secrets"  # where the nbfan run subprocess looks
    secrets.mkdir(exist_ok=True)
    (secrets / "test-creds.json").write_text(json.dumps({"DB_PASSWORD": "hunter2"}))
    result = run_nbfan("run", str(SCRIPTS / "modal_features.py"), "--n", "3", "--when", "2025-02-03T04:05:06",
                       "--loud", scheduler=scheduler)
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert out == [
        "ENV ('tiny', 's3cret', 'hunter2')",  # Image.env, Secret.from_dict, Secret.from_name
        "RETRIES 3",  # modal.Retries: failed twice, then succeeded
        "SCHEDULED scheduled",
        "CALL_ID_MATCHES True",  # current_function_call_id() inside == FunctionCall.object_id
        "BATCHED 40 [0, 10, 20]",  # @batched functions called with single inputs
        "GATHER [0, 10, 20]",
        "AIO 50",
        "TIMEOUT caught",
        "STILL RUNNING",
        "OPTIONS 3 1.0 2025-02-03T04:05:06 True",  # async entrypoint, typed options
    ]
    assert result.stderr == "" or "Warning" not in result.stderr, result.stderr


def test_a_modal_15_batch_pipeline_runs_with_only_the_import_changed(scheduler, tmp_path):
    result = run_nbfan("run", str(SCRIPTS / "modal15_batch.py"), scheduler=scheduler,
                       env={"TEST_MOUNT": str(tmp_path / "mnt" / "config")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "SETTING fast",  # a read-only volume mounted from its sub-path
        "READ ONLY refused",
        "INPUTS 20",
        "THIRD 9",
        "SLICE [25, 36, 49]",
        f"ALL {sum(x * x for x in range(20))}",
        "GATHER [285, [0, 1, 4]]",
        "GRAPH fan_out ['fetch']",  # the map made inside fan_out, under it
        "SCORES [3, 6, 9]",
    ]


def test_queue_and_dict_pipeline_script(scheduler):
    result = run_nbfan("run", str(SCRIPTS / "queue_pipeline.py"), "--producers", "3", "--per-producer", "20",
                       scheduler=scheduler)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["PRODUCED 60 TAKEN 60 DISTINCT 60", "CORRECT True"]


def test_class_with_enter_and_methods_script(scheduler):
    result = run_nbfan("run", str(SCRIPTS / "model_class.py"), "--size", "4", scheduler=scheduler)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "REMOTE 20",
        f"MAP {[4 * i for i in range(20)]}",
        "LOADED_ONCE_PER_PROCESS True",  # @enter ran once per worker process, not per input
        "DEFAULT 2",  # modal.parameter default
    ]


def test_cls_locally_and_its_errors():
    @app.cls()
    class Greeter:
        greeting: str = modal.parameter(default="hello")

        @modal.enter()
        def setup(self):
            self.suffix = "!"

        @modal.method()
        def greet(self, name: str) -> str:
            return f"{self.greeting} {name}{self.suffix}"

    assert Greeter(greeting="hi").greet.local("ada") == "hi ada!"
    with pytest.raises(InvalidError, match="unknown parameter"):
        Greeter(colour="red")
    with pytest.raises(AttributeError, match="no @modal.method"):
        Greeter().wave
    with pytest.raises(InvalidError, match="no @modal.method"):
        @app.cls()
        class Empty:
            pass


def test_app_run_context_manager_in_a_plain_python_script(scheduler):
    env = {**os.environ, "NBFAN_SCHEDULER": scheduler, "NBFAN_PROGRESS": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))}
    result = subprocess.run([sys.executable, str(SCRIPTS / "app_run.py")], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "SUM 2025" and lines[1].startswith("PENDING") and lines[2] == "CANCELLED"
    assert "cube.map" in result.stderr  # enable_output() showed the map's progress


# -- the compatibility names, in-process ------------------------------------------------------


@app.function
def touch_later(path: str) -> None:
    import time

    time.sleep(0.3)
    open(path, "w").close()


def test_spawn_runs_even_when_its_handle_is_dropped(client, tmp_path):
    import gc
    import time

    paths = [str(tmp_path / f"spawned-{i}") for i in range(6)]  # more than the 2 workers run at once
    for path in paths:
        touch_later.spawn(path)  # fire and forget, as Modal scripts do
    gc.collect()
    deadline = time.monotonic() + 60
    while not all(os.path.exists(p) for p in paths) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(os.path.exists(p) for p in paths)



def test_public_names_of_modal_scripts_exist():
    for name in ("App", "Stub", "Function", "FunctionCall", "Image", "Secret", "Volume", "Dict", "Queue", "Retries",
                 "Period", "Cron", "concurrent", "batched", "current_function_call_id", "enable_output", "is_local"):
        assert hasattr(modal, name), name
    for name in ("Error", "InvalidError", "NotFoundError", "ExecutionError", "TimeoutError", "FunctionTimeoutError",
                 "InputCancellation", "RemoteError", "AlreadyExistsError", "DeserializationError", "SerializationError",
                 "ConnectionError", "AuthError", "VersionError", "DeprecationError", "InternalError"):
        assert issubclass(getattr(modal.exception, name), Exception), name


@app.function(image=modal.Image.debian_slim().pip_install("nbfan-surely-not-installed-pkg==1.0", "cloudpickle"))
def needs_missing_package() -> int:
    return 1


def test_image_packages_missing_on_workers_are_reported(client):
    with pytest.raises(ExecutionError) as exc:
        needs_missing_package.remote()
    message = str(exc.value)
    assert "nbfan-surely-not-installed-pkg" in message and "cloudpickle" not in message.split("(")[1].split(")")[0]
    assert "NBFAN_IMAGE_INSTALL=1" in message


def test_image_builder_is_immutable_and_collects_env():
    base = modal.Image.debian_slim(python_version="3.12")
    derived = base.pip_install(["numpy", "pandas>=2"]).env({"A": "1"}).run_commands("x").apt_install("git")
    assert base.packages == () and derived.packages == ("numpy", "pandas>=2")
    assert derived.environment == {"A": "1"}
    with pytest.raises(InvalidError):
        base.env({"A": 1})
    with base.imports():
        import surely_not_a_module_nbfan  # noqa: F401  (skipped locally, as in Modal)


def test_secrets(monkeypatch):
    with pytest.raises(NotFoundError, match="secrets/no-such-secret.json"):
        modal.Secret.from_name("no-such-secret")
    monkeypatch.setenv("MY_TOKEN", "t0k")
    assert modal.Secret.from_name("from-env", required_keys=["MY_TOKEN"]).env == {"MY_TOKEN": "t0k"}
    with pytest.raises(InvalidError, match="strings"):
        modal.Secret.from_dict({"N": 1})
    assert "t0k" not in repr(modal.Secret.from_dict({"MY_TOKEN": "t0k"}))


def test_schedules_and_decorators_validate():
    assert repr(modal.Period(days=1)) == "Period(days=1)" and modal.Period(hours=1).seconds == 3600
    assert modal.Cron("0 * * * *", timezone="Europe/Paris").spec() == ("cron", "0 * * * *", "Europe/Paris")
    for bad, why in ((lambda: modal.Period(), "shorter than a second"), (lambda: modal.Period(days=-1), ">= 0"),
                     (lambda: modal.Period(months=1.5), "whole number"), (lambda: modal.Cron("* * *"), "3 fields"),
                     (lambda: modal.Cron("0 25 * * *"), "hour field"), (lambda: modal.Cron("0 0 30 2 *"), "no time"),
                     (lambda: modal.Cron("0 0 * * *", timezone="Mars/Base"), "unknown time zone")):
        with pytest.raises(InvalidError, match=why):
            bad()
    with pytest.raises(InvalidError, match="schedule"):
        modal.App("x").function(schedule="hourly")(lambda: None)
    with pytest.raises(InvalidError):
        modal.concurrent(max_inputs=0)
    with pytest.raises(InvalidError):
        modal.batched(max_batch_size=0)

    @modal.batched(max_batch_size=4)
    def double(xs: list[int]) -> list[int]:
        return [2 * x for x in xs]

    assert double(3) == 6  # one input in, one output out
    assert modal.current_function_call_id() is None and modal.is_local()


def test_a_web_endpoint_is_accepted_and_refuses_to_be_called_before_anything_runs(client) -> None:
    web_app = modal.App("test-web-endpoints")

    @web_app.function()
    @modal.asgi_app()
    def serve():
        return object()

    @web_app.function()
    @modal.fastapi_endpoint(method="POST")
    def hook(payload: dict) -> dict:
        return payload

    @modal.web_server(8000)
    def server():
        pass

    assert web_app.registered_functions.keys() == {"serve", "hook"}
    for call in (lambda: serve.remote(), lambda: hook.remote({}), lambda: hook.spawn({}), lambda: hook.local({}), server):
        with pytest.raises(InvalidError, match="nbfan does not serve web endpoints"):
            call()


@app.cls()
class Tokenizer:
    prefix: str = modal.parameter(default="t")

    @modal.enter()
    def load(self) -> None:
        self.loaded = True

    @modal.method()
    def tokens(self, text: str):
        for word in text.split():
            yield f"{self.prefix}:{word}"

    @modal.method()
    def count(self, text: str) -> int:
        return len(text.split())


def test_generator_methods_of_a_class_stream_their_yields(client) -> None:
    model = Tokenizer(prefix="w")
    assert list(model.tokens.remote_gen("a b c")) == ["w:a", "w:b", "w:c"]
    assert sorted(model.tokens.map(["x y", "z"])) == ["w:x", "w:y", "w:z"]  # a flat map
    assert model.count.remote("a b") == 2
    with pytest.raises(InvalidError, match="generator function"):
        model.tokens.remote("a")


@app.cls()
class Embedder:
    @modal.batched(max_batch_size=8, wait_ms=10)
    def embed(self, texts: list[str]) -> list[int]:
        return [len(t) for t in texts]


def test_a_batched_method_of_a_class_is_a_method(client) -> None:
    model = Embedder()
    assert model.embed.remote("abc") == 3
    assert list(model.embed.map(["a", "bb", "ccc"])) == [1, 2, 3]


@app.function()
@modal.batched(max_batch_size=8, wait_ms=200)
def which_list(xs: list[int]) -> list[tuple[int, str, int]]:
    """Each input with the id and size of the list it was run in."""
    import uuid

    list_id = uuid.uuid4().hex
    return [(x, list_id, len(xs)) for x in xs]


@app.function()
@modal.batched(max_batch_size=4, wait_ms=100)
def fails_on_three(xs: list[int]) -> list[int]:
    if 3 in xs:
        raise ValueError("three")
    return xs


@app.function()
@modal.batched(max_batch_size=4, wait_ms=0)
def wrong_length(xs: list[int]) -> list[int]:
    return xs[:-1]


def test_batched_inputs_of_a_map_run_in_lists(client) -> None:
    out = list(which_list.map(range(40)))
    assert [x for x, _, _ in out] == list(range(40))  # in input order, one output each
    sizes = {list_id: size for _, list_id, size in out}
    assert max(sizes.values()) == 8 and all(size <= 8 for size in sizes.values())
    assert len(sizes) <= 10  # 40 inputs in lists of up to 8: not one call each


def test_batched_calls_from_separate_callers_are_gathered(client) -> None:
    calls = [which_list.spawn(i) for i in range(16)]
    out = [call.get(timeout=60) for call in calls]
    assert [x for x, _, _ in out] == list(range(16))
    assert len({list_id for _, list_id, _ in out}) < 16  # some calls shared a list


def test_a_failing_list_fails_its_inputs_and_a_wrong_length_is_named(client) -> None:
    results = list(fails_on_three.map(range(8), return_exceptions=True))
    failed = [i for i, r in enumerate(results) if isinstance(r, ValueError)]
    assert 3 in failed and all(results[i] == i for i in range(8) if i not in failed)
    with pytest.raises(InvalidError, match="one output per input"):
        wrong_length.remote(1)


lifecycle_app = modal.App("test-cls-lifecycle")
LIFECYCLE_MARKS = tempfile.mkdtemp(prefix="nbfan-lifecycle-")  # a global: it travels with the class


@lifecycle_app.cls(scaledown_window=1)
class Loader:
    @modal.enter(snap=True)
    def load(self) -> None:
        with open(os.path.join(LIFECYCLE_MARKS, "events"), "a") as fh:
            fh.write("enter\n")

    @modal.method()
    def ping(self, x: int) -> int:
        return x + 1

    @modal.exit()
    def release(self) -> None:
        with open(os.path.join(LIFECYCLE_MARKS, "events"), "a") as fh:
            fh.write("exit\n")


@lifecycle_app.cls(startup_timeout=0.5)
class SlowToStart:
    @modal.enter()
    def load(self) -> None:
        while True:  # never ready
            time.sleep(0.01)

    @modal.method()
    def ping(self) -> int:
        return 1


def events() -> list[str]:
    try:
        with open(os.path.join(LIFECYCLE_MARKS, "events")) as fh:
            return fh.read().split()
    except FileNotFoundError:
        return []


def test_exit_runs_when_an_idle_instance_is_retired_and_enter_has_a_deadline(client):
    from waiting import wait_until

    assert Loader().ping.remote(1) == 2
    wait_until(lambda: events() == ["enter", "exit"], timeout=30, what="the idle instance to be retired")
    assert Loader().ping.remote(2) == 3  # built again
    wait_until(lambda: events() == ["enter", "exit", "enter", "exit"], timeout=30, what="the second retirement")
    with pytest.raises(modal.exception.FunctionTimeoutError, match="@enter of SlowToStart ran past its startup_timeout"):
        SlowToStart().ping.remote()
    with pytest.raises(InvalidError, match="startup_timeout"):
        modal.App("x").cls(startup_timeout=-1)(Loader)
