"""What the journal of durable state costs (scheduler/journal.py): the same work on a local
cluster with the journal off, then on (a fresh cluster each), and raw Dask's `client.map` of
the arrays on the same cluster as a reference.

    .venv/bin/python benchmarks/bench_journal.py [--trivial N] [--arrays N] [--dict N]

Issue 27's sizes are 100,000 trivial inputs and 2,000 x 1 MiB arrays; the defaults here are
smaller (20,000 and 200) so that a run stays short on a small machine. Each figure is the best of
REPEAT runs on its cluster (noise on a shared machine only adds time). Goal: on <= 1.10x off."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import dask
import numpy as np

import nbfan
from nbfan.cluster.local import start_local_cluster

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers_measure import best_seconds  # noqa: E402

REPEAT = 3

app = nbfan.App("bench-journal")


@app.function
def inc(x: int) -> int:
    return x + 1


@app.function
def nbytes(a: Any) -> int:
    return int(a.nbytes)


def plain_nbytes(a: Any) -> int:
    return int(a.nbytes)


def measure(journal_dir: str, trivial: int, arrays: int, dict_ops: int) -> dict[str, float]:
    with dask.config.set({"nbfan.journal-dir": journal_dir}):
        cluster = start_local_cluster(2, subprocess=False)
        try:
            client = nbfan.connect(cluster)
            inc.remote(1)  # warm: the plugin, the workers' imports
            out: dict[str, float] = {}
            data = [np.full(2**17, i, dtype=np.float64) for i in range(arrays)]  # 1 MiB each

            def trivial_map() -> None:
                assert inc.spawn_map(range(trivial)).get()[-1] == trivial

            def array_map() -> None:
                assert sum(nbytes.spawn_map(data).get()) == arrays * 2**20

            def raw_dask() -> None:
                futures = client.map(plain_nbytes, data, pure=False)
                assert sum(client.gather(futures)) == arrays * 2**20

            for name, run in (("trivial", trivial_map), ("arrays", array_map), ("raw_dask_arrays", raw_dask)):
                out[name] = best_seconds(run, REPEAT)
            d = nbfan.Dict.from_name("bench", create_if_missing=True)
            puts, gets = [], []
            for i in range(dict_ops):
                t = time.perf_counter()
                d[i] = i
                puts.append(time.perf_counter() - t)
                t = time.perf_counter()
                assert d[i] == i
                gets.append(time.perf_counter() - t)
            out["dict_put_ms"] = statistics.median(puts) * 1e3
            out["dict_get_ms"] = statistics.median(gets) * 1e3
            nbfan.disconnect()
            return out
        finally:
            cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trivial", type=int, default=20_000)
    parser.add_argument("--arrays", type=int, default=200)
    parser.add_argument("--dict", type=int, default=200)
    args = parser.parse_args()
    off = measure("off", args.trivial, args.arrays, args.dict)
    with tempfile.TemporaryDirectory() as directory:
        on = measure(directory, args.trivial, args.arrays, args.dict)
    print(f"spawn_map {args.trivial:,} trivial inputs: off {off['trivial']:.2f}s  on {on['trivial']:.2f}s  "
          f"on/off {on['trivial'] / off['trivial']:.2f}x")
    print(f"spawn_map {args.arrays:,} x 1 MiB arrays: off {off['arrays']:.2f}s  on {on['arrays']:.2f}s  "
          f"on/off {on['arrays'] / off['arrays']:.2f}x  (raw Dask client.map {on['raw_dask_arrays']:.2f}s: "
          f"on {on['arrays'] / on['raw_dask_arrays']:.2f}x raw Dask)")
    print(f"Dict put p50: off {off['dict_put_ms']:.2f} ms  on {on['dict_put_ms']:.2f} ms; "
          f"get p50: off {off['dict_get_ms']:.2f} ms  on {on['dict_get_ms']:.2f} ms")


if __name__ == "__main__":
    main()
