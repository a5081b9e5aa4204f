"""Issue 25, scale: the scheduler plugin's cost stays flat as workers and inputs grow, and the
snapshots the panel reads stay fast on a wide cluster.

The scheduler runs in a process of its own (with nbfan's plugin, as on any cluster), the workers
in another (N in-process workers, one thread each), this process is the client. For each N in
WORKERS it runs `.map` and `spawn_map` of trivial inputs and prints, per run:

- wall time and the number of tasks the map made (its batches);
- the plugin's CPU time in the scheduler (its hooks: transitions, update_graph, log events,
  stream events, requests), in total and per task: flat per task as N and inputs grow;
- the scheduler process's CPU time and RSS after the run (memory flat: finished calls go);
- the time to take the panel's two snapshots (`calls_snapshot`, `cluster_snapshot`): p50 and
  max of 20, goal < 50 ms, with raw Dask's `scheduler_info()` beside it for scale.

    .venv/bin/python benchmarks/bench_scale.py [--workers 25,100,200] [--inputs 100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
from distributed import Client

import nbfan
from nbfan.api.queries import calls_snapshot, cluster_snapshot
from nbfan.scheduler.telemetry import STREAM_OP

WORKERS_SCRIPT = """
import asyncio, sys
from distributed import Worker

async def main(address, n):
    workers = [Worker(address, nthreads=1, dashboard=False, memory_limit=0) for _ in range(n)]
    await asyncio.gather(*workers)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def plus_one(x: int) -> int:
    return x + 1


app = nbfan.App("bench-scale")
f_plus_one = app.function(plus_one)


