"""What running inputs in a child process of the worker costs (functions with secrets, an
environment or a timeout; every function under NBFAN_ISOLATE_ALL), against the same function
in the worker's own thread, on one 2-worker cluster in one run: `.remote` round trips and a
map of trivial inputs. Also: deadline to the stuck process gone, and to the slot reused.

    .venv/bin/python benchmarks/bench_isolation.py --calls 200 --inputs 5000
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NBFAN_PROGRESS", "0")

import psutil  # noqa: E402

import nbfan  # noqa: E402
from nbfan.cluster.local import start_local_cluster  # noqa: E402
from nbfan.exception import FunctionTimeoutError  # noqa: E402

app = nbfan.App("bench-isolation")


@app.function
def in_thread(x: int) -> int:
    return x


@app.function(timeout=600)
def in_child(x: int) -> int:
    return x


@app.function(timeout=1)
def stuck(folder: str) -> None:
    Path(folder, "pid").write_text(str(os.getpid()))
    time.sleep(60)


def round_trips(fn: nbfan.Function, n: int) -> float:
    times = []
    for i in range(n):
        start = time.perf_counter()
        fn.remote(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def map_seconds(fn: nbfan.Function, n: int) -> float:
    start = time.perf_counter()
    assert sum(fn.map(range(n))) == n * (n - 1) // 2
    return time.perf_counter() - start


def stop_times() -> tuple[float, float]:
    """(deadline -> stuck process gone, deadline -> next input on that worker done), in ms."""
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        try:
            stuck.remote(folder)
        except FunctionTimeoutError:
            pass
        deadline = start + 1.0
        pid = int(Path(folder, "pid").read_text())
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.001)
        gone = time.perf_counter()
        in_child.remote(0)
        return (gone - deadline) * 1000, (time.perf_counter() - deadline) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--inputs", type=int, default=5000)
    args = parser.parse_args()
    nbfan.connect(start_local_cluster(2, gpus=[]))
    with app.run():
        for fn in (in_thread, in_child):  # warm: functions cached, children forked on both workers
            list(fn.map(range(8)))
        thread_ms, child_ms = round_trips(in_thread, args.calls), round_trips(in_child, args.calls)
        thread_s, child_s = map_seconds(in_thread, args.inputs), map_seconds(in_child, args.inputs)
        gone_ms, reused_ms = stop_times()
    print(f".remote p50: in thread {thread_ms:.2f} ms, in child {child_ms:.2f} ms, ratio {child_ms / thread_ms:.2f}x")
    print(f"map of {args.inputs}: in thread {thread_s:.2f} s, in child {child_s:.2f} s, "
          f"ratio {child_s / thread_s:.2f}x ({(child_s - thread_s) / args.inputs * 1e6:.0f} us more per input)")
    print(f"timeout: stuck process gone {gone_ms:.0f} ms after the deadline; next input done {reused_ms:.0f} ms after")


if __name__ == "__main__":
    main()
