"""nbfan beside its peers: the same workloads on nbfan, raw Dask, hand-chunked Dask, Ray,
joblib, ipyparallel and a process pool, one after the other on this machine (`make bench-peers`).

    .venv/bin/python benchmarks/peers.py [--quick] [--systems nbfan,dask,ray,...]

Every system gets 2 workers of 1 thread each, in processes. Each one runs in an interpreter of
its own, started and shut down before the next (nothing it leaves behind competes for the
cores), and each result is checked, so that a broken system cannot report a fast number.

Workloads:
  (a) map `x + 1` over 100,000 ints                      inputs/s
  (b) map `a.sum()` over 400 float64 arrays of 1 MiB      MB/s of input
  (c) map `a.sum()` over 60 float64 arrays of 16 MiB      MB/s of input
  (d) one trivial call, round trip: p50 / p90 in ms over 200 calls after 20 warm-up calls

A map's figure is the best of --repeat runs after a small warm-up map. Writes the table to
stdout and to benchmarks/results/peers.md, and a chart to benchmarks/results/peers.png.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
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
# what the workers run (module level: every system can ship these)


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


# ---------------------------------------------------------------------------------------------
# one system, in its own interpreter


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


class NbfanRunner(Runner):
    def start(self) -> None:
        import nbfan
        from nbfan.cluster.local import start_local_cluster

        self.cluster = start_local_cluster(WORKERS, gpus=[])
        client = nbfan.connect(self.cluster)
        client.wait_for_workers(WORKERS)
        app = nbfan.App("peers")
        self.inc = app.function(inc)
        self.total = app.function(total)

    def map_trivial(self, inputs):
        return list(self.inc.map(inputs))

    def map_arrays(self, arrays):
        return list(self.total.map(arrays))

    def call(self, x):
        return self.inc.remote(x)

    def stop(self) -> None:
        import nbfan

        nbfan.disconnect()
        self.cluster.close()


class DaskRunner(Runner):
    """Raw Dask as its users start it: a LocalCluster of 2 worker processes of 1 thread and a
    plain Client, one task per input (`--dask-cluster nbfan` runs it on nbfan's local cluster
    instead, still through a plain Client)."""

    chunked = False

    def __init__(self, cluster_kind: str) -> None:
        self.cluster_kind = cluster_kind

    def start(self) -> None:
        from distributed import Client, LocalCluster

        if self.cluster_kind == "nbfan":
            from nbfan.cluster.local import start_local_cluster

            self.cluster = start_local_cluster(WORKERS, gpus=[])
        else:
            self.cluster = LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None)
        self.client = Client(self.cluster)
        self.client.wait_for_workers(WORKERS)

    def map_trivial(self, inputs):
        if self.chunked:
            return flat(self.client.gather(self.client.map(inc_chunk, chunks(inputs, chunk_size(len(inputs))), pure=False)))
        return self.client.gather(self.client.map(inc, inputs, pure=False))

    def map_arrays(self, arrays):
        if self.chunked:
            parts = chunks(arrays, array_chunk_size(len(arrays)))
            return flat(self.client.gather(self.client.map(total_chunk, parts, pure=False)))
        return self.client.gather(self.client.map(total, arrays, pure=False))

    def call(self, x):
        return self.client.submit(inc, x, pure=False).result()

    def stop(self) -> None:
        self.client.close()
        self.cluster.close()


class DaskChunkedRunner(DaskRunner):
    """Dask with the inputs batched by hand: trivial inputs in CHUNKS tasks."""

    chunked = True


class RayRunner(Runner):
    def start(self) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reporting home from a benchmark
        import logging

        import ray

        ray.init(num_cpus=WORKERS, include_dashboard=False, logging_level=logging.WARNING)
        self.ray = ray
        self.inc = ray.remote(inc)
        self.inc_chunk = ray.remote(inc_chunk)
        self.total = ray.remote(total)

    def map_trivial(self, inputs):
        return flat(self.ray.get([self.inc_chunk.remote(c) for c in chunks(inputs, chunk_size(len(inputs)))]))

    def map_arrays(self, arrays):
        return self.ray.get([self.total.remote(a) for a in arrays])

    def call(self, x):
        return self.ray.get(self.inc.remote(x))

    def stop(self) -> None:
        self.ray.shutdown()


class JoblibRunner(Runner):
    def start(self) -> None:
        from joblib import Parallel, delayed

        self.parallel = Parallel(n_jobs=WORKERS, backend="loky")
        self.delayed = delayed
        assert self.parallel(delayed(inc)(i) for i in range(WORKERS)) == [1, 2]  # starts loky's workers

    def map_trivial(self, inputs):
        return self.parallel(self.delayed(inc)(x) for x in inputs)

    def map_arrays(self, arrays):
        return self.parallel(self.delayed(total)(a) for a in arrays)

    def stop(self) -> None:
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True, kill_workers=True)


class IpyparallelRunner(Runner):
    def start(self) -> None:
        import ipyparallel as ipp

        self.cluster = ipp.Cluster(n=WORKERS, log_level=40)
        self.rc = self.cluster.start_and_connect_sync()
        self.rc.wait_for_engines(WORKERS, timeout=120)
        self.rc[:].use_cloudpickle()
        self.view = self.rc.load_balanced_view()

    def map_trivial(self, inputs):
        return list(self.view.map_sync(inc, inputs, chunksize=chunk_size(len(inputs))))

    def map_arrays(self, arrays):
        return list(self.view.map_sync(total, arrays))

    def call(self, x):
        return self.view.apply_sync(inc, x)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.rc.close()
        self.cluster.stop_cluster_sync()


class PoolRunner(Runner):
    """concurrent.futures.ProcessPoolExecutor(2). For the maps the pool's start-up is part of the
    time (`with ProcessPoolExecutor(2) as pool: pool.map(...)`, as it is used); the round trip
    uses one pool, started before the warm-up calls."""

    def start(self) -> None:
        from concurrent.futures import ProcessPoolExecutor

        self.executor = ProcessPoolExecutor
        self.pool = ProcessPoolExecutor(WORKERS)
        assert self.pool.submit(inc, 1).result() == 2

    def map_trivial(self, inputs):
        with self.executor(WORKERS) as pool:
            return list(pool.map(inc, inputs, chunksize=max(1, len(inputs) // 8)))

    def map_arrays(self, arrays):
        with self.executor(WORKERS) as pool:
            return list(pool.map(total, arrays))

    def call(self, x):
        return self.pool.submit(inc, x).result()

    def stop(self) -> None:
        self.pool.shutdown(wait=True)


def make_runner(system: str, dask_cluster: str) -> Runner:
    if system == "dask":
        return DaskRunner(dask_cluster)
    if system == "dask-chunked":
        return DaskChunkedRunner(dask_cluster)
    return {
        "nbfan": NbfanRunner,
        "ray": RayRunner,
        "joblib": JoblibRunner,
        "ipyparallel": IpyparallelRunner,
        "pool": PoolRunner,
    }[system]()


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


# ---------------------------------------------------------------------------------------------
# the parent: one child per system, then the table and the chart


def processes_marked(marker: str) -> list[Any]:
    """Processes whose environment carries `marker`: everything a child started, however far
    it detached itself (Ray's and ipyparallel's daemons are not our children any more)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):
            if proc.pid != os.getpid() and proc.environ().get("PEERS_RUN") == marker:
                found.append(proc)
    return found


