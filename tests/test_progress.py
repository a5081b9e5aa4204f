"""Progress under the cell: a widget in kernels (final state kept in the output), a text bar
elsewhere, off with `nbfan.config.progress = False`."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from tests.conftest import run_py
from tests.test_kernel import KernelSession, kernel_env

WIDGET = "application/vnd.jupyter.widget-view+json"

SETUP = """
import nbfan, time
app = nbfan.App("progress-test")

@app.function
def square(x):
    return x * x

@app.function
def maybe_fail(x):
    if x == 7:
        raise ValueError("seven")
    return x

@app.function
def counter(n):
    for i in range(n):
        time.sleep(0.01)
        yield i
"""


@pytest.fixture(scope="module")
def kernel(local_cluster: Any) -> Iterator[KernelSession]:
    session = KernelSession(kernel_env(local_cluster.scheduler_address, progress=True))
    session.ok(SETUP)
    yield session
    session.close()


def _widget_models(ex) -> dict[str, dict[str, Any]]:
    return {c["comm_id"]: c["data"]["state"] for c in ex.outputs("comm_open")}


def test_map_shows_a_widget_whose_final_state_stays_in_the_output(kernel):
    ex = kernel.ok("sum(square.map(range(500)))")
    assert ex.result_text() == str(sum(x * x for x in range(500)))
    bundles = ex.data()
    first, final = bundles[0], [b for b in bundles if WIDGET in b][-1]
    assert WIDGET in first  # the live widget under the cell
    states = _widget_models(ex)
    assert {"IntProgressModel", "HBoxModel", "HTMLModel"} <= {s["_model_name"] for s in states.values()}
    assert final[WIDGET]["model_id"] in states  # the displayed box is a real widget model
    # the final output carries the figures as text too, so a saved notebook shows them
    assert "square.map: 500/500 inputs, 0 failed" in final["text/plain"] and "done" in final["text/plain"]
    assert "500 / 500 inputs" in final["text/html"]
    # and the bar itself ended full and green
    (bar_id,) = [cid for cid, st in states.items() if st["_model_name"] == "IntProgressModel"]
    bar = dict(states[bar_id])
    for c in ex.outputs("comm_msg"):
        if c["comm_id"] == bar_id:
            bar.update(c["data"].get("state", {}))
    assert bar["value"] == bar["max"] == 500 and bar["bar_style"] == "success"


def test_failed_map_shows_failures_and_state(kernel):
    ex = kernel.execute("list(maybe_fail.map(range(20)))")
    assert ex.status == "error" and ex.error()["ename"] == "ValueError"
    final = [b for b in ex.data() if WIDGET in b][-1]
    assert "1 failed" in final["text/plain"] and "failed" in final["text/plain"].rsplit("—", 1)[-1]


def test_return_exceptions_counts_failures_then_finishes_done(kernel):
    ex = kernel.ok("r = list(maybe_fail.map(range(20), return_exceptions=True)); len(r)")
    final = [b for b in ex.data() if WIDGET in b][-1]
    assert "20/20 inputs, 1 failed" in final["text/plain"] and final["text/plain"].endswith("done")


def test_generators_report_progress_too(kernel):
    ex = kernel.ok("len(list(counter.map([3, 4, 5])))")
    assert ex.result_text() == "12"
    assert "counter.map: 3/3 inputs" in [b for b in ex.data() if WIDGET in b][-1]["text/plain"]
    ex = kernel.ok("list(counter.remote_gen(4))")
    assert ex.result_text() == "[0, 1, 2, 3]"
    assert "counter.remote_gen: 1/1 inputs" in [b for b in ex.data() if WIDGET in b][-1]["text/plain"]


def test_config_progress_false_turns_it_off(kernel):
    ex = kernel.ok("nbfan.config.progress = False\nsum(square.map(range(50)))")
    assert ex.result_text() == str(sum(x * x for x in range(50)))
    assert not [b for b in ex.data() if WIDGET in b]
    kernel.ok("nbfan.config.progress = True")


def test_text_bar_outside_a_kernel(local_cluster):
    code = f"""
import nbfan
from nbfan.notebook import progress
progress.install()
nbfan.connect({local_cluster.scheduler_address!r})
app = nbfan.App("text-progress")
@app.function
def inc(x):
    return x + 1
print(sum(inc.map(range(300))))
"""
    result = run_py(code, env={"NBFAN_PROGRESS": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(str(sum(range(1, 301))))
    last = result.stderr.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("inc.map: 100%|") and "300/300" in last and "0 failed" in last and last.endswith("done")
