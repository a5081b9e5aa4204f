"""`%%remote` and `%nbfan` through a real nbfan kernel, on the session's shared cluster."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.test_kernel import KernelSession, kernel_env


@pytest.fixture(scope="module")
def kernel(local_cluster: Any) -> Iterator[KernelSession]:
    session = KernelSession(kernel_env(local_cluster.scheduler_address))
    yield session
    session.close()


def _wait_for(path) -> str:
    """Cell code that blocks until the test creates `path` (at most 60 s): no timing races."""
    return f"import os, time\nfor _ in range(1200):\n    if os.path.exists({str(path)!r}):\n        break\n    time.sleep(0.05)\n"


def test_variables_round_trip(kernel):
    kernel.ok("import os\ndata = [1, 2, 3]\nscale = 10\ndef helper(v):\n    return v * scale\nlocal_pid = os.getpid()")
    ex = kernel.ok(
        "%%remote\n"
        "import os\n"
        "import math\n"
        "scaled = [helper(v) for v in data]\n"
        "pid = os.getpid()\n"
        "root = math.sqrt(scaled[-1] + 6)\n"
        "scaled[0] + 1"
    )
    assert ex.result_text() == "11"  # the last expression displays like a normal cell
    ex = kernel.ok("print(scaled, root, pid != local_pid, 'math' in globals())")
    # `math` was imported by the cell: modules are never shipped back
    assert ex.stream().split() == ["[10,", "20,", "30]", "6.0", "True", "False"]


def test_modules_stay_and_out_limits_what_comes_back(kernel):
    kernel.ok("for n in ('json', 'a', 'b'):\n    globals().pop(n, None)")
    ex = kernel.ok("%%remote --out a\nimport json\na = json.dumps({'k': 1})\nb = 2")
    assert ex.result_text() is None
    ex = kernel.ok("print(a, 'b' in globals(), 'json' in globals())")
    assert ex.stream().split() == ['{"k":', "1}", "False", "False"]


def test_output_streams_live_while_the_cell_runs(kernel, tmp_path):
    # the cell cannot finish until the test has SEEN its first print: output must arrive live
    seen = tmp_path / "seen"
    ex = kernel.execute(
        "%%remote\nimport sys, time\nprint('tick 0', flush=True)\n"
        + _wait_for(seen)
        + "print('tick 1')\nprint('oops', file=sys.stderr)\nsaw_it = os.path.exists(" + repr(str(seen)) + ")\nsaw_it",
        on_output=("tick 0", seen.touch),
    )
    assert ex.status == "ok" and ex.result_text() == "True"
    assert ex.stream() == "tick 0\ntick 1\n"
    assert ex.stream("stderr") == "oops\n"
    first = min(t for t, m in ex.messages if m["msg_type"] == "stream")
    assert first < ex.reply_at


def test_remote_exception_shows_remote_traceback_and_raises(kernel):
    ex = kernel.execute("%%remote\nx = 1\ndef inner(v):\n    return v / 0\ninner(x)")
    assert ex.status == "error"
    err = ex.error()
    assert err["ename"] == "ZeroDivisionError"
    text = "\n".join(err["traceback"])
    assert "Remote traceback" in text and "return v / 0" in text and "inner(x)" in text


def test_clear_errors_before_anything_runs(kernel):
    ex = kernel.execute("%%remote --bogus 1\nx = 1")
    assert ex.status == "error" and ex.error()["ename"] == "UsageError" and "--bogus" in ex.stream("stderr")
    ex = kernel.execute("%%remote\n   \n")
    assert ex.status == "error" and "empty" in ex.error()["evalue"]
    kernel.ok("import threading\nguard = threading.Lock()")
    ex = kernel.execute("%%remote\nwith guard:\n    y = 1")
    assert ex.status == "error" and ex.error()["ename"] == "SerializationError"
    assert "`guard`" in ex.error()["evalue"]
    ex = kernel.execute("%%remote --gpu nonsense!\nx = 1")
    assert ex.status == "error" and ex.error()["ename"] == "InvalidError" and "gpu" in ex.error()["evalue"]
    ex = kernel.execute("%%remote --out nope\nx = 1")
    assert ex.status == "error" and "nope" in ex.error()["evalue"]


def test_timeout_option_stops_the_cell(kernel):
    ex = kernel.execute("%%remote --timeout 0.5\nimport time\nfor _ in range(100):\n    time.sleep(0.05)\ndone = True")
    assert ex.status == "error" and ex.error()["ename"] == "FunctionTimeoutError"
    assert ex.error()["traceback"] == ["FunctionTimeoutError: the %%remote cell ran past its timeout of 0.5s and was stopped"]


def test_retries_option_reruns_a_failing_cell(kernel, tmp_path):
    marker = str(tmp_path / "attempts")
    ex = kernel.ok(
        f"%%remote --retries 2\n"
        f"with open({marker!r}, 'a') as f:\n    f.write('x')\n"
        f"attempts = len(open({marker!r}).read())\n"
        f"if attempts < 3:\n    raise RuntimeError('flaky')\n"
        f"attempts"
    )
    assert ex.result_text() == "3"


def test_spawn_returns_at_once_and_get_brings_variables_back(kernel, tmp_path):
    go = tmp_path / "go"
    kernel.ok("seed = 5")
    ex = kernel.ok("%%remote --spawn\n" + _wait_for(go) + "print('spawned ran')\nresult = seed * 2\nresult + 1")
    assert "<RemoteCell" in ex.result_text() and "result" in ex.result_text()
    ex = kernel.ok("print('result' in globals(), _remote.done())")
    assert ex.stream().split() == ["False", "False"]  # it returned before the cell finished
    go.touch()
    ex = kernel.ok("_remote.get(timeout=60)")
    assert ex.result_text() == "11" and "spawned ran" in ex.stream()
    assert kernel.ok("print(result)").stream().strip() == "10"


def test_interrupt_cancels_the_remote_cell(kernel, tmp_path):
    marker = tmp_path / "beats"
    code = (
        "%%remote\n"
        "import time\n"
        f"for i in range(1000):\n"
        f"    with open({str(marker)!r}, 'a') as f:\n        f.write('.')\n"
        "    if i == 3:\n        print('running', flush=True)\n"
        "    time.sleep(0.05)\n"
    )
    ex = kernel.execute(code, timeout=60, on_output=("running", kernel.km.interrupt_kernel))
    interrupted_at = ex.reply_at
    assert ex.status == "error" and ex.error()["ename"] == "KeyboardInterrupt"
    assert "cancelled on the cluster" in ex.stream("stderr")
    time.sleep(2.0)  # the worker stops within 2 s of the interrupt
    beats = len(marker.read_text())
    time.sleep(1.0)
    assert len(marker.read_text()) == beats, "the remote cell kept running after the interrupt"
    assert 3 < beats < 900 and time.monotonic() - interrupted_at >= 3.0
    # the kernel and the cluster are still usable
    assert kernel.ok("%%remote\n1 + 1").result_text() == "2"


def test_nbfan_status_shows_the_cluster_and_running_calls(kernel, local_cluster, tmp_path):
    go = tmp_path / "go"
    kernel.ok("%%remote --spawn\n" + _wait_for(go) + "slept = True")
    ex = kernel.ok("%nbfan")
    bundle = ex.outputs("execute_result")[0]["data"]
    assert local_cluster.scheduler_address in bundle["text/plain"]
    assert "<table>" in bundle["text/html"] and "threads" in bundle["text/html"]
    assert bundle["text/html"].count("<tr>") >= 3 + 1  # worker header + 2 workers, calls header + rows
    running = [line for line in bundle["text/plain"].splitlines() if "%%remote" in line and "running" in line]
    assert running and " magic " in running[0], bundle["text/plain"]  # the spawned cell, seen by telemetry
    go.touch()
    kernel.ok("_remote.get(timeout=60)")
    ex = kernel.ok("%nbfan")
    text = ex.outputs("execute_result")[0]["data"]["text/plain"]
    assert [line for line in text.splitlines() if "%%remote" in line and " done " in line]


def test_cell_analysis_finds_what_to_ship_and_bring_back():
    from nbfan.notebook.cellcode import analyze

    code = analyze(
        "import numpy as np\n"
        "from math import sqrt\n"
        "y = x + 1\n"
        "def f(a):\n    b = a + K\n    return helper(b)\n"
        "class C:\n    z = Z\n    def m(self):\n        return self.q + W\n"
        "sq = [i * i for i in range(n)]\n"
        "for k in items:\n    pass\n"
        "print(np, sqrt, In)\n"
        "y"
    )
    # read from the notebook: free names at any depth, not the cell's imports, locals or IPython's own
    assert set(code.reads) == {"x", "K", "helper", "Z", "W", "n", "items", "y", "range", "print"}
    # brought back: module-level bindings, not `import x` modules nor comprehension variables
    assert code.assigns == ["C", "f", "k", "sq", "sqrt", "y"]
    assert code.has_value
    assert not analyze("x = 1\nx;").has_value


def test_a_notebook_function_failing_remotely_shows_its_cell_and_source_lines(kernel):
    """A function defined in a cell, failing on a worker: IPython shows `Cell In[N]` with the
    right line and its source, for the function and the helper it calls, and no nbfan frame."""
    kernel.ok(
        "import nbfan\n"
        "app = nbfan.App('tb-in-notebook')\n"
        "def helper(v):\n"
        "    ratio = v / 0\n"
        "    return ratio\n"
        "@app.function\n"
        "def uses_helper(v):\n"
        "    return helper(v) + 1\n"
    )
    ex = kernel.execute("uses_helper.remote(5)")
    err = ex.error()
    assert err is not None and err["ename"] == "ZeroDivisionError"
    text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(err["traceback"]))  # IPython colours it
    assert "uses_helper.remote(5)" in text
    assert "return helper(v) + 1" in text and "ratio = v / 0" in text
    assert "Cell In[" in text and "line 8" in text and "line 4" in text
    assert "<dynamic-code>" not in text
    if sys.version_info >= (3, 11):  # 3.10 cannot drop nbfan's local frames (see fanout/tracebacks.py)
        assert "nbfan/" not in text


def test_a_remote_cell_maps_a_function_defined_in_the_notebook(kernel, local_cluster):
    kernel.ok("import nbfan\ncell_app = nbfan.App('cell-composition')\n@cell_app.function\ndef cube(v):\n    return v ** 3\n")
    ex = kernel.ok("%%remote\nfrom nbfan.cluster import get_client\ncubes = list(cube.map(range(5)))\naddress = get_client().scheduler.address")
    assert ex.error() is None
    kernel.ok("assert cubes == [0, 1, 8, 27, 64], cubes")
    kernel.ok(f"assert address == {local_cluster.scheduler_address!r}, address")  # the cell's own cluster
