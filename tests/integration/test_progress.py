"""Progress under the cell: a widget in kernels (final state kept in the output), a text bar
elsewhere, off with `nbfan.config.progress = False`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import run_py
from tests.integration.test_kernel import KernelSession, kernel_env

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


def final(ex) -> dict[str, Any]:
    """The progress output as it stays in the notebook (the last display update)."""
    return ex.outputs("update_display_data")[-1]["data"]


def test_map_shows_a_live_widget_then_keeps_its_final_state_as_html(kernel):
    ex = kernel.ok("sum(square.map(range(500)))")
    assert ex.result_text() == str(sum(x * x for x in range(500)))
    (live,) = [d for d in ex.outputs("display_data") if WIDGET in d["data"]]
    states = _widget_models(ex)
    assert {"IntProgressModel", "HBoxModel", "HTMLModel"} <= {s["_model_name"] for s in states.values()}
    assert live["data"][WIDGET]["model_id"] in states  # the displayed box is a real widget model
    # the final output replaces the widget with the figures as HTML and text, so a saved
    # notebook shows them with no widget state; the widgets are closed (nothing leaks)
    end = final(ex)
    assert live["transient"]["display_id"] == ex.outputs("update_display_data")[-1]["transient"]["display_id"]
    assert WIDGET not in end
    assert "square.map: 500/500 inputs, 0 failed" in end["text/plain"] and end["text/plain"].endswith("done")
    assert "500 / 500 inputs" in end["text/html"] and "width:100.0%" in end["text/html"]
    closed = {c["comm_id"] for c in ex.outputs("comm_close")}
    assert set(states) <= closed, (len(states), len(closed), ex.outputs("comm_close"))


def test_the_bar_moves_while_a_slow_map_runs(kernel):
    ex = kernel.ok("import time\n@app.function\ndef slow(x):\n    time.sleep(0.05)\n    return x\nlen(list(slow.map(range(40))))")
    assert ex.result_text() == "40"
    states = _widget_models(ex)
    (bar_id,) = [cid for cid, st in states.items() if st["_model_name"] == "IntProgressModel"]
    values = [c["data"]["state"]["value"] for c in ex.outputs("comm_msg") if c["comm_id"] == bar_id and "value" in c["data"]["state"]]
    assert len(values) >= 2 and values == sorted(values) and 0 < values[-1] <= 40  # several live updates
    stats = [c["data"]["state"]["value"] for c in ex.outputs("comm_msg") if c["comm_id"] != bar_id and "value" in c["data"].get("state", {})]
    assert any("running" in v and "/s" in v and "elapsed" in v for v in stats)


def test_failed_map_shows_failures_and_state(kernel):
    ex = kernel.execute("list(maybe_fail.map(range(20)))")
    assert ex.status == "error" and ex.error()["ename"] == "ValueError"
    end = final(ex)["text/plain"]
    assert "1 failed" in end and end.endswith("failed")


def test_return_exceptions_counts_failures_then_finishes_done(kernel):
    ex = kernel.ok("r = list(maybe_fail.map(range(20), return_exceptions=True)); len(r)")
    end = final(ex)["text/plain"]
    assert "20/20 inputs, 1 failed" in end and end.endswith("done")


def test_generators_report_progress_too(kernel):
    ex = kernel.ok("len(list(counter.map([3, 4, 5])))")
    assert ex.result_text() == "12"
    assert "counter.map: 3/3 inputs" in final(ex)["text/plain"]
    ex = kernel.ok("list(counter.remote_gen(4))")
    assert ex.result_text() == "[0, 1, 2, 3]"
    assert "counter.remote_gen: 1/1 inputs" in final(ex)["text/plain"]


def test_config_progress_false_turns_it_off(kernel):
    ex = kernel.ok("nbfan.config.progress = False\nsum(square.map(range(50)))")
    assert ex.result_text() == str(sum(x * x for x in range(50)))
    assert not ex.outputs("display_data", "update_display_data")
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
