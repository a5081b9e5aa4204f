"""Issue 25, width: a map on a cluster with many slots fills them all, against raw Dask's
`client.map` (one task per input) measured in the same run on the same cluster.

W1  100 slots (2 worker processes x 50 threads), 1,000 inputs x 0.1 s sleep: ideal 1.0 s,
    on a plain LocalCluster handed to nbfan.connect, then on a stock Dask cluster (no nbfan
    installed: `.venv-stock`). Goal: nbfan <= 1.1x raw Dask's wall, >= 0.9 of ideal.
W2  100 in-process workers x 1 thread, 300 inputs x 50 ms sleep: ideal 0.15 s.
    Goal: nbfan <= 1.1x raw Dask's wall.

Each figure is the best of 3 (the machine is shared: noise only adds time).

    .venv/bin/python benchmarks/bench_wide.py [w1|w1-stock|w2]
"""

from __future__ import annotations

import os
import sys
import time

from distributed import Client, LocalCluster

import nbfan

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from field_record import record  # noqa: E402
from peers_measure import best_seconds  # noqa: E402

REPEAT = 3


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


app = nbfan.App("bench-wide")
f_nap = app.function(nap)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def compare(name: str, client: Client, n: int, seconds: float, slots: int) -> None:
    expected = [seconds] * n

    def raw() -> None:
        assert client.gather(client.map(nap, [seconds] * n, pure=False)) == expected

    def ours() -> None:
        assert list(f_nap.map([seconds] * n)) == expected

    ours()  # warm: the function's first deserialization on each worker, connections
    raw()
    raw_s, nbfan_s = best_seconds(raw, REPEAT), best_seconds(ours, REPEAT)
    ideal = n * seconds / slots
    print(f"{name} {n} x {seconds}s on {slots} slots: raw Dask {raw_s:.3f}s, nbfan {nbfan_s:.3f}s, ideal {ideal:.3f}s")
    print(f"{name} nbfan / raw Dask {nbfan_s / raw_s:.2f}x (goal <= 1.1x) {verdict(nbfan_s / raw_s <= 1.1)}; "
          f"of ideal {ideal / nbfan_s:.2f} (raw Dask {ideal / raw_s:.2f})")
    record(name, nbfan_s=nbfan_s, raw_s=raw_s, ideal_s=ideal, n=n, seconds=seconds, slots=slots)


def w1() -> None:
    with LocalCluster(n_workers=2, threads_per_worker=50, dashboard_address=":0") as cluster, Client(cluster) as client:
        nbfan.connect(client)
        compare("W1", client, 1000, 0.1, 100)
        print("W1 goal also: >= 0.9 of ideal")
        nbfan.disconnect()


def w1_stock() -> None:
    sys.path.insert(0, os.path.dirname(__file__))
    from stock_cluster import stock_cluster

    with stock_cluster(2, threads=50) as address, Client(address) as client:
        client.wait_for_workers(2)
        nbfan.connect(client)
        compare("W1 [stock cluster]", client, 1000, 0.1, 100)
        nbfan.disconnect()


def w2() -> None:
    with LocalCluster(n_workers=100, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(100)
        nbfan.connect(client)
        compare("W2", client, 300, 0.05, 100)
        nbfan.disconnect()


def main(argv: list[str]) -> None:
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    wanted = argv[0] if argv else ""
    for name, run in (("w1", w1), ("w1-stock", w1_stock), ("w2", w2)):
        if wanted in name:
            run()


if __name__ == "__main__":
    main(sys.argv[1:])
