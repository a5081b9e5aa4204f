"""What functions print and log reaches the process that called them, live and once, and is
kept per call on the cluster (`nbfan logs`, `.logs()`, `.failures()`), on nbfan's local
cluster. Callers are subprocess scripts whose stdout and stderr are asserted line by line (the
workers' own stdout goes to the test process, not to the scripts)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections import Counter
from typing import Any

import pytest
from conftest import REPO, run_py
from waiting import wait_until

import nbfan
from nbfan.scheduler.output import BURST, RATE

app = nbfan.App("test-output")


@app.function
def noisy(x: int) -> int:
    print(f"kept out {x}")
    return x


@app.function(retries=1)
def fails_on_odd(x: int) -> int:
    if x % 2:
        raise ValueError(f"odd input {x}")
    print(f"even {x}")
    return x


@app.function
def gen_fails(n: int) -> Any:
    print(f"gen {n}")
    yield n
    raise RuntimeError(f"gen {n} failed")


def script(body: str, address: str, *, env: dict[str, str] | None = None, timeout: float = 180) -> Any:
    """Run a caller script against the shared cluster; its completed process."""
    code = textwrap.dedent(body)
    result = run_py(code, env={"NBFAN_SCHEDULER": address, "NBFAN_PROGRESS": "0", **(env or {})}, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result


EVERY_KIND = """
import asyncio, logging, sys
import nbfan

app = nbfan.App("output-kinds")

@app.function
def f(tag, x):
    print(f"{tag} out {x}")
    print(f"{tag} err {x}", file=sys.stderr)
    logging.warning("%s log %d", tag, x)
    return x

@app.function(timeout=60)
def isolated(x):
    print(f"isolated out {x}")
    logging.warning("isolated log %d", x)
    return x

@app.function(secrets=[nbfan.Secret.from_dict({"OUTPUT_TOKEN": "t"})])
def with_secret(x):
    print(f"secret out {x}")
    return x

@app.function
def gen(n):
    for i in range(n):
        print(f"gen out {i}")
        yield i

@app.function
def parent(x):
    print(f"parent out {x}")
    return f.remote("child", x) + sum(f.map(["grandchild"] * 2, [x, x + 10]))

@app.cls()
class Model:
    @nbfan.method()
    def predict(self, x):
        print(f"method out {x}")
        return x

async def aio():
    await f.remote.aio("aio-remote", 0)
    return [r async for r in f.map.aio(["aio-map"] * 2, range(2))]

if __name__ == "__main__":
    list(f.map(["map"] * 3, range(3)))
    list(f.starmap([("starmap", 0), ("starmap", 1)]))
    f.for_each(["for_each"] * 2, range(2))
    f.remote("remote", 0)
    f.spawn("spawn", 0).get()
    list(gen.remote_gen(2))
    list(isolated.map(range(2)))
    with_secret.remote(0)
    parent.remote(1)
    Model().predict.remote(5)
    asyncio.run(aio())
    print("script done")
"""


def expected_every_kind() -> tuple[list[str], list[str]]:
    out: list[str] = []
    err: list[str] = []
    plain = [("map", range(3)), ("starmap", range(2)), ("for_each", range(2)), ("remote", [0]), ("spawn", [0]),
             ("child", [1]), ("grandchild", [1, 11]), ("aio-remote", [0]), ("aio-map", range(2))]
    for tag, xs in plain:
        for x in xs:
            out.append(f"{tag} out {x}")
            err += [f"{tag} err {x}", f"WARNING:root:{tag} log {x}"]
    out += ["gen out 0", "gen out 1", "isolated out 0", "isolated out 1", "secret out 0", "parent out 1",
            "method out 5", "script done"]
    err += ["WARNING:root:isolated log 0", "WARNING:root:isolated log 1"]
    return sorted(out), sorted(err)


def test_every_kind_of_call_shows_its_output_to_the_caller_each_line_once(local_cluster):
    result = script(EVERY_KIND, local_cluster.scheduler_address)
    out, err = expected_every_kind()
    assert sorted(result.stdout.splitlines()) == out
    assert sorted(result.stderr.splitlines()) == err


def test_lines_of_a_map_come_before_its_results_and_the_output_of_a_call_is_in_order(local_cluster):
    body = """
    import nbfan
    app = nbfan.App("output-order")

    @app.function
    def f(x):
        for i in range(3):
            print(f"{x}.{i}")
        return x

    for x in f.map(range(4), order_outputs=False):
        print(f"result {x}")
    """
    lines = script(body, local_cluster.scheduler_address).stdout.splitlines()
    for x in range(4):
        assert lines.index(f"{x}.0") < lines.index(f"{x}.1") < lines.index(f"{x}.2") < lines.index(f"result {x}")
    assert Counter(lines) == Counter([f"{x}.{i}" for x in range(4) for i in range(3)] + [f"result {x}" for x in range(4)])


TWO_CLIENTS = """
import sys, time
import nbfan
app = nbfan.App("output-clients")
me = sys.argv[1]

