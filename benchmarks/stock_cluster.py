"""A stock Dask cluster for the benchmarks: a scheduler and workers from `.venv-stock` (dask,
distributed and cloudpickle only, no nbfan: scripts/stock-venv.sh makes it), as a cluster
image users did not build. nbfan ships itself to it on connect."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STOCK = REPO / ".venv-stock"


@contextlib.contextmanager
def stock_cluster(workers: int, threads: int = 1) -> Iterator[str]:
    """The address of a stock scheduler with `workers` workers of `threads` threads each, up."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run(["bash", str(REPO / "scripts" / "stock-venv.sh")], check=True, timeout=900, env=env)
    with tempfile.TemporaryDirectory() as folder:  # their working folder: nbfan's source is not there
        scheduler_file = Path(folder) / "scheduler.json"
        started = [subprocess.Popen(
            [str(STOCK / "bin" / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(scheduler_file)],
            cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        try:
            deadline = time.monotonic() + 60
            while not (scheduler_file.exists() and scheduler_file.read_text().strip()):
                if time.monotonic() > deadline:
                    raise RuntimeError("the stock scheduler did not start")
                time.sleep(0.05)
            address = json.loads(scheduler_file.read_text())["address"]
            started.extend(subprocess.Popen(
                [str(STOCK / "bin" / "dask"), "worker", address, "--nthreads", str(threads), "--no-dashboard"],
                cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(workers))
            yield address
        finally:
            for process in reversed(started):
                process.terminate()
            for process in started:
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
