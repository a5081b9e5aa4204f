"""Issue 18: how much a `spawn_map` of 2,000 arrays of 1 MiB grows the scheduler (goal: <= 100 MB),
with every result still collectable by `MapCall.from_id`.

    .venv/bin/python benchmarks/bench_spawn_map_memory.py [COUNT]

The cluster is `nbfan cluster up` (its scheduler is a process of its own); the scheduler's RSS
is sampled every 50 ms from the start of the spawn_map until its results are collected.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import psutil

COUNT, SIZE = int(sys.argv[1]) if len(sys.argv) > 1 else 2000, 1 << 20


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "nbfan.cli", *args], check=True, capture_output=True, timeout=300)


def first(a: np.ndarray) -> float:
    return float(a[0])


def main() -> None:
    os.environ["NBFAN_HOME"] = tempfile.mkdtemp(prefix="nbfan-bench-")
    cli("cluster", "up", "--workers", "2")
    try:
        import nbfan

        client = nbfan.connect()
        client.wait_for_workers(2)
        scheduler = psutil.Process(client.run_on_scheduler(os.getpid))
        app = nbfan.App("bench-spawn-map-memory")
        remote_first = app.function(first)
        arrays = [np.full(SIZE // 8, float(i)) for i in range(COUNT)]
        remote_first.spawn_map(arrays[:4]).get()  # warm up: function caches, the map store
        base = scheduler.memory_info().rss
        peak = [base]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.05):
                peak[0] = max(peak[0], scheduler.memory_info().rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        call = remote_first.spawn_map(arrays)
        returned = time.perf_counter() - started
        results = nbfan.MapCall.from_id(call.object_id).get()
        collected = time.perf_counter() - started
        stop.set()
        sampler.join()
        assert results == [float(i) for i in range(COUNT)]
        growth = (peak[0] - base) / 1e6
        print(f"spawn_map of {COUNT} x {SIZE >> 20} MiB: returned in {returned:.2f}s, collected by from_id in "
              f"{collected:.2f}s; scheduler RSS {base / 1e6:.0f} MB -> peak {peak[0] / 1e6:.0f} MB: growth "
              f"{growth:.0f} MB (goal <= 100 MB) {'ok' if growth <= 100 else 'MISSED'}")
        client.close()
    finally:
        cli("cluster", "down")


if __name__ == "__main__":
    main()