@app.function
def f(who, x):
    time.sleep(0.01)
    print(f"{who} {x}")
    return x

assert sum(f.map([me] * 40, range(40))) == sum(range(40))
"""


def test_two_clients_at_once_each_see_only_their_own_output(local_cluster, tmp_path):
    path = tmp_path / "caller.py"
    path.write_text(TWO_CLIENTS)
    env = {"NBFAN_SCHEDULER": local_cluster.scheduler_address, "NBFAN_PROGRESS": "0", "PYTHONPATH": str(REPO)}
    import os

    procs = {who: subprocess.Popen([sys.executable, str(path), who], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, env={**os.environ, **env}) for who in ("alice", "bob")}
    for who, proc in procs.items():
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        assert sorted(out.splitlines()) == sorted(f"{who} {x}" for x in range(40))


def test_threads_an_input_starts_are_not_its_output(local_cluster):
    body = """
    import threading, sys
    import nbfan
    app = nbfan.App("output-threads")

    @app.function
    def f(x):
        t = threading.Thread(target=lambda: print("from a thread of the input"))
        t.start(); t.join()
        print(f"input {x}")
        return x

    f.remote(1)
    """
    assert script(body, local_cluster.scheduler_address).stdout.splitlines() == ["input 1"]


def test_a_tqdm_bar_in_a_function_is_drawn_live_under_the_caller_and_kept_as_one_line(client, local_cluster):
    body = """
    import sys, threading, time
    import nbfan
    from tqdm import tqdm
    app = nbfan.App("output-tqdm")

    @app.function
    def train(steps, marker):
        for _ in tqdm(range(steps), mininterval=0, ncols=60, desc="epoch"):
            time.sleep(0.02)
        while not os.path.exists(marker):  # held until the caller saw a state of the bar mid-way
            time.sleep(0.01)
        return steps

    import json, os, tempfile
    marker = os.path.join(tempfile.mkdtemp(), "seen")
    seen = threading.Event()
    raw = []  # what reached this process's stderr, as written (a pipe read as text turns \\r into \\n)

    class Watch:
        def write(self, text):
            raw.append(text)
            if "epoch" in text and "\\n" not in text:
                seen.set()  # a progress state, drawn in place (no newline)
            return len(text)

        def flush(self):
            pass

        def isatty(self):
            return False

    sys.stderr = Watch()
    call = train.spawn(40, marker)
    assert seen.wait(60), "no progress was drawn while the input ran"
    open(marker, "w").close()
    assert call.get() == 40
    sys.stderr = sys.__stderr__
    print(json.dumps({"call_id": call.object_id, "stderr": "".join(raw)}))
    """
    import json

    result = json.loads(script(body, local_cluster.scheduler_address).stdout.splitlines()[-1])
    stderr = result["stderr"]
    assert stderr.endswith("\n") and stderr.count("\n") == 1, repr(stderr)  # one line in the end...
    drawn = stderr.rstrip("\n").split("\r")
    assert len(drawn) >= 2 and all(state.startswith("epoch: ") for state in drawn), repr(stderr)  # ...drawn over
    final = drawn[-1]
    assert final.startswith("epoch: 100%") and "40/40" in final
    from nbfan.api.calls import FunctionCall

    (kept,) = FunctionCall.from_id(result["call_id"]).logs()
    assert kept.text == final and kept.stream == "stderr"


def test_off_switches_leave_output_to_the_workers(local_cluster):
    body = """
    import nbfan
    app = nbfan.App("output-off")

    @app.function
    def f(x):
        print(f"printed {x}")
        return x

    @app.function(forward_output=False)
    def quiet(x):
        print(f"quiet {x}")
        return x

    @app.function(forward_output=False)
    def quiet_parent(x):
        return f.remote(x)

    list(f.map(range(2)))
    quiet.remote(0)
    quiet_parent.remote(100)  # the calls made inside it are kept, not shown
    print("done")
    """
    assert script(body, local_cluster.scheduler_address, env={"NBFAN_FORWARD_OUTPUT": "0"}).stdout == "done\n"
    shown = script(body, local_cluster.scheduler_address).stdout.splitlines()
    assert sorted(shown) == ["done", "printed 0", "printed 1"]


def test_forward_output_must_be_a_bool():
    with pytest.raises(nbfan.exception.InvalidError, match="forward_output"):
        app.function(forward_output="no")(lambda: None)


def test_a_flood_is_rate_limited_and_kept_whole(local_cluster):
    body = """
    import time
    import nbfan
    from nbfan.api.queries import calls_snapshot
    app = nbfan.App("output-flood")

    @app.function
    def flood(x):
        for i in range(1000):
            print(f"line {x} {i}")
        return x

    started = time.monotonic()
    assert sorted(flood.map(range(100))) == list(range(100))
    print(f"elapsed {time.monotonic() - started:.3f}")
    """
    result = script(body, local_cluster.scheduler_address)
    lines = result.stdout.splitlines()
    elapsed = float(lines[-1].split()[1])
    shown = lines[:-1]
    assert len(shown) == len(set(shown))  # each line once
    assert 0 < len(shown) <= BURST + RATE * (elapsed + 2)
    assert "lines held back" in result.stderr and "nbfan logs " in result.stderr
    call_id = result.stderr.split("nbfan logs ")[1].split("`")[0]
    from nbfan.engine.output import read_logs

    with nbfan.connect(local_cluster.scheduler_address):
        kept = read_logs(nbfan.cluster.get_client(), call_id)
    assert len(kept) == 100_000
    assert Counter(line.text for line in kept) == Counter(f"line {x} {i}" for x in range(100) for i in range(1000))


def test_kept_output_and_failures_read_back_from_another_process(client, local_cluster):
    call = noisy.spawn(3)
    assert call.get() == 3
    (line,) = call.logs()
    assert (line.input, line.stream, line.text) == (3 - 3, "stdout", "kept out 3")
    assert line.worker in client.scheduler_info()["workers"]
    assert abs(line.time - time.time()) < 60

    results = list(fails_on_odd.map(range(4), return_exceptions=True))
    assert [type(r) for r in results] == [int, ValueError, int, ValueError]
    from nbfan.api.queries import calls_snapshot

    map_id = next(c["call_id"] for c in calls_snapshot(client)["calls"] if c["function"] == "fails_on_odd")
    cli = subprocess.run([sys.executable, "-m", "nbfan.cli", "logs", "--failed", map_id], capture_output=True, text=True,
                         env=_cli_env(local_cluster), timeout=60)
    assert cli.returncode == 0, cli.stderr
    headers = [line for line in cli.stdout.splitlines() if line.startswith("input ")]
    assert len(headers) == 2
    assert headers[0].startswith("input 1: builtins.ValueError: odd input 1  (worker tcp://")
    assert headers[0].endswith("2 attempts)")
    assert "raise ValueError" in cli.stdout
    cli = subprocess.run([sys.executable, "-m", "nbfan.cli", "logs", "--raw", "--input", "2", map_id],
                         capture_output=True, text=True, env=_cli_env(local_cluster), timeout=60)
    assert cli.stdout.splitlines() == ["even 2"]

    with pytest.raises(RuntimeError, match="gen 5 failed"):
        list(gen_fails.remote_gen(5))
    gen_id = next(c["call_id"] for c in calls_snapshot(client)["calls"] if c["function"] == "gen_fails")
    from nbfan.engine.output import read_failures, read_logs

    (failure,) = read_failures(client, gen_id)
    assert (failure.input, failure.exc_type, failure.message) == (0, "builtins.RuntimeError", "gen 5 failed")
    assert [line.text for line in read_logs(client, gen_id)] == ["gen 5"]


def _cli_env(local_cluster: Any) -> dict[str, str]:
    import os

    return {**os.environ, "NBFAN_SCHEDULER": local_cluster.scheduler_address, "PYTHONPATH": str(REPO)}


def test_a_detached_spawn_map_keeps_its_output_and_failures(client, local_cluster):
    body = """
    import sys
    import nbfan
    app = nbfan.App("output-detached")

    @app.function
    def f(x):
        print(f"detached {x}")
        if x == 4:
            raise KeyError("four")
        return x

    print("ID", f.spawn_map(range(6)).object_id)
    """
    # Lines the map prints while this script is still attached reach its stdout too.
    out = script(body, local_cluster.scheduler_address).stdout
    map_id = next(line.split()[1] for line in out.splitlines() if line.startswith("ID "))
    from nbfan.engine.spawn_map import MapCall

    handle = MapCall.from_id(map_id)
    wait_until(lambda: handle.progress().state != "running", timeout=60, what="the detached map to end")
    assert sorted(line.text for line in handle.logs()) == [f"detached {x}" for x in range(6)]
    assert {line.input: line.text for line in handle.logs()} == {x: f"detached {x}" for x in range(6)}
    (failure,) = handle.failures()
    assert (failure.input, failure.exc_type, failure.attempts) == (4, "builtins.KeyError", 1)
    assert failure.message == "'four'"
    assert 'line 10, in f' in failure.traceback and failure.traceback.endswith("KeyError: 'four'\n")
    follow = subprocess.run([sys.executable, "-m", "nbfan.cli", "logs", "--follow", "--raw", map_id], capture_output=True,
                            text=True, env=_cli_env(local_cluster), timeout=60)
    assert sorted(follow.stdout.splitlines()) == [f"detached {x}" for x in range(6)]


def test_a_notebook_cell_shows_what_its_map_printed(local_cluster, tmp_path):
    import os

    import nbformat
    from nbclient import NotebookClient

    from tests.integration.test_kernel import kernel_env

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import logging, sys\nimport nbfan\napp = nbfan.App('output-kernel')\n\n"
            "@app.function\ndef f(x):\n    print(f'cell out {x}')\n    print(f'cell err {x}', file=sys.stderr)\n"
            "    logging.warning('cell log %d', x)\n    return x\n"
        ),
        nbformat.v4.new_code_cell("sum(f.map(range(4)))"),
        nbformat.v4.new_code_cell("f.remote(9)"),
    ]
    NotebookClient(nb, kernel_name="nbfan", timeout=180, startup_timeout=60,
                   resources={"metadata": {"path": str(tmp_path)}}).execute(
        env={**os.environ, **kernel_env(local_cluster.scheduler_address)})

    def streams(cell: Any) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {"stdout": [], "stderr": []}
        for out in cell.outputs:
            if out.output_type == "stream":
                found[out.name] += out.text.splitlines()
        return found

    mapped, single = streams(nb.cells[1]), streams(nb.cells[2])
    assert sorted(mapped["stdout"]) == [f"cell out {x}" for x in range(4)]
    assert sorted(mapped["stderr"]) == sorted([f"cell err {x}" for x in range(4)] +
                                              [f"WARNING:root:cell log {x}" for x in range(4)])
    assert single == {"stdout": ["cell out 9"], "stderr": ["cell err 9", "WARNING:root:cell log 9"]}


def test_every_kind_of_call_shows_its_output_on_a_stock_dask_cluster(tmp_path_factory):
    """A scheduler and workers with dask and distributed only: nbfan ships its code (the
    plugin that keeps and forwards the output, the workers' capture) on connecting."""
    from test_stock_cluster import _start_stock_cluster, _stop

    subprocess.run(["bash", str(REPO / "scripts" / "stock-venv.sh")], check=True, timeout=600)
    address, started = _start_stock_cluster(tmp_path_factory.mktemp("stock-output"), 2)
    try:
        # a stock cluster lacks the client's numpy: distributed warns of it on connecting (not nbfan's output)
        quiet = "import warnings\nfrom distributed.versions import VersionMismatchWarning\n" \
                "warnings.simplefilter('ignore', VersionMismatchWarning)\n"
        result = script(quiet + textwrap.dedent(EVERY_KIND), address, timeout=300)
    finally:
        _stop(started)
    out, err = expected_every_kind()
    assert sorted(result.stdout.splitlines()) == out
    assert sorted(result.stderr.splitlines()) == err


def test_a_spawn_map_shows_its_output_to_its_caller_and_to_a_handle_reattached_elsewhere(local_cluster):
    body = """
    import nbfan
    app = nbfan.App("output-spawn-map")

    @app.function
    def f(x):
        print(f"spawned {x}")
        return x

    job = f.spawn_map(range(5))
    assert job.get(timeout=120) == list(range(5))
    print(job.object_id)
    """
    lines = script(body, local_cluster.scheduler_address).stdout.splitlines()
    map_id = lines[-1]
    assert sorted(lines[:-1]) == [f"spawned {x}" for x in range(5)]
    reattach = f"""
    import nbfan
    assert nbfan.MapCall.from_id({map_id!r}).get(timeout=120) == list(range(5))
    """
    assert sorted(script(reattach, local_cluster.scheduler_address).stdout.splitlines()) == [
        f"spawned {x}" for x in range(5)]
