"""Issue 5 figure: the cost of progress under the cell on the P1 fine-grained workload.

100k trivial inputs through `.map` on a 2-worker cluster (one thread each), run inside a real
nbfan kernel (so the ipywidgets bar and its comm messages are the real ones), alternating
`nbfan.config.progress = False / True`; plus the text bar in this process. Goal: on/off <= 1.05.

    .venv/bin/python benchmarks/bench_progress.py [--reps 7]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("NBFAN_HOME", str(Path("/tmp") / f"nbfan-bench-home-{os.getpid()}"))

import nbfan  # noqa: E402
from nbfan.cluster.local import start_local_cluster  # noqa: E402
from nbfan.fanout.progress import set_progress_factory  # noqa: E402

N = 100_000

KERNEL_SETUP = """
import time, nbfan
app = nbfan.App("bench-progress")
@app.function
def inc(x):
    return x + 1
list(inc.map(range(2000)))  # warm
def timed_map(progress):
    nbfan.config.progress = progress
    start = time.perf_counter()
    out = list(inc.map(range(%d)))
    assert out[-1] == %d
    return time.perf_counter() - start
""" % (N, N)


def inc(x: int) -> int:
    return x + 1


def ratio_line(name: str, off: list[float], on: list[float]) -> str:
    """Medians judge the goal; best-of runs are printed too (the machine is shared and noisy)."""
    m_off, m_on = statistics.median(off), statistics.median(on)
    ratio = m_on / m_off
    verdict = "ok" if ratio <= 1.05 else "MISSED"
    return (
        f"{name}: progress off median {m_off:.3f}s ({N / m_off:,.0f} inputs/s), on {m_on:.3f}s "
        f"({N / m_on:,.0f} inputs/s); on/off = {ratio:.3f} (goal <= 1.05) {verdict}; "
        f"best-of on/off = {min(on) / min(off):.3f}"
    )


def in_kernel(address: str, reps: int) -> None:
    from tests.test_kernel import KernelSession, kernel_env

    session = KernelSession(kernel_env(address, progress=True))
    try:
        session.ok(KERNEL_SETUP, timeout=120)
        off: list[float] = []
        on: list[float] = []
        for _ in range(reps):  # alternate, so drift on the shared machine hits both alike
            for flag, bucket in ((False, off), (True, on)):
                ex = session.ok(f"timed_map({flag})", timeout=300)
                bucket.append(float(ex.result_text()))
        print(f"kernel runs off: {', '.join(f'{t:.3f}' for t in off)}; on: {', '.join(f'{t:.3f}' for t in on)}")
        print(ratio_line("P1 in the nbfan kernel (ipywidgets bar)", off, on))
    finally:
        session.close()


def in_process(reps: int) -> None:
    from nbfan.notebook.progress_text import TextProgress

    sink = io.StringIO()
    f = nbfan.App("bench-progress-text").function(inc)
    list(f.map(range(2000)))
    off: list[float] = []
    on: list[float] = []
    for _ in range(reps):
        for flag, bucket in ((False, off), (True, on)):
            nbfan.config.progress = flag
            set_progress_factory(lambda label, call_id: TextProgress(label, call_id, sink))
            start = time.perf_counter()
            out = list(f.map(range(N)))
            bucket.append(time.perf_counter() - start)
            assert out[-1] == N
    set_progress_factory(None)
    print(ratio_line("P1 in a script (text bar)", off, on))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    cluster = start_local_cluster(2, gpus=[])
    try:
        nbfan.connect(cluster)
        in_kernel(cluster.scheduler_address, args.reps)
        in_process(args.reps)
    finally:
        nbfan.disconnect()
        cluster.close()


if __name__ == "__main__":
    main()