def end_leftovers(marker: str, system: str) -> None:
    """Every process of this system must be gone before the next system starts."""
    try:
        import psutil
    except ImportError:
        return
    deadline = time.monotonic() + 15
    left = processes_marked(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = [p for p in left if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    if not left:
        return
    names = ", ".join(sorted({p.name() for p in left if p.is_running()}))
    print(f"  {system}: {len(left)} process(es) still running after its shutdown ({names}): ending them", flush=True)
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(left, timeout=10)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()


def run_child(system: str, args: argparse.Namespace) -> dict[str, Any]:
    marker = f"{system}-{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        out = Path(tmp) / "result.json"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            system,
            "--out",
            str(out),
            "--repeat",
            str(args.repeat),
            "--dask-cluster",
            args.dask_cluster,
        ] + (["--quick"] if args.quick else [])
        env = {**os.environ, "PEERS_RUN": marker}
        start = time.perf_counter()
        proc = subprocess.Popen(command, env=env, start_new_session=True)
        try:
            code = proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            code = None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            end_leftovers(marker, system)
        result = json.loads(out.read_text()) if out.exists() else {"system": system, "workloads": {}}
    result["wall_s"] = time.perf_counter() - start
    if code is None:
        result["error"] = f"timed out after {args.timeout} s"
    elif code != 0 and "error" not in result:
        result["error"] = f"exited with code {code}"
    if "error" in result:
        first = result["error"].strip().splitlines()[-1] if result["error"].strip() else result["error"]
        result["error"] = first[:200]
    return result


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 2**20:.0f} GiB"
                break
    cores = os.cpu_count()
    with contextlib.suppress(AttributeError):
        cores = len(os.sched_getaffinity(0))
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return f"{cpu}, {cores} cores, {ram} RAM, Python {platform.python_version()}, {now}"


def versions_line() -> str:
    found = []
    for name in VERSIONS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found.append(f"{name} {importlib.metadata.version(name)}")
    return ", ".join(found)


