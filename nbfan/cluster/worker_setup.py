"""Set-up of the workers of clusters nbfan starts (a Dask preload: `dask_setup(worker)`).

A worker's batched stream to the scheduler (task finished, task erred...) gathers messages
for 2 ms before sending (distributed 2026.8.0, no config); at 0.5 ms a `.remote` round trip
is ~1 ms shorter (benchmarks/bench_remote.py). Clusters nbfan only joins are left as they are.
"""

from __future__ import annotations

from typing import Any

from nbfan import compat

WORKER_SEND_INTERVAL = 0.0005


def dask_setup(worker: Any) -> None:
    """Run by Dask in each worker process as it starts."""
    compat.set_send_interval(worker, WORKER_SEND_INTERVAL)
