"""Issue 25, any cluster: nbfan's figures on a cluster the user brings (a plain
`LocalCluster(n_workers=2, threads_per_worker=1)` handed to `nbfan.connect`), beside nbfan's
own cluster (`start_local_cluster(2)`), against raw Dask measured in the same run on the same
cluster.

A1  100k trivial inputs through `.map` vs Dask chunked by hand (100 chunks of `client.map`
    over lists): goal >= 2x hand-chunked Dask; and vs a warm ProcessPoolExecutor(2).
A2  `.remote` round trip p50 vs raw Dask's `client.submit(...).result()` on a client of its
    own: goal <= 0.4x.

Each throughput is the best of 3; latencies are p50 over 200 calls.

    .venv/bin/python benchmarks/bench_any_cluster.py [own|user]
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
from nbfan.cluster.local import start_local_cluster

N = 100_000
CHUNKS = 100
CALLS = 200


def inc(x: int) -> int:
    return x + 1


def inc_chunk(xs: list[int]) -> list[int]:
    return [x + 1 for x in xs]


app = nbfan.App("bench-any-cluster")
f_inc = app.function(inc)


def best(run: Any, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def p50_ms(call: Any) -> float:
    for i in range(20):
        assert call(i) == i + 1
    samples = []
    for i in range(CALLS):
        start = time.perf_counter()
        assert call(i) == i + 1
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def measure(name: str, cluster: Any, pool_rate: float) -> None:
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
    nbfan_rate, dask_rate = N / best(ours), N / best(chunked)
    print(f"A1 [{name}] .map {N:,} trivial: nbfan {nbfan_rate:,.0f}/s, Dask hand-chunked x{CHUNKS} "
          f"{dask_rate:,.0f}/s: {nbfan_rate / dask_rate:.2f}x (goal >= 2x) {verdict(nbfan_rate >= 2 * dask_rate)}; "
          f"{nbfan_rate / pool_rate:.2f}x a warm ProcessPoolExecutor(2) ({pool_rate:,.0f}/s)")
    raw = p50_ms(lambda i: plain.submit(inc, i, pure=False).result())
    remote = p50_ms(f_inc.remote)
    print(f"A2 [{name}] .remote p50 {remote:.2f} ms, raw Dask submit().result() {raw:.2f} ms: "
          f"{remote / raw:.2f}x (goal <= 0.4x) {verdict(remote <= 0.4 * raw)}")
    plain.close()
    nbfan.disconnect()


def warm_pool_rate() -> float:
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(inc, range(N), chunksize=N // 8))
        return N / best(lambda: list(pool.map(inc, range(N), chunksize=N // 8)))


def main(argv: list[str]) -> None:
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    wanted = argv[0] if argv else ""
    pool_rate = warm_pool_rate()
    if wanted in "own":
        cluster = start_local_cluster(2, gpus=[])
        try:
            measure("nbfan's own cluster", cluster, pool_rate)
        finally:
            cluster.close()
    if wanted in "user":
        with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster:
            measure("user's LocalCluster", cluster, pool_rate)


if __name__ == "__main__":
    main(sys.argv[1:])