def cell(system: str, workload: str, results: dict[str, dict[str, Any]], ratios: bool = True) -> str:
    r = results.get(system)
    if r is None:
        return "-"
    if (system, workload) in NOT_APPLICABLE:
        return "n/a"
    got = r.get("workloads", {}).get(workload)
    if got is None:
        return "skipped" if r.get("skipped") else "failed"
    if "error" in got:
        return "failed"
    if workload == "latency":
        return f"{got['p50']:.2f} / {got['p90']:.2f}"
    text = f"{got['value']:,.0f}"
    base = results.get("dask", {}).get("workloads", {}).get(workload, {})
    if ratios and "value" in base and system != "dask":
        text += f" ({got['value'] / base['value']:.2f}x)"
    return text


def table_rows(systems: list[str], results: dict[str, dict[str, Any]], sizes: dict[str, int]) -> list[list[str]]:
    rows = [["workload"] + [LABELS[s] for s in systems]]
    for workload in WORKLOADS:
        if workload == "trivial":
            name = f"(a) map x+1, {sizes['trivial']:,} inputs: inputs/s"
        elif workload == "latency":
            name = f"(d) one call, {sizes['calls']} calls: ms p50 / p90"
        else:
            name = f"{TITLES[workload][:3]} map a.sum(), {sizes[workload]} x {ARRAY_BYTES[workload] >> 20} MiB: MB/s"
        rows.append([name] + [cell(s, workload, results) for s in systems])
    startup = ["start-up, s (not in the figures above)"]
    for s in systems:
        value = results.get(s, {}).get("startup_s")
        startup.append(f"{value:.1f}" if value is not None else "-")
    rows.append(startup)
    return rows


