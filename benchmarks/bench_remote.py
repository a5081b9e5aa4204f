"""Issue 2 figures: `.remote` round trip vs raw `client.submit(...).result()` on the same
cluster (goal <= 1.2x), and embedded-cluster start-up time.

    .venv/bin/python benchmarks/bench_remote.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import nbfan
from nbfan.cluster.local import start_local_cluster

ROUNDS = 300


def inc(x: int) -> int:
    return x + 1


app = nbfan.App("bench-remote")
remote_inc = app.function(inc)


def median_seconds(call, rounds: int = ROUNDS) -> float:
    for i in range(20):  # warm up both paths (function caches, connections)
        call(i)
    samples = []
    for i in range(rounds):
        start = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


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
    dask_default = median_seconds(lambda i: plain.submit(inc, i, pure=False).result())
    plain.close()
    raw = median_seconds(lambda i: client.submit(inc, i, pure=False).result())
    ours = median_seconds(lambda i: remote_inc.remote(i))
    raw_again = median_seconds(lambda i: client.submit(inc, i, pure=False).result())
    baseline = min(raw, raw_again)
    print(f"raw Dask, default client:     {dask_default * 1e3:.2f} ms (median of {ROUNDS})")
    print(f"raw submit on nbfan's client: {baseline * 1e3:.2f} ms (send interval {nbfan.config.send_interval * 1e3:g} ms)")
    print(f"nbfan .remote():              {ours * 1e3:.2f} ms")
    print(f"ratio .remote / raw (same client): {ours / baseline:.2f}x   (goal <= 1.2x)")
    print(f"ratio .remote / raw Dask default:  {ours / dask_default:.2f}x")
    nbfan.disconnect()
    cluster.close()
    starts = [startup_seconds() for _ in range(3)]
    print(f"embedded cluster start-up (import to ready, {len(starts)} runs): "
          f"median {statistics.median(starts):.2f} s, min {min(starts):.2f} s")


if __name__ == "__main__":
    main()