def instrument(dask_scheduler: Any) -> None:
    """On the scheduler: count the CPU time nbfan's plugin spends in its hooks and requests
    (thread time of each step a request runs, not of the time it waits), and the tasks that end."""
    import functools
    import inspect
    import time as _time

    plugin = dask_scheduler.plugins["nbfan"]
    if getattr(plugin, "bench_cpu", None) is not None:
        return
    plugin.bench_cpu = [0.0]
    plugin.bench_tasks = [0]

    class Timed:
        """Awaits a coroutine, adding the thread time of each of its steps."""

        def __init__(self, coroutine: Any) -> None:
            self.coroutine = coroutine

        def __await__(self) -> Any:
            steps = self.coroutine.__await__()
            value: Any = None
            error: BaseException | None = None
            while True:
                start = _time.thread_time()
                try:
                    yielded = steps.send(value) if error is None else steps.throw(error)
                except StopIteration as done:
                    plugin.bench_cpu[0] += _time.thread_time() - start
                    return done.value
                plugin.bench_cpu[0] += _time.thread_time() - start
                try:
                    value, error = (yield yielded), None
                except BaseException as exc:
                    value, error = None, exc

    def timed(fn: Any) -> Any:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            start = _time.thread_time()
            try:
                result = fn(*args, **kwargs)
            finally:
                plugin.bench_cpu[0] += _time.thread_time() - start
            return Timed(result) if inspect.isawaitable(result) else result

        return run

    transition = plugin.transition

    def counting(key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if finish == "memory":
            plugin.bench_tasks[0] += 1
        transition(key, start, finish, *args, **kwargs)

    plugin.transition = timed(counting)
    for name in ("update_graph", "log_event", "remove_client", "add_worker", "handle_event"):
        setattr(plugin, name, timed(getattr(plugin, name)))
    plugin.ops = {name: timed(op) for name, op in plugin.ops.items()}  # each request's own work
    dask_scheduler.stream_handlers[STREAM_OP] = plugin.handle_event


def plugin_counts(dask_scheduler: Any) -> tuple[float, int]:
    """The plugin's CPU seconds in its hooks so far, and the tasks that finished."""
    plugin = dask_scheduler.plugins["nbfan"]
    return float(plugin.bench_cpu[0]), int(plugin.bench_tasks[0])


class Scheduler:
    """A `dask scheduler` process of its own, and a process with N in-process workers."""

    def __init__(self, n_workers: int, folder: Path) -> None:
        file = folder / f"scheduler-{n_workers}.json"
        env = {**os.environ, "DASK_DISTRIBUTED__ADMIN__LOG_LENGTH": "0"}
        self.scheduler = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", str(file)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 60
        while not file.exists() or not file.read_text().strip():
            if time.monotonic() > deadline:
                raise RuntimeError("the scheduler did not start")
            time.sleep(0.05)
        self.address = json.loads(file.read_text())["address"]
        self.workers = subprocess.Popen([sys.executable, "-c", WORKERS_SCRIPT, self.address, str(n_workers)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        self.process = psutil.Process(self.scheduler.pid)

    def cpu(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def rss_mb(self) -> float:
        return self.process.memory_info().rss / 2**20

    def close(self) -> None:
        for proc in (self.workers, self.scheduler):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def snapshot_times(client: Client, repeat: int = 20) -> dict[str, tuple[float, float]]:
    """p50 and max, in ms, of the panel's two snapshots and of raw Dask's scheduler_info()."""
    out: dict[str, tuple[float, float]] = {}
    for name, take in (("calls", lambda: calls_snapshot(client)), ("cluster", lambda: cluster_snapshot(client)),
                       ("raw scheduler_info", lambda: client.scheduler_info(n_workers=-1))):
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            take()
            times.append((time.perf_counter() - start) * 1000)
        out[name] = (statistics.median(times), max(times))
    return out


def one_size(n_workers: int, inputs: list[int], folder: Path) -> list[str]:
    rows = []
    cluster = Scheduler(n_workers, folder)
    try:
        with Client(cluster.address) as client:
            client.wait_for_workers(n_workers, timeout=300)
            nbfan.connect(client)
            list(f_plus_one.map(range(1000)))  # warm: the plugin, the function on the workers
            client.run_on_scheduler(instrument)
            for n in inputs:
                for kind in ("map", "spawn_map"):
                    cpu0 = cluster.cpu()
                    plugin0, tasks0 = client.run_on_scheduler(plugin_counts)
                    start = time.perf_counter()
                    if kind == "map":
                        total = sum(f_plus_one.map(range(n)))
                    else:
                        total = sum(f_plus_one.spawn_map(range(n)).get())
                    wall = time.perf_counter() - start
                    assert total == n * (n + 1) // 2, total
                    plugin1, tasks1 = client.run_on_scheduler(plugin_counts)
                    plugin, tasks = plugin1 - plugin0, max(1, tasks1 - tasks0)
                    rows.append(
                        f"{n_workers:>7} {n:>9,} {kind:>9} {wall:>7.2f}s {n / wall:>11,.0f}/s "
                        f"{plugin * 1000:>9.1f} ms {plugin / n * 1e6:>8.2f} us/input {plugin / tasks * 1e6:>7.0f} "
                        f"us/task ({tasks} tasks)  scheduler CPU {cluster.cpu() - cpu0:>6.2f}s "
                        f"RSS {cluster.rss_mb():>5.0f} MB"
                    )
                    print(rows[-1], flush=True)
            for name, (p50, worst) in snapshot_times(client).items():
                goal = "" if name.startswith("raw") else (" ok" if worst < 50 else " MISSED (goal < 50 ms)")
                rows.append(f"{n_workers:>7} snapshot {name}: p50 {p50:.1f} ms, max {worst:.1f} ms{goal}")
                print(rows[-1], flush=True)
            nbfan.disconnect()
    finally:
        cluster.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", default="25,100,200")
    parser.add_argument("--inputs", default="100000,1000000")
    args = parser.parse_args()
    workers = [int(x) for x in args.workers.split(",")]
    inputs = [int(x) for x in args.inputs.split(",")]
    print(textwrap.dedent(f"""\
        scale: workers {workers}, inputs {inputs}; the plugin's CPU per input should stay flat as both grow
        workers    inputs      kind    wall    throughput   plugin CPU   per input"""), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for n in workers:
            one_size(n, inputs, Path(folder))


if __name__ == "__main__":
    main()
