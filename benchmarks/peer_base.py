"""What every peer of `benchmarks/peers.py` shares: the settings, the workloads' names and sizes,
the functions the workers run and the `Runner` interface each peer module implements.

The workers' functions travel by value where the system pickles with cloudpickle (as the
functions of a script do, which is how they ran when they lived in peers.py); elsewhere (Ray's
and joblib's own copies of cloudpickle, the process pool) by reference: the runner puts this
folder on every child's PYTHONPATH, so their workers can import this module."""

from __future__ import annotations

import contextlib
import math
import sys
from typing import Any

with contextlib.suppress(ImportError):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])

WORKERS = 2
CHUNKS = 100  # tasks where a system is chunked by hand (trivial inputs): "hand-chunked x100"
ARRAY_CHUNK = 100  # arrays per task at most where a system is chunked by hand

SYSTEMS = ["nbfan", "dask", "dask-chunked", "ray", "joblib", "ipyparallel", "pool"]
LABELS = {
    "nbfan": "nbfan",
    "dask": "raw Dask",
    "dask-chunked": "Dask, chunked",
    "ray": "Ray",
    "joblib": "joblib",
    "ipyparallel": "ipyparallel",
    "pool": "ProcessPool",
}
# the module each system needs; a system whose module is missing is skipped
NEEDS = {
    "nbfan": "nbfan",
    "dask": "distributed",
    "dask-chunked": "distributed",
    "ray": "ray",
    "joblib": "joblib",
    "ipyparallel": "ipyparallel",
    "pool": "concurrent.futures",
}
WORKLOADS = ["trivial", "arrays_1m", "arrays_16m", "latency"]
TITLES = {
    "trivial": "(a) map x+1",
    "arrays_1m": "(b) map a.sum(), 1 MiB arrays",
    "arrays_16m": "(c) map a.sum(), 16 MiB arrays",
    "latency": "(d) one call, round trip",
}
COLORS = {
    "nbfan": "#d62728",
    "dask": "#1f77b4",
    "dask-chunked": "#9ecae1",
    "ray": "#ff7f0e",
    "joblib": "#9467bd",
    "ipyparallel": "#8c564b",
    "pool": "#7f7f7f",
}
UNITS = {"trivial": "inputs/s", "arrays_1m": "MB/s", "arrays_16m": "MB/s", "latency": "ms p50/p90"}
FULL = {"trivial": 100_000, "arrays_1m": 400, "arrays_16m": 60, "calls": 200, "warmup_calls": 20}
QUICK = {"trivial": 10_000, "arrays_1m": 40, "arrays_16m": 6, "calls": 50, "warmup_calls": 10}
ARRAY_BYTES = {"arrays_1m": 1 << 20, "arrays_16m": 16 << 20}
VERSIONS = ["nbfan", "dask", "distributed", "ray", "joblib", "ipyparallel", "numpy", "cloudpickle", "matplotlib"]
NOT_APPLICABLE = {
    ("joblib", "latency"): "joblib has no single-call round trip",
    ("dask-chunked", "latency"): "one call is one task: the same as raw Dask",
}


# ---------------------------------------------------------------------------------------------
# what the workers run


def inc(x: int) -> int:
    return x + 1


def inc_chunk(xs: list[int]) -> list[int]:
    return [x + 1 for x in xs]


def total(a: Any) -> float:
    return float(a.sum())


def total_chunk(arrays: list[Any]) -> list[float]:
    return [float(a.sum()) for a in arrays]


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def flat(parts: list[list[Any]]) -> list[Any]:
    return [x for part in parts for x in part]


def same_sums(results: list[float], expected: list[float]) -> bool:
    """Equal to the last few bits: a sum over an array that arrives unaligned (raw Dask's arrays
    can land at odd addresses) takes another SIMD path and may round differently."""
    return len(results) == len(expected) and all(math.isclose(r, e, rel_tol=1e-12) for r, e in zip(results, expected))


def chunk_size(count: int) -> int:
    """Inputs per task for hand-chunked trivial inputs: CHUNKS tasks in all."""
    return max(1, math.ceil(count / CHUNKS))


def array_chunk_size(count: int) -> int:
    """Inputs per task for the hand-chunked arrays: ARRAY_CHUNK, but at least 2 tasks per worker
    (60 arrays of 16 MiB in one task of 960 MiB would leave one worker idle)."""
    return max(1, min(ARRAY_CHUNK, math.ceil(count / (2 * WORKERS))))


class Runner:
    """How one system starts, maps, calls once and stops. `map_trivial(inputs)` and
    `map_arrays(arrays)` return the results in input order; `call(x)` returns f(x)."""

    def start(self) -> None:
        raise NotImplementedError

    def map_trivial(self, inputs: list[int]) -> list[int]:
        raise NotImplementedError

    def map_arrays(self, arrays: list[Any]) -> list[float]:
        raise NotImplementedError

    def call(self, x: int) -> int:
        raise NotImplementedError

    def stop(self) -> None:
        pass
