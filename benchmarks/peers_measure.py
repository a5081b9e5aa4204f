"""The child side of `benchmarks/peers.py`: start one system, time every workload on it (each
result checked), stop it, and write what happened to a JSON file for the parent."""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import statistics
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from peer_base import ARRAY_BYTES, NOT_APPLICABLE, TITLES, UNITS, WORKERS, WORKLOADS, Runner, same_sums

# system -> (module, Runner class): one module per peer
RUNNERS = {
    "nbfan": ("peer_nbfan", "NbfanRunner"),
    "dask": ("peer_dask", "DaskRunner"),
    "dask-chunked": ("peer_dask", "DaskChunkedRunner"),
    "ray": ("peer_ray", "RayRunner"),
    "joblib": ("peer_joblib", "JoblibRunner"),
    "ipyparallel": ("peer_ipyparallel", "IpyparallelRunner"),
    "pool": ("peer_pool", "PoolRunner"),
}


def make_runner(system: str, dask_cluster: str) -> Runner:
    """The system's Runner, from its own module (imported here, in the child that runs it)."""
    module_name, class_name = RUNNERS[system]
    kind = getattr(importlib.import_module(module_name), class_name)
    return kind(dask_cluster) if module_name == "peer_dask" else kind()


def best_seconds(run: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def measure_trivial(runner: Runner, n: int, repeat: int) -> dict[str, Any]:
    inputs = list(range(n))
    expected = [x + 1 for x in inputs]
    warm = inputs[: max(WORKERS, n // 20)]
    assert runner.map_trivial(warm) == expected[: len(warm)], "wrong results (warm-up)"

    def run() -> None:
        results = runner.map_trivial(inputs)
        assert results == expected, f"wrong results: {len(results)} of {n}, sum {sum(results)} != {sum(expected)}"

    seconds = best_seconds(run, repeat)
    return {"value": n / seconds, "seconds": seconds, "n": n}


def measure_arrays(runner: Runner, count: int, size: int, repeat: int) -> dict[str, Any]:
    import numpy as np

    arrays = [np.random.default_rng(i).random(size // 8) for i in range(count)]
    expected = [float(a.sum()) for a in arrays]
    warm = max(WORKERS, count // 10)
    assert same_sums(runner.map_arrays(arrays[:warm]), expected[:warm]), "wrong results (warm-up)"
    inexact = 0

    def run() -> None:
        nonlocal inexact
        results = runner.map_arrays(arrays)
        assert same_sums(results, expected), f"wrong results: {len(results)} of {count} sums, first wrong at " + str(
            next((i for i, (r, e) in enumerate(zip(results, expected)) if not math.isclose(r, e, rel_tol=1e-12)), None)
        )
        inexact = max(inexact, sum(r != e for r, e in zip(results, expected)))

    seconds = best_seconds(run, repeat)
    # sums off in the last bits: the arrays reached the worker unaligned (shown in the notes)
    return {"value": count * size / 1e6 / seconds, "seconds": seconds, "n": count, "inexact": inexact}


def measure_latency(runner: Runner, calls: int, warmup: int) -> dict[str, Any]:
    for i in range(warmup):
        assert runner.call(i) == i + 1, "wrong result (warm-up)"
    samples = []
    for i in range(calls):
        start = time.perf_counter()
        result = runner.call(i)
        samples.append(time.perf_counter() - start)
        assert result == i + 1, f"wrong result: f({i}) = {result!r}"
    return {
        "p50": statistics.median(samples) * 1e3,
        "p90": percentile(samples, 0.9) * 1e3,
        "n": calls,
    }


def run_system(system: str, sizes: dict[str, int], repeat: int, dask_cluster: str, out: Path) -> None:
    """Child side: start one system, run every workload, stop it; write what happened to `out`."""
    warnings.filterwarnings("ignore", message=".*[Ll]arge graph.*")
    warnings.filterwarnings("ignore", message=".*[Ll]arge object.*")
    result: dict[str, Any] = {"system": system, "workloads": {}}

    def save() -> None:
        out.write_text(json.dumps(result))

    runner = make_runner(system, dask_cluster)
    start = time.perf_counter()
    try:
        runner.start()
    except Exception:
        result["error"] = traceback.format_exc()
        save()
        with contextlib.suppress(Exception):
            runner.stop()
        raise
    result["startup_s"] = time.perf_counter() - start
    print(f"  started in {result['startup_s']:.1f} s", flush=True)
    save()
    try:
        for workload in WORKLOADS:
            if (system, workload) in NOT_APPLICABLE:
                continue
            start = time.perf_counter()
            try:
                if workload == "trivial":
                    got = measure_trivial(runner, sizes["trivial"], repeat)
                elif workload == "latency":
                    got = measure_latency(runner, sizes["calls"], sizes["warmup_calls"])
                else:
                    got = measure_arrays(runner, sizes[workload], ARRAY_BYTES[workload], repeat)
            except Exception as e:
                traceback.print_exc()
                got = {"error": f"{type(e).__name__}: {e}".splitlines()[0][:200]}
            result["workloads"][workload] = got
            save()
            shown = got.get("error") or (
                f"{got['p50']:.2f} / {got['p90']:.2f} ms"
                if workload == "latency"
                else f"{got['value']:,.0f} {UNITS[workload]}"
            )
            print(f"  {TITLES[workload]}: {shown}  ({time.perf_counter() - start:.1f} s)", flush=True)
    finally:
        stop = time.perf_counter()
        runner.stop()
        print(f"  stopped in {time.perf_counter() - stop:.1f} s", flush=True)
