"""What autoscaling costs a user: the time to the first result of a map, and to all of it, on a
cluster with no worker yet (it must start one) against a warm one (its workers already up), and
against raw Dask's own `cluster.adapt()` from idle, measured in the same run on the same machine.

    .venv/bin/python benchmarks/bench_autoscale.py [--inputs N] [--repeat R]

Each situation is a fresh `LocalCluster` of worker processes (2 at most, 1 thread each); each
figure is the best of R runs (noise on a shared machine only adds time). There is no goal in the
issue beyond showing the cost: an idle cluster pays for a worker process to start (Python, Dask,
nbfan's worker set-up) and for the autoscaler's next decision (INTERVAL = 1 s at most)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from typing import Any

from distributed import Client, LocalCluster

import nbfan

app = nbfan.App("bench-autoscale")


@app.function
def work(x: int) -> int:
    time.sleep(0.05)
    return x


def plain_work(x: int) -> int:
    time.sleep(0.05)
    return x


def cluster(workers: int) -> LocalCluster:
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")


def timed(results: Iterator[Any], inputs: int) -> tuple[float, float]:
    """(seconds to the first result, seconds to all) of an iterator started just before."""
    start = time.perf_counter()
    first = None
    count = 0
    for _ in results:
        count += 1
        if first is None:
            first = time.perf_counter() - start
    assert count == inputs, count
    return first or 0.0, time.perf_counter() - start


def nbfan_warm(inputs: int) -> tuple[float, float]:
    with cluster(2) as c:
        nbfan.connect(c)
        try:
            c.wait_for_workers(2)
            return timed(work.map(range(inputs)), inputs)
        finally:
            nbfan.disconnect()


def nbfan_idle(inputs: int) -> tuple[float, float]:
    with cluster(0) as c:
        nbfan.connect(c)
        try:
            nbfan.autoscale(c, minimum=0, maximum=2, scaledown_window=60)
            return timed(work.map(range(inputs)), inputs)
        finally:
            nbfan.disconnect()


def dask_idle(inputs: int) -> tuple[float, float]:
    with cluster(0) as c, Client(c) as client:
        c.adapt(minimum=0, maximum=2, interval="1s")
        from distributed import as_completed

        return timed(iter(as_completed(client.map(plain_work, range(inputs)))), inputs)


def best(run: Callable[[int], tuple[float, float]], inputs: int, repeat: int) -> tuple[float, float]:
    runs = [run(inputs) for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    figures = {name: best(run, args.inputs, args.repeat) for name, run in (
        ("nbfan, warm cluster (2 workers up)", nbfan_warm),
        ("nbfan.autoscale, idle cluster (0 -> 2)", nbfan_idle),
        ("raw Dask cluster.adapt, idle (0 -> 2)", dask_idle),
    )}
    print(f"{args.inputs} inputs x 50 ms, best of {args.repeat}")
    print(f"{'situation':42} {'first result':>13} {'all results':>12}")
    for name, (first, total) in figures.items():
        print(f"{name:42} {first:12.2f}s {total:11.2f}s")
    warm, idle, dask = (figures[k] for k in figures)
    print(f"idle/warm: first result {idle[0] / warm[0]:.1f}x, all {idle[1] / warm[1]:.2f}x; "
          f"nbfan idle / Dask idle: first {idle[0] / dask[0]:.2f}x, all {idle[1] / dask[1]:.2f}x")


if __name__ == "__main__":
    main()
