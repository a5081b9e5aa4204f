"""The cost of a call made inside a function: `.remote` round trips from a task on a worker
(through the worker's client, seceding while it waits) against the same round trips from the
caller, on the same 2-worker cluster in one run. Prints p50/p90 and the ratio.

    .venv/bin/python benchmarks/bench_nested.py --calls 200
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("NBFAN_PROGRESS", "0")

import nbfan  # noqa: E402
from nbfan.cluster.local import start_local_cluster  # noqa: E402

app = nbfan.App("bench-nested")


@app.function
def echo(x: int) -> int:
    return x


@app.function
def round_trips_inside(n: int) -> list[float]:
    """`n` timed `.remote` calls made from inside this task."""
    times = []
    for i in range(n):
        start = time.perf_counter()
        echo.remote(i)
        times.append(time.perf_counter() - start)
    return times


def percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.9)] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    cluster = start_local_cluster(2, gpus=[])
    nbfan.connect(cluster)
    echo.remote(0)  # warm: the function is cached on the workers
    round_trips_inside.remote(5)
    top = []
    for i in range(args.calls):
        start = time.perf_counter()
        echo.remote(i)
        top.append(time.perf_counter() - start)
    nested = round_trips_inside.remote(args.calls)
    (top50, top90), (in50, in90) = percentiles(top), percentiles(nested)
    print(f"top-level .remote: p50 {top50:.2f} ms, p90 {top90:.2f} ms ({args.calls} calls)")
    print(f"nested .remote:    p50 {in50:.2f} ms, p90 {in90:.2f} ms (from inside a task)")
    print(f"nested / top-level p50: {in50 / top50:.2f}x")
    nbfan.disconnect()
    cluster.close()


if __name__ == "__main__":
    main()
