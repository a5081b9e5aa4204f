"""Issue 25, any cluster: nbfan's figures on a cluster the user brings (a plain
`LocalCluster(n_workers=2, threads_per_worker=1)` handed to `nbfan.connect`; a stock Dask
cluster from `.venv-stock`, without nbfan installed, 2 workers x 1 thread), beside nbfan's own
cluster (`start_local_cluster(2)`), against raw Dask measured in the same run.

A1  100k trivial inputs through `.map` vs Dask chunked by hand (100 chunks of `client.map`
    over lists) on the same cluster: goal >= 2x hand-chunked Dask; and vs a warm
    ProcessPoolExecutor(2).
A2  `.remote` round trip p50/p99 vs raw Dask's `client.submit(...).result()` as it comes: on
    a plain LocalCluster of the same shape that nbfan never joined (its plugin shortens the
    send intervals of every client of a cluster it joined, raw Dask's too: that figure is
    printed beside it). Goal <= 0.4x.

Each throughput is the best of 3; latencies are over 200 calls.

    .venv/bin/python benchmarks/bench_any_cluster.py [own|user|stock]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from distributed import Client, LocalCluster

import nbfan

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from field_record import record  # noqa: E402
from peers_measure import best_seconds  # noqa: E402

from nbfan.cluster.local import start_local_cluster

N = 100_000
REPEAT = 3
CHUNKS = 100
CALLS = 200


def inc(x: int) -> int:
    return x + 1


def inc_chunk(xs: list[int]) -> list[int]:
    return [x + 1 for x in xs]


app = nbfan.App("bench-any-cluster")
f_inc = app.function(inc)


def latency_ms(call: Any) -> tuple[float, float]:
    """p50 and p99 of a one-input round trip, in ms."""
    for i in range(20):
        assert call(i) == i + 1
    samples = []
    for i in range(CALLS):
        start = time.perf_counter()
        assert call(i) == i + 1
        samples.append(time.perf_counter() - start)
    samples.sort()
    return statistics.median(samples) * 1e3, samples[int(len(samples) * 0.99) - 1] * 1e3


def raw_dask_as_it_comes() -> tuple[float, float]:
    """Raw Dask's round trip on a plain LocalCluster nbfan never joined (the reference)."""
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as plain:
        return latency_ms(lambda i: plain.submit(inc, i, pure=False).result())


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def measure(name: str, cluster: Any, pool_rate: float, reference: tuple[float, float]) -> None:
    client = nbfan.connect(cluster)
    client.wait_for_workers(2)
    plain = Client(cluster, set_as_default=False)  # raw Dask on a client of its own, as it comes
    expected = [x + 1 for x in range(N)]
    size = N // CHUNKS

    def chunked() -> None:
        parts = plain.gather(plain.map(inc_chunk, [list(range(i, i + size)) for i in range(0, N, size)], pure=False))
        assert [y for part in parts for y in part] == expected

    def ours() -> None:
        assert list(f_inc.map(range(N))) == expected

    ours()
    chunked()
    nbfan_rate, dask_rate = N / best_seconds(ours, REPEAT), N / best_seconds(chunked, REPEAT)
    print(f"A1 [{name}] .map {N:,} trivial: nbfan {nbfan_rate:,.0f}/s, Dask hand-chunked x{CHUNKS} "
          f"{dask_rate:,.0f}/s: {nbfan_rate / dask_rate:.2f}x (goal >= 2x) {verdict(nbfan_rate >= 2 * dask_rate)}; "
          f"{nbfan_rate / pool_rate:.2f}x a warm ProcessPoolExecutor(2) ({pool_rate:,.0f}/s)")
    record(f"A1 [{name}]", nbfan_rate=nbfan_rate, chunked_rate=dask_rate, pool_rate=pool_rate, n=N)
    joined = latency_ms(lambda i: plain.submit(inc, i, pure=False).result())
    remote = latency_ms(f_inc.remote)
    print(f"A2 [{name}] .remote p50/p99 {remote[0]:.2f}/{remote[1]:.2f} ms; raw Dask submit().result() as it comes "
          f"{reference[0]:.2f}/{reference[1]:.2f} ms: {remote[0] / reference[0]:.2f}x (goal <= 0.4x) "
          f"{verdict(remote[0] <= 0.4 * reference[0])}; raw Dask on this cluster once nbfan joined it "
          f"{joined[0]:.2f}/{joined[1]:.2f} ms")
    record(f"A2 [{name}]", nbfan_p50=remote[0], nbfan_p99=remote[1], raw_p50=reference[0], raw_p99=reference[1])
    plain.close()
    nbfan.disconnect()


def warm_pool_rate() -> float:
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(inc, range(N), chunksize=N // 8))
        return N / best_seconds(lambda: list(pool.map(inc, range(N), chunksize=N // 8)), REPEAT)


def main(argv: list[str]) -> None:
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    wanted = argv[0] if argv else ""
    pool_rate = warm_pool_rate()
    reference = raw_dask_as_it_comes()
    if wanted in "own":
        cluster = start_local_cluster(2, gpus=[])
        try:
            measure("nbfan's own cluster", cluster, pool_rate, reference)
        finally:
            cluster.close()
    if wanted in "user":
        with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster:
            measure("user's LocalCluster", cluster, pool_rate, reference)
    if wanted in "stock":
        from stock_cluster import stock_cluster  # beside this file, on sys.path above

        with stock_cluster(2) as address:
            measure("stock cluster, no nbfan installed", address, pool_rate, reference)


if __name__ == "__main__":
    main(sys.argv[1:])
