"""Dynamic batching (`@nbfan.batched`): a function with a fixed cost per call (20 ms, as a GPU
kernel launch or a model forward pass) plus a tiny cost per item, mapped over inputs batched
and unbatched on one 2-worker cluster in the same run; also many separate `.remote` callers.

    .venv/bin/python benchmarks/bench_batching.py --inputs 256
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("NBFAN_PROGRESS", "0")

import nbfan  # noqa: E402
from nbfan.cluster.local import start_local_cluster  # noqa: E402

app = nbfan.App("bench-batching")
FIXED, PER_ITEM = 0.020, 0.0001


def cost(n: int) -> None:
    time.sleep(FIXED + PER_ITEM * n)


@app.function
def one_at_a_time(x: int) -> int:
    cost(1)
    return 2 * x


@app.function
@nbfan.batched(max_batch_size=32, wait_ms=20)
def in_lists(xs: list[int]) -> list[int]:
    cost(len(xs))
    return [2 * x for x in xs]


def timed(run: object) -> float:
    start = time.perf_counter()
    run()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", type=int, default=256)
    parser.add_argument("--callers", type=int, default=64)
    args = parser.parse_args()
    nbfan.connect(start_local_cluster(2, gpus=[]))
    expected = [2 * x for x in range(args.inputs)]
    with app.run():
        list(one_at_a_time.map(range(4)))  # warm
        list(in_lists.map(range(4)))
        plain = timed(lambda: list(one_at_a_time.map(range(args.inputs))) == expected or exit(1))
        batched = timed(lambda: list(in_lists.map(range(args.inputs))) == expected or exit(1))
        with ThreadPoolExecutor(args.callers) as pool:
            plain_callers = timed(lambda: list(pool.map(one_at_a_time.remote, range(args.callers))))
            batched_callers = timed(lambda: list(pool.map(in_lists.remote, range(args.callers))))
    print(f"map of {args.inputs}: unbatched {plain:.2f} s, batched {batched:.2f} s, speed-up {plain / batched:.1f}x")
    print(f"{args.callers} concurrent .remote callers: unbatched {plain_callers:.2f} s, batched "
          f"{batched_callers:.2f} s, speed-up {plain_callers / batched_callers:.1f}x")


if __name__ == "__main__":
    main()