def plain_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join(["---"] + ["---:"] * (len(rows[0]) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def notes(systems: list[str], results: dict[str, dict[str, Any]], args: argparse.Namespace) -> list[str]:
    lines = [
        f"Every system: {WORKERS} worker processes of 1 thread, started and shut down on its own, one system at a time. "
        f"Maps: best of {args.repeat} after a warm-up map; MB/s counts the input arrays' bytes. "
        "Throughput cells: (ratio against raw Dask, higher is faster).",
        "nbfan: `App.function(fn).map(inputs)` and `.remote(x)` on `start_local_cluster(2)`. "
        + (
            "raw Dask: plain `Client` on `LocalCluster(n_workers=2, threads_per_worker=1)`, `client.map` one task per input. "
            if args.dask_cluster == "local"
            else "raw Dask: plain `Client` on nbfan's `start_local_cluster(2)`, `client.map` one task per input. "
        )
        + f"Dask, chunked: trivial inputs in {CHUNKS} tasks; arrays min({ARRAY_CHUNK}, count/{2 * WORKERS}) per task.",
        f"Ray: `ray.init(num_cpus={WORKERS})`, trivial inputs in {CHUNKS} tasks, one task per array. "
        "joblib: `Parallel(n_jobs=2)` (loky, its automatic batching). "
        f"ipyparallel: `ipp.Cluster(n={WORKERS})`, load-balanced `map_sync` (trivial inputs in {CHUNKS} chunks), `apply_sync`. "
        "ProcessPool: `ProcessPoolExecutor(2)`, `map` with chunksize=N//8 for trivial inputs; its maps include the pool's start-up.",
    ]
    for s in systems:
        r = results.get(s, {})
        if r.get("skipped"):
            lines.append(f"{LABELS[s]}: skipped ({r['skipped']}).")
        elif r.get("error"):
            lines.append(f"{LABELS[s]}: failed: {r['error']}")
        for workload, got in r.get("workloads", {}).items():
            if "error" in got:
                lines.append(f"{LABELS[s]}, {TITLES[workload]}: failed: {got['error']}")
            elif got.get("inexact"):
                lines.append(
                    f"{LABELS[s]}, {TITLES[workload]}: {got['inexact']} of {got['n']} sums differ from the local ones "
                    "in the last bits (arrays that reach a worker unaligned are summed along another SIMD path)."
                )
        for (ns, nw), why in NOT_APPLICABLE.items():
            if ns == s and not r.get("skipped"):
                lines.append(f"{LABELS[s]}, {TITLES[nw]}: n/a ({why}).")
    return lines


def chart(
    systems: list[str], results: dict[str, dict[str, Any]], sizes: dict[str, int], path: Path, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(14, 9.5))
    for ax, workload in zip(axes.flat, WORKLOADS):
        labels, values, upper, shown = [], [], [], []
        for s in systems:
            got = results.get(s, {}).get("workloads", {}).get(workload)
            labels.append(LABELS[s])
            if got is None or "error" in got:
                values.append(0.0)
                upper.append(0.0)
                shown.append(cell(s, workload, results))
            elif workload == "latency":
                values.append(got["p50"])
                upper.append(got["p90"] - got["p50"])
                shown.append(f"{got['p50']:.2f}")
            else:
                values.append(got["value"])
                upper.append(0.0)
                shown.append(f"{got['value']:,.0f}")
        x = list(range(len(systems)))
        bars = ax.bar(x, values, color=[COLORS[s] for s in systems])
        if workload == "latency":
            ax.errorbar(x, values, yerr=[[0.0] * len(x), upper], fmt="none", ecolor="black", capsize=4, lw=1)
        positive = [v for v in values if v > 0]
        if positive and max(positive) / min(positive) > 8:
            ax.set_yscale("log")
        top = max([v + u for v, u in zip(values, upper)] + [1e-9])
        if ax.get_yscale() == "log":
            ax.set_ylim(min(positive) / 3, top * 4)
        else:
            ax.set_ylim(0, top * 1.2)
        for bar, value, extra, text in zip(bars, values, upper, shown):
            y = value + extra if value > 0 else (min(positive) / 2.5 if ax.get_yscale() == "log" and positive else 0)
            ax.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, y),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=8,
                color="black" if value > 0 else "gray",
            )
        ax.set_xticks(x, labels, rotation=25, ha="right", fontsize=9)
        for tick, s in zip(ax.get_xticklabels(), systems):
            tick.set_fontweight("bold" if s == "nbfan" else "normal")
        if workload == "trivial":
            ax.set_title(f"{TITLES[workload]}, {sizes['trivial']:,} inputs (higher is better)", fontsize=10)
            ax.set_ylabel("inputs/s")
        elif workload == "latency":
            ax.set_title(f"{TITLES[workload]}: p50, bar to p90, {sizes['calls']} calls (lower is better)", fontsize=10)
            ax.set_ylabel("ms")
        else:
            ax.set_title(f"{TITLES[workload]}, {sizes[workload]} inputs (higher is better)", fontsize=10)
            ax.set_ylabel("MB/s of input")
        ax.grid(axis="y", which="both", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small workloads, for a smoke run (10k inputs, 40 x 1 MiB, 6 x 16 MiB, 50 calls)",
    )
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, from: {','.join(SYSTEMS)}")
    parser.add_argument(
        "--repeat", type=int, default=None, help="timed runs per map, the best counts (default 3, 1 with --quick)"
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds one system may take (default 1800, 600 with --quick)"
    )
    parser.add_argument(
        "--dask-cluster",
        choices=["local", "nbfan"],
        default="local",
        help="raw Dask's cluster: distributed.LocalCluster (default) or nbfan's start_local_cluster",
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="where peers.md and peers.png go")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.timeout is None:
        args.timeout = 600 if args.quick else 1800

    if args.child:
        run_system(args.child, sizes, args.repeat, args.dask_cluster, args.out)
        return 0

    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)}: choose from {', '.join(SYSTEMS)}")
    machine, versions = machine_line(), versions_line()
    print(f"machine: {machine}\nversions: {versions}")
    print(
        f"workloads: {sizes['trivial']:,} trivial inputs, {sizes['arrays_1m']} x 1 MiB, {sizes['arrays_16m']} x 16 MiB, "
        f"{sizes['calls']} calls; best of {args.repeat}\n",
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    for system in systems:
        module = NEEDS[system]
        if importlib.util.find_spec(module.split(".")[0]) is None:
            print(f"== {LABELS[system]}: skipped ({module} is not installed)\n", flush=True)
            results[system] = {"system": system, "skipped": f"{module} is not installed", "workloads": {}}
            continue
        print(f"== {LABELS[system]}", flush=True)
        results[system] = run_child(system, args)
        if results[system].get("error"):
            print(f"  {LABELS[system]} failed: {results[system]['error']}", flush=True)
        print(f"  ({results[system]['wall_s']:.0f} s in all)\n", flush=True)

    rows = table_rows(systems, results, sizes)
    print(plain_table(rows))
    note_lines = notes(systems, results, args)
    print("\n" + "\n".join(note_lines))

    args.out_dir.mkdir(parents=True, exist_ok=True)
    md = args.out_dir / "peers.md"
    header = f"Machine: {machine}" + (" (--quick)" if args.quick else "")
    md.write_text(
        f"{header}\n\nVersions: {versions}\n\n"
        f"# nbfan and its peers\n\n{markdown_table(rows)}\n\n" + "\n".join(f"- {line}" for line in note_lines) + "\n"
    )
    print(f"\nwrote {md}")
    try:
        png = args.out_dir / "peers.png"
        chart(
            systems,
            results,
            sizes,
            png,
            f"{WORKERS} workers of 1 thread each; {machine}" + (" (--quick)" if args.quick else ""),
        )
        print(f"wrote {png}")
    except ImportError as e:
        print(f"no chart: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
