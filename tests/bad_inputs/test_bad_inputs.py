"""The bad-input catalogue: each case must fail early with an nbfan error that says what was
wrong and how to fix it, and leave nothing running on the cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from remote_tb import assert_reads_like_local

import nbfan
from nbfan.exception import (
    ClusterConnectionError,
    InvalidError,
    NotFoundError,
    RemoteError,
    SerializationError,
)

app = nbfan.App("bad-inputs")


@app.function
def add(x: int, y: int) -> int:
    return x + y


@app.function
def ident(x: Any) -> Any:
    return x


@app.function
def returns_a_lock(x: int) -> Any:
    return threading.Lock()


class LockedError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()  # makes the exception unpicklable


@app.function
def raises_unpicklable(x: int) -> None:
    raise LockedError(f"bad thing {x}")


@app.function
def count_bytes(b: bytes) -> int:
    return len(b)


@app.generator
def gen(n: int) -> Iterator[int]:
    yield from range(n)


_LOCK = threading.Lock()


def _closure_over_a_lock(x: int) -> bool:
    return _LOCK.locked() or x > 0


async def _agen() -> Any:
    yield 1


def nbfan_tasks(client: Any) -> int:
    return client.run_on_scheduler(
        lambda dask_scheduler: sum(1 for k in dask_scheduler.tasks if str(k).startswith("nbfan-"))
    )


@pytest.fixture
def clean(client: Any) -> Iterator[Any]:
    """The session cluster; after the case, no nbfan task of it may remain there."""
    before = nbfan_tasks(client)
    yield client
    deadline = time.monotonic() + 10
    while nbfan_tasks(client) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    left = client.run_on_scheduler(
        lambda dask_scheduler: {str(k): (ts.state, [c.client_key for c in ts.who_wants])
                                for k, ts in dask_scheduler.tasks.items() if str(k).startswith("nbfan-")}
    )
    assert nbfan_tasks(client) <= before, f"the bad call left tasks on the scheduler: {left}"


def expect(exc_type: type[BaseException], call: Callable[[], Any], *says: str) -> BaseException:
    """`call()` raises `exc_type` (an nbfan error) whose message holds every fragment in `says`."""
    with pytest.raises(exc_type) as info:
        call()
    assert isinstance(info.value, nbfan.exception.Error), f"not an nbfan error: {info.value!r}"
    text = str(info.value)
    for fragment in says:
        assert fragment.lower() in text.lower(), f"{fragment!r} not in {text!r}"
    return info.value


# -- options: refused at the decorator line, before anything runs -------------------------------

OPTION_CASES = [
    ({"timeout": -1}, ["timeout=-1", "greater than 0"]),
    ({"timeout": "10"}, ["timeout='10'", "number"]),
    ({"retries": -1}, ["retries=-1", "int >= 0"]),
    ({"retries": 1.5}, ["retries=1.5", "nbfan.Retries"]),
    ({"concurrency_limit": 0}, ["concurrency_limit=0", ">= 1"]),
    ({"concurrency_limit": 2, "max_containers": 3}, ["disagree", "give one"]),
    ({"cpu": 0}, ["cpu=0", "greater than 0"]),
    ({"cpu": "two"}, ["cpu='two'", "number of cores"]),
    ({"memory": "lots"}, ["memory='lots'", "4GiB"]),
    ({"gpu": "A100:zero"}, ["gpu='A100:zero'", "whole number", '"H100:2"']),
    ({"gpu": []}, ["empty", "fallbacks"]),
    ({"gpu": 1.5}, ["gpu=1.5", "bool, int or str"]),
    ({"gpus": 1}, ["unknown option", "gpus", "valid options are"]),
    ({"volumes": {"data": "x"}}, ["'data'", "absolute"]),
    ({"secrets": "API_KEY"}, ["secrets='API_KEY'", "give a list"]),
]


@pytest.mark.parametrize("options,says", OPTION_CASES, ids=[next(iter(o)) + str(i) for i, (o, _) in enumerate(OPTION_CASES)])
def test_bad_option_is_refused_at_decoration(options: dict[str, Any], says: list[str]) -> None:
    expect(InvalidError, lambda: app.function(**options), *says)


def test_bad_retries_object() -> None:
    expect(InvalidError, lambda: nbfan.Retries(max_retries=2, backoff_coefficient=0.5), "backoff_coefficient", ">= 1")


def test_decorating_a_class_or_a_value() -> None:
    expect(InvalidError, lambda: app.function(int), "decorates a function")
    expect(InvalidError, lambda: app.generator(lambda x: x), "generator functions", "yield")


def test_empty_app_name() -> None:
    expect(InvalidError, lambda: nbfan.App(""), "non-empty string")


# -- map inputs ----------------------------------------------------------------------------------


def test_non_iterable_map_input(clean: Any) -> None:
    expect(InvalidError, lambda: ident.map(5), "int", "not iterable", "pass a list")


def test_string_as_map_input(clean: Any) -> None:
    expect(InvalidError, lambda: ident.map("abc"), "str", "characters", "wrap it in a list")


def test_map_with_no_iterables(clean: Any) -> None:
    expect(InvalidError, lambda: ident.map(), "at least one iterable")


def test_async_iterable_to_the_sync_map(clean: Any) -> None:
    expect(InvalidError, lambda: ident.map(_agen()), "async iterable", ".map.aio")


def test_async_iterable_to_the_sync_for_each(clean: Any) -> None:
    expect(InvalidError, lambda: ident.for_each(_agen()), "async iterable", ".for_each.aio")


def test_kwargs_not_a_dict(clean: Any) -> None:
    expect(InvalidError, lambda: add.map([1], kwargs=[("y", 1)]), "kwargs=", "dict", "list")


def test_kwargs_with_non_string_keys(clean: Any) -> None:
    expect(InvalidError, lambda: add.map([1], kwargs={1: 2}), "kwargs=", "dict of keyword arguments")


def test_map_with_too_few_iterables_fails_before_running(clean: Any) -> None:
    expect(InvalidError, lambda: list(add.map([1, 2, 3])), "input 0 does not fit add(",
           "missing a required argument: 'y'", "one iterable per positional parameter")


def test_starmap_items_that_are_not_tuples(clean: Any) -> None:
    expect(InvalidError, lambda: list(add.starmap([1, 2])), "input 0 is a int", "tuples", "use .map()")


def test_starmap_tuples_of_the_wrong_length(clean: Any) -> None:
    expect(InvalidError, lambda: list(add.starmap([(1, 2, 3)])), "input 0 does not fit", "too many positional",
           "each tuple holds the positional arguments of one call")


def test_starmap_tuples_mismatched_later_name_their_input(clean: Any) -> None:
    results = list(add.starmap([(1, 2), (3,), (5, 6)], return_exceptions=True))
    assert results[0] == 3 and results[2] == 11
    assert isinstance(results[1], TypeError) and "input 1" in " ".join(getattr(results[1], "__notes__", []))


def test_spawn_map_of_a_non_iterable(clean: Any) -> None:
    expect(InvalidError, lambda: ident.spawn_map(42), "not iterable")


def test_remote_on_a_generator_and_remote_gen_on_a_plain_function(clean: Any) -> None:
    expect(InvalidError, lambda: gen.remote(3), "generator function", ".remote_gen()")
    expect(InvalidError, lambda: list(ident.remote_gen(3)), "not a generator function", ".remote()")


# -- serialization -------------------------------------------------------------------------------


def test_unpicklable_function(clean: Any) -> None:
    fn = app.function(_closure_over_a_lock)
    expect(SerializationError, lambda: fn.remote(1), "_closure_over_a_lock", "could not be serialized",
           "inside the function")


def test_unpicklable_argument(clean: Any) -> None:
    expect(SerializationError, lambda: ident.remote(threading.Lock()), "argument 0", "lock", "picklable values")


def test_unpicklable_argument_in_a_map_names_its_input(clean: Any) -> None:
    inputs = [1, 2, 3, threading.Lock(), 5]
    expect(SerializationError, lambda: list(ident.map(inputs)), "input 3", "argument 0", "picklable")


def test_coroutine_as_an_argument(clean: Any) -> None:
    async def work() -> int:
        return 1

    coro = work()
    try:
        expect(SerializationError, lambda: ident.remote(coro), "argument 0", "coroutine")
    finally:
        coro.close()


def test_unpicklable_result(clean: Any) -> None:
    expect(SerializationError, lambda: returns_a_lock.remote(1), "returned a _thread.lock",
           "could not be serialized", "return picklable values")
    results = list(returns_a_lock.map([1, 2], return_exceptions=True))
    assert all(isinstance(r, SerializationError) for r in results)


def test_unpicklable_exception_arrives_as_text(clean: Any) -> None:
    error = expect(RemoteError, lambda: raises_unpicklable.remote(7), "LockedError", "bad thing 7")
    assert 'raise LockedError(f"bad thing {x}")' in error.remote_traceback  # type: ignore[attr-defined]
    assert_reads_like_local(error, "raises_unpicklable.remote(7)", 'raise LockedError(f"bad thing {x}")')


# -- resources -----------------------------------------------------------------------------------


def test_unknown_gpu_model(clean: Any) -> None:
    fn = ident.with_options(gpu="B200")
    expect(InvalidError, lambda: fn.remote(1), "B200", "GPU")


def test_impossible_cpu_request(clean: Any) -> None:
    fn = ident.with_options(cpu=512)
    expect(InvalidError, lambda: list(fn.map([1, 2])), "cpu", "512")


def test_impossible_memory_request(clean: Any) -> None:
    fn = ident.with_options(memory="64TiB")
    expect(InvalidError, lambda: fn.remote(1), "memory")


# -- huge arguments ------------------------------------------------------------------------------


def test_100mb_argument_is_shipped(clean: Any) -> None:
    """Measured: a 100 MiB argument takes about 2 s through a local cluster; under the limit it ships."""
    data = b"\0" * (100 * 2**20)
    assert count_bytes.remote(data) == len(data)


def test_argument_over_the_limit_is_refused_with_a_way_out(clean: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nbfan.config, "max_input_bytes", 50 * 2**20)
    data = b"\0" * (100 * 2**20)
    expect(InvalidError, lambda: count_bytes.remote(data), "100 MiB", "max_input_bytes", "nbfan.Volume")
    expect(InvalidError, lambda: list(count_bytes.map([b"ok", data])), "input 1", "max_input_bytes")


# -- connecting ----------------------------------------------------------------------------------


@pytest.mark.parametrize("target,says", [
    ("not an address", ["give a scheduler address"]),
    (42, ["scheduler address", "int"]),
])
def test_connect_to_garbage(target: Any, says: list[str]) -> None:
    expect(InvalidError, lambda: nbfan.connect(target), *says)


def test_connect_to_a_port_nobody_listens_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nbfan.config, "connect_timeout", 3.0)
    started = time.monotonic()
    expect(ClusterConnectionError, lambda: nbfan.connect("tcp://127.0.0.1:9"), "could not reach",
           "tcp://127.0.0.1:9", "check that the scheduler is running")
    assert time.monotonic() - started < 30


def test_connect_to_an_unknown_protocol() -> None:
    expect(InvalidError, lambda: nbfan.connect("bogus://127.0.0.1:1"), "bogus://127.0.0.1:1", "unknown address scheme",
           "tcp://127.0.0.1:8786")


# -- state under NBFAN_HOME ------------------------------------------------------------------------

STATUS_AND_CONNECT = """
import warnings, nbfan
from nbfan.cluster import current_connection
from nbfan.cli.main import main
print("STATUS_RC", main(["cluster", "status"]))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    nbfan.connect()
print("SOURCE", current_connection().source)
print("WARNINGS", [str(w.message) for w in caught])
nbfan.disconnect()
"""


@pytest.mark.parametrize("content", [
    "{not json",
    json.dumps(["tcp://127.0.0.1:1", 1]),
    json.dumps({"address": "tcp://127.0.0.1:1", "pid": "abc"}),
    json.dumps({"address": 7, "pid": 1}),
    json.dumps({"address": "tcp://127.0.0.1:1", "pid": 1, "surprise": True}),
], ids=["not-json", "a-list", "pid-not-int", "address-not-str", "unknown-key"])
def test_corrupt_state_file(tmp_path: Path, content: str) -> None:
    """Neither `nbfan cluster status` nor a process resolving its cluster crashes or hangs."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "cluster.json").write_text(content)
    env = {**os.environ, "NBFAN_HOME": str(home), "NBFAN_PROGRESS": "0"}
    env.pop("NBFAN_SCHEDULER", None)
    result = subprocess.run([sys.executable, "-c", STATUS_AND_CONNECT], capture_output=True, text=True,
                            env=env, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "STATUS_RC 1" in result.stdout and "nbfan cluster up" in result.stderr
    assert "SOURCE embedded" in result.stdout


def test_tls_state_with_missing_certificates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbfan.cluster.tls import security_from_files

    missing = {"ca_file": str(tmp_path / "ca.pem"), "cert": str(tmp_path / "c.pem"), "key": str(tmp_path / "k.pem")}
    expect(InvalidError, lambda: security_from_files(missing), "missing", "ca.pem", "nbfan cluster up --tls")


# -- names, lookups, the CLI ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "", "/etc"])
def test_volume_names_cannot_escape(name: str) -> None:
    expect(InvalidError, lambda: nbfan.Volume.from_name(name, create_if_missing=True), "invalid Volume name",
           "no '/'")


@pytest.mark.parametrize("cls", [nbfan.Dict, nbfan.Queue])
def test_dict_and_queue_names_are_checked(cls: Any) -> None:
    expect(InvalidError, lambda: cls.from_name("x/../y", create_if_missing=True), "name", "no '/'")


def test_unknown_from_name(clean: Any) -> None:
    expect(NotFoundError, lambda: nbfan.Function.from_name("no-such-app", "f"), "no-such-app", "deployed")


def test_unknown_function_call_id(clean: Any) -> None:
    expect(NotFoundError, lambda: nbfan.FunctionCall.from_id("0123456789abcdef0123"), "no call", "0123456789abcdef0123")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NBFAN_PROGRESS": "0"}
    return subprocess.run([sys.executable, "-m", "nbfan.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def test_nbfan_run_missing_file(tmp_path: Path) -> None:
    result = _cli("run", "nope.py", cwd=tmp_path)
    assert result.returncode != 0 and "nope.py" in result.stderr and "no such file" in result.stderr


def test_nbfan_run_unknown_entrypoint_option(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text(
        "import nbfan\napp = nbfan.App('job')\n\n@app.local_entrypoint()\ndef main(n: int = 1):\n    print('ran', n)\n"
    )
    result = _cli("run", "job.py", "--m", "3", cwd=tmp_path)
    assert result.returncode != 0 and "--m" in result.stderr and "ran" not in result.stdout
    bad_type = _cli("run", "job.py", "--n", "three", cwd=tmp_path)
    assert bad_type.returncode != 0 and "three" in bad_type.stderr and "ran" not in bad_type.stdout


@pytest.mark.parametrize("workers,says", [("-1", "int >= 0"), ("0", "no workers would run nothing")])
def test_cluster_up_with_a_bad_worker_count(tmp_path: Path, workers: str, says: str) -> None:
    env = {**os.environ, "NBFAN_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-m", "nbfan.cli", "cluster", "up", "--workers", workers],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1 and says in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "home" / "cluster.json").exists()


# -- the async twins -----------------------------------------------------------------------------


def test_async_map_of_a_non_iterable(clean: Any) -> None:
    import asyncio

    async def consume() -> list[Any]:
        return [r async for r in ident.map.aio(5)]

    expect(InvalidError, lambda: asyncio.run(consume()), "not iterable")


def test_async_remote_with_an_unpicklable_argument(clean: Any) -> None:
    import asyncio

    expect(SerializationError, lambda: asyncio.run(ident.remote.aio(threading.Lock())), "argument 0", "lock")


def _injects_a_session(fn: Callable[..., Any]) -> Callable[..., Any]:
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn("session", *args, **kwargs)

    return wrapper


@app.function
@_injects_a_session
def uses_session(session: str, x: int) -> str:
    return f"{session}:{x}"


def test_signature_check_does_not_refuse_a_decorated_function(clean: Any) -> None:
    """The early check binds against what is really called (the wrapper), not the wrapped function."""
    assert list(uses_session.map([1, 2])) == ["session:1", "session:2"]


def _inc(x: int) -> int:
    return x + 1


def test_tasks_arriving_after_their_call_failed_are_forgotten(clean: Any) -> None:
    """A cancel (a request) can overtake the tasks its caller had just submitted (their graph is
    still being unpacked on the scheduler): tasks of a call that already ended must not stay."""
    from waiting import wait_until

    from nbfan.engine import call_events
    from nbfan.keys import new_call_id, task_key

    call_id = new_call_id()
    call_events.call_started(clean, call_id, ident, "map")
    call_events.call_ended(clean, call_id, "failed")
    late = clean.submit(_inc, 1, key=task_key(call_id, 0, 1), pure=False)
    wait_until(late.cancelled, timeout=30, what="the late task to be forgotten")
