"""`make demo`: nbfan on the embedded default cluster, end to end, in a terminal."""

from __future__ import annotations

import time
from collections.abc import Iterator

from nbfan.api.app import App
from nbfan.api.options import Retries
from nbfan.cluster import connect
from nbfan.cluster.connect import scheduler_address

app = App("demo")  # what a user writes as `nbfan.App`: the package itself sits above the CLI


@app.function(retries=Retries(2, initial_delay=0.1))
def simulate(seed: int) -> float:
    """A small Monte Carlo estimate of pi."""
    import random

    rng = random.Random(seed)
    inside = sum(1 for _ in range(20_000) if rng.random() ** 2 + rng.random() ** 2 <= 1)
    return 4 * inside / 20_000


@app.generator
def countdown(n: int) -> Iterator[int]:
    for i in range(n, 0, -1):
        time.sleep(0.05)
        yield i


def main() -> None:
    start = time.perf_counter()
    client = connect()
    print(f"cluster: {scheduler_address(client)} ({len(client.nthreads())} workers), "
          f"up in {time.perf_counter() - start:.1f}s")
    print("remote:", simulate.remote(0))
    start = time.perf_counter()
    estimates = list(simulate.map(range(200)))
    print(f"map: 200 inputs in {time.perf_counter() - start:.2f}s, pi ~ {sum(estimates) / len(estimates):.4f}")
    print("remote_gen:", list(countdown.remote_gen(5)))
    call = simulate.spawn(42)
    print(f"spawn: {call.object_id} -> {call.get():.4f}")


if __name__ == "__main__":
    main()
