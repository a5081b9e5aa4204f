"""A function's next map starts from the batch size its last map learnt. Measured in one run on
the embedded cluster: a 100k-input map of a trivial function starting fresh (what it learnt
forgotten) against one resuming; and the first result and total of 400 inputs of 20 ms each
mapped right after 1,000 trivial inputs of the same function (ideal total: 400 x 20 ms / 2 slots).

    .venv/bin/python benchmarks/bench_learnt_batches.py [--reps 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("NBFAN_PROGRESS", "0")

import nbfan  # noqa: E402
from nbfan.engine import batching  # noqa: E402

app = nbfan.App("bench-learnt-batches")


@app.function
def identity(x: int) -> int:
    return x


@app.function
def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def timed_map(fresh: bool, n: int) -> float:
    if fresh:
        batching._learnt.clear()  # noqa: SLF001 - what a fresh process would start from
    start = time.perf_counter()
    for _ in identity.map(range(n)):
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    with app.run():
        list(identity.map(range(1000)))  # warm the cluster
        fresh, resumed = [], []
        for _ in range(args.reps):  # interleaved, so drift hits both alike
            fresh.append(timed_map(True, 100_000))
            resumed.append(timed_map(False, 100_000))
        list(sleep_for.map([0.0] * 1000))
        start = time.perf_counter()
        results = sleep_for.map([0.02] * 400)
        next(results)
        first = time.perf_counter() - start
        for _ in results:
            pass
        total = time.perf_counter() - start
    f, r = statistics.median(fresh), statistics.median(resumed)
    print(f"100k trivial inputs: fresh {f * 1e3:.0f} ms, resumed {r * 1e3:.0f} ms (resumed/fresh {r / f:.2f}x)")
    print(f"400 x 20 ms after trivial inputs: first result {first:.2f} s, total {total:.2f} s (ideal 4.00 s)")


if __name__ == "__main__":
    main()
