"""Issue 24 part 3: the cost, per task, of putting back the worker's environment, working
directory and sys.path after a plain function's task (`nbfan/worker/process_state.py`).

Measured on this process's own environment (plus `--extra-keys` to look like a fuller one):
- a task that changed nothing (the common case: a dict copy of os.environ, getcwd, a sys.path
  copy, taken and compared);
- a task that set one variable, moved to another folder and appended to sys.path (all put back).
Raw Dask in the same run, for scale: the time per task of trivial tasks on a one-worker,
one-thread in-process LocalCluster (`client.map`, results gathered).

    .venv/bin/python benchmarks/bench_process_state.py [--n 20000] [--tasks 2000] [--extra-keys 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nbfan.worker import process_state  # noqa: E402


def per_task_kept(n: int, change: bool, folder: str) -> float:
    """Seconds per task spent keeping the process state."""
    started = time.perf_counter()
    for i in range(n):
        with process_state.kept():
            if change:
                os.environ["NBFAN_BENCH_SET"] = str(i)
                os.chdir(folder)
                sys.path.append("/nbfan-bench")
    elapsed = time.perf_counter() - started
    if change:  # what the changes themselves cost, without keeping anything
        started = time.perf_counter()
        cwd = os.getcwd()
        for i in range(n):
            os.environ["NBFAN_BENCH_SET"] = str(i)
            os.chdir(folder)
            sys.path.append("/nbfan-bench")
            del os.environ["NBFAN_BENCH_SET"]
            os.chdir(cwd)
            sys.path.pop()
        elapsed -= time.perf_counter() - started
    return elapsed / n


def raw_dask_per_task(tasks: int) -> float:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.gather(client.map(abs, range(100)))  # warm
        started = time.perf_counter()
        client.gather(client.map(abs, range(100, 100 + tasks)))
        return (time.perf_counter() - started) / tasks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000, help="tasks kept per measurement")
    parser.add_argument("--tasks", type=int, default=2_000, help="raw Dask tasks")
    parser.add_argument("--extra-keys", type=int, default=0, help="variables added to the environment first")
    args = parser.parse_args()
    for i in range(args.extra_keys):
        os.environ[f"NBFAN_BENCH_EXTRA_{i}"] = "x" * 40
    folder = tempfile.mkdtemp(prefix="nbfan-bench-")
    quiet = per_task_kept(args.n, False, folder)
    changed = per_task_kept(args.n, True, folder)
    dask = raw_dask_per_task(args.tasks)
    print(f"environment: {len(os.environ)} variables, sys.path: {len(sys.path)} entries")
    print(f"kept, nothing changed:    {quiet * 1e6:7.2f} us per task  ({quiet / dask:.4f}x a raw Dask task)")
    print(f"kept, all three changed:  {changed * 1e6:7.2f} us per task  ({changed / dask:.4f}x a raw Dask task)")
    print(f"raw Dask trivial task:    {dask * 1e6:7.2f} us per task")


if __name__ == "__main__":
    main()
