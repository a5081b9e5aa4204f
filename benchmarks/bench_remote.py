"""One call's round trip, p50 / p90 over 300 calls: nbfan's `.remote`, `.spawn().get()` and
`await .remote.aio()` against raw Dask's `client.submit(...).result()`, as it comes (its own
client) and on nbfan's client, on the same embedded cluster in one run; and the embedded
cluster's start-up time.

    .venv/bin/python benchmarks/bench_remote.py
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import nbfan
from nbfan.cluster.local import start_local_cluster

ROUNDS = 300
WARMUP = 20


def inc(x: int) -> int:
    return x + 1


app = nbfan.App("bench-remote")
remote_inc = app.function(inc)


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p90) in milliseconds."""
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[int(len(ordered) * 0.9)] * 1e3


def timed(call: Callable[[int], object]) -> tuple[float, float]:
    for i in range(WARMUP):  # warm up the path (function caches, connections)
        assert call(i) == i + 1
    samples = []
    for i in range(ROUNDS):
        start = time.perf_counter()
        result = call(i)
        samples.append(time.perf_counter() - start)
        assert result == i + 1
    return percentiles(samples)


def timed_async(call: Callable[[int], Awaitable[object]]) -> tuple[float, float]:
    async def run() -> tuple[float, float]:
        for i in range(WARMUP):
            assert await call(i) == i + 1
        samples = []
        for i in range(ROUNDS):
            start = time.perf_counter()
            result = await call(i)
            samples.append(time.perf_counter() - start)
            assert result == i + 1
        return percentiles(samples)

    return asyncio.run(run())


def startup_seconds() -> float:
    code = (
        "import time; t = time.perf_counter()\n"
        "import nbfan\nfrom nbfan.cluster import get_client\nget_client()\n"
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    cluster = start_local_cluster(2, gpus=[])
    client = nbfan.connect(cluster)
    client.wait_for_workers(2)
    from distributed import Client

    plain = Client(cluster, set_as_default=False)  # Dask as it comes: its client sends every 10 ms
    rows = {"raw Dask, its own client": timed(lambda i: plain.submit(inc, i, pure=False).result())}
    plain.close()
    rows["raw Dask on nbfan's client"] = timed(lambda i: client.submit(inc, i, pure=False).result())
    rows["nbfan .remote()"] = timed(remote_inc.remote)
    rows["nbfan .spawn().get()"] = timed(lambda i: remote_inc.spawn(i).get())
    rows["nbfan await .remote.aio()"] = timed_async(remote_inc.remote.aio)
    dask_p50 = rows["raw Dask, its own client"][0]
    print(f"{'one call, round trip':32} {'p50 ms':>8} {'p90 ms':>8} {'p50 / raw Dask':>15}")
    for name, (p50, p90) in rows.items():
        print(f"{name:32} {p50:8.2f} {p90:8.2f} {p50 / dask_p50:14.2f}x")
    print("goal: nbfan's p50 <= 0.4x raw Dask's (issue 18)")
    nbfan.disconnect()
    cluster.close()
    starts = [startup_seconds() for _ in range(3)]
    print(f"embedded cluster start-up (import to ready, {len(starts)} runs): "
          f"median {statistics.median(starts):.2f} s, min {min(starts):.2f} s")


if __name__ == "__main__":
    main()
