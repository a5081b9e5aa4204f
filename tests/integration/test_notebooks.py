"""Every example notebook runs top to bottom in the nbfan kernel (nbclient), on the session's
shared cluster, and shows what its text promises."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.integration.test_kernel import kernel_env

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
WIDGET = "application/vnd.jupyter.widget-view+json"


def run_notebook(name: str, scheduler: str, tmp_path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="nbfan",
        timeout=180,
        startup_timeout=60,
        store_widget_state=True,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute(env={**os.environ, **kernel_env(scheduler, progress=True)})
    return nb


def cell(nb: nbformat.NotebookNode, snippet: str) -> dict[str, Any]:
    (found,) = [c for c in nb.cells if c.cell_type == "code" and snippet in c.source]
    return found


def text(c: dict[str, Any]) -> str:
    """Everything a cell printed or displayed, as text."""
    parts = []
    for out in c["outputs"]:
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
        elif out["output_type"] == "error":
            parts.append(f"{out['ename']}: {out['evalue']}")
    return "".join(parts)


def result(c: dict[str, Any]) -> str:
    (out,) = [o for o in c["outputs"] if o["output_type"] == "execute_result"]
    return out["data"]["text/plain"]


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_stored_without_outputs_in_the_nbfan_kernel(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "nbfan"
    for c in nb.cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None, f"{path.name}: outputs must be stripped"


def test_quickstart(local_cluster, tmp_path):
    nb = run_notebook("quickstart.ipynb", local_cluster.scheduler_address, tmp_path)
    assert result(cell(nb, "square.remote(7)")) == "49"
    mapped = cell(nb, "square.map(range(1000))")
    assert "sum of squares: 332833500" in text(mapped)
    # the saved notebook keeps the progress bar's final state as HTML and text (no widget state needed)
    (progress,) = [o for o in mapped["outputs"] if o["output_type"] == "display_data"]
    assert "square.map: 1,000/1,000 inputs, 0 failed" in progress["data"]["text/plain"]
    assert "nbfan-progress" in progress["data"]["text/html"] and WIDGET not in progress["data"]
    assert result(cell(nb, "add.starmap")) == "[3, 7, 11]"
    assert result(cell(nb, "words.map")) == "['FAN', 'HELLO', 'OUT', 'WORLD']"
    assert result(cell(nb, "square.spawn(12)")) == "144"
    assert "spawned map: 10000 results, last 99980001" in text(cell(nb, "spawn_map"))
    assert local_cluster.scheduler_address in text(cell(nb, "%nbfan"))


def test_remote_magic(local_cluster, tmp_path):
    nb = run_notebook("remote_magic.ipynb", local_cluster.scheduler_address, tmp_path)
    first = cell(nb, "big = [x for x in data if x > threshold]")
    assert "ran in worker process" in text(first) and result(first) == "40"
    assert text(cell(nb, "print(big, total)")).strip() == "[6, 7, 8, 9, 10] 40"
    streamed = [o for o in cell(nb, "step {step}")["outputs"] if o["output_type"] == "stream"]
    assert "".join(o["text"] for o in streamed) == "step 0\nstep 1\nstep 2\n"
    assert text(cell(nb, "print(kept")).strip() == "only this comes back | dropped is here: False"
    assert "late = 500" in text(cell(nb, "_remote.get()"))
    (error,) = [o for o in cell(nb, "ratio(threshold, 0)")["outputs"] if o["output_type"] == "error"]
    assert error["ename"] == "ZeroDivisionError"
    assert "Remote traceback" in error["traceback"][0] and "return a / b" in "\n".join(error["traceback"])


def test_gpu(local_cluster, tmp_path):
    nb = run_notebook("gpu.ipynb", local_cluster.scheduler_address, tmp_path)
    assert "NOTE: this cluster has no GPU workers" in text(cell(nb, "has_gpu = bool"))
    checks = text(cell(nb, "for spec in"))
    assert "'H100:2' -> ['H100:2']" in checks and "rejected: invalid gpu=" in checks
    assert result(cell(nb, "list(device_info.map(range(3)))")).count("'input'") == 3
    assert "ran on cpu" in text(cell(nb, "matmul_trace.remote(64)"))
    assert "this cell ran on a CPU worker" in text(cell(nb, "%%remote {remote_flags}"))


def test_batch(local_cluster, tmp_path):
    nb = run_notebook("batch.ipynb", local_cluster.scheduler_address, tmp_path)
    assert "2000 results, first 00000.json last 01999.json" in text(cell(nb, "names = job.get()"))
    assert "2000 files; first record {'id': 0" in text(cell(nb, "records = ["))
    final = text(cell(nb, "MapCall.from_id"))
    assert "re-attached: 2000 results" in final and "2300 files" in final


@pytest.mark.gpu
def test_gpu_notebook_runs_on_gpu_workers(tmp_path):
    from nbfan.cluster.gpus import discover_gpus
    from nbfan.cluster.local import start_local_cluster

    gpus = discover_gpus()
    if not gpus:
        pytest.skip("no NVIDIA GPU on this machine")
    cluster = start_local_cluster(1, gpus=gpus)
    try:
        nb = run_notebook("gpu.ipynb", cluster.scheduler_address, tmp_path)
    finally:
        cluster.close()
    assert "GPU workers:" in text(cell(nb, "has_gpu = bool"))
    assert all(r["CUDA_VISIBLE_DEVICES"] for r in eval(result(cell(nb, "list(device_info.map(range(3)))"))))
    remote = text(cell(nb, "%%remote {remote_flags}"))
    assert "this cell ran on" in remote and "a CPU worker" not in remote
