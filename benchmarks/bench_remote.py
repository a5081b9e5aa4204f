"""One call's round trip, p50 / p90 over 300 calls: nbfan's `.remote`, `.spawn().get()` and
`await .remote.aio()` against raw Dask's `client.submit(...).result()`, as it comes (its own
client) and on nbfan's client, on the same embedded cluster in one run, taking turns 100 calls
at a time; and the embedded cluster's start-up time.

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
TURNS = 3


def inc(x: int) -> int:
    return x + 1


app = nbfan.App("bench-remote")
remote_inc = app.function(inc)


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p90) in milliseconds."""
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[int(len(ordered) * 0.9)] * 1e3


def in_turns(calls: dict[str, Callable[[int], Awaitable[object]]]) -> dict[str, tuple[float, float]]:
    """(p50, p90) of each way of calling: each makes 100 calls in a row (a loop of calls, as a
    user writes it: Dask's client then waits out its 10 ms send interval), in turns, three times,
    after a warm-up of each; so that no way gets a quieter moment of the machine than another."""

    async def run() -> dict[str, tuple[float, float]]:
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for name, call in calls.items():
            for i in range(WARMUP):
                assert await call(i) == i + 1
        for turn in range(TURNS):
            for name, call in calls.items():
                for i in range(ROUNDS // TURNS):
                    start = time.perf_counter()
                    result = await call(i)
                    samples[name].append(time.perf_counter() - start)
                    assert result == i + 1, (name, result)
        return {name: percentiles(values) for name, values in samples.items()}

    return asyncio.run(run())


def blocking(call: Callable[[int], object]) -> Callable[[int], Awaitable[object]]:
    """A blocking call, run as it is (on this thread: it blocks the loop, which nothing else uses)."""

    async def run(i: int) -> object:
        return call(i)

    return run


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
    rows = in_turns({
        "raw Dask, its own client": blocking(lambda i: plain.submit(inc, i, pure=False).result()),
        "raw Dask on nbfan's client": blocking(lambda i: client.submit(inc, i, pure=False).result()),
        "nbfan .remote()": blocking(remote_inc.remote),
        "nbfan .spawn().get()": blocking(lambda i: remote_inc.spawn(i).get()),
        "nbfan await .remote.aio()": remote_inc.remote.aio,
    })
    plain.close()
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
