"""Issue 26 figure: the cost of capturing and forwarding what functions print.

100k trivial inputs through `.map` on a 2-worker cluster (one thread each), alternating runs:
- quiet, forwarding off (`nbfan.config.forward_output = False`: nothing is captured);
- quiet, forwarding on (the default): goal <= 1.03x the first;
- one printed line per input, forwarding on (every line captured, sent, kept on the scheduler,
  the first 1000 and then 100/s forwarded here): goal <= 1.5x the quiet map with forwarding on;
- the same prints with forwarding off: what printing costs without nbfan's capture (the lines go
  to the workers' own stdout, /dev/null here, as they would in plain Dask).
Wall times on a shared machine are noisy: the CPU seconds of the workers and of this process
(client and scheduler) per map are printed too. Raw Dask in the same run, for scale: the same inputs in 100 hand-made chunks (`client.map`).

    .venv/bin/python benchmarks/bench_output.py [--reps 3] [--n 100000]
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
os.environ["NBFAN_PROGRESS"] = "0"

import nbfan  # noqa: E402
from nbfan.cluster.local import start_local_cluster  # noqa: E402


def inc(x: int) -> int:
    return x + 1


def loud(x: int) -> int:
    print("input", x)
    return x + 1


def chunk(xs: list[int]) -> list[int]:
    return [x + 1 for x in xs]


class Counting(io.TextIOBase):
    """Stands in for stdout while the loud map runs: counts the lines forwarded here."""

    def __init__(self) -> None:
        self.lines = 0

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        return len(text)


def process_cpu() -> float:
    return time.process_time()


CPU: dict[str, list[float]] = {}  # CPU seconds of one map: the workers' together, and this process's


def timed(name: str, client: object, run: object) -> float:
    workers0, here0 = client.run(process_cpu), time.process_time()  # type: ignore[attr-defined]
    start = time.perf_counter()
    run()  # type: ignore[operator]
    elapsed = time.perf_counter() - start
    here1, workers1 = time.process_time(), client.run(process_cpu)  # type: ignore[attr-defined]
    CPU.setdefault(name + " workers", []).append(sum(workers1[w] - workers0[w] for w in workers0))
    CPU.setdefault(name + " here", []).append(here1 - here0)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    n = args.n
    saved_fd = os.dup(1)  # the workers' stdout is /dev/null (they inherit it): prints not captured go there
    null = os.open(os.devnull, os.O_WRONLY)
    sys.stdout.flush()
    os.dup2(null, 1)
    try:
        cluster = start_local_cluster(2, gpus=[])
    finally:
        os.dup2(saved_fd, 1)
        os.close(null)
        os.close(saved_fd)
    try:
        client = nbfan.connect(cluster)
        app = nbfan.App("bench-output")
        quiet_f, loud_f = app.function(inc), app.function(loud)
        expected = sum(range(1, n + 1))
        list(quiet_f.map(range(2000)))  # warm up
        times: dict[str, list[float]] = {"off": [], "on": [], "loud": [], "loud_off": [], "dask": []}
        forwarded: list[int] = []

        def quiet() -> None:
            assert sum(quiet_f.map(range(n))) == expected

        def noisy() -> None:
            counting, saved = Counting(), sys.stdout
            sys.stdout = counting
            try:
                assert sum(loud_f.map(range(n))) == expected
            finally:
                sys.stdout = saved
            forwarded.append(counting.lines)

        def raw_dask() -> None:
            xs = list(range(n))
            size = -(-n // 100)
            futures = client.map(chunk, [xs[i:i + size] for i in range(0, n, size)], pure=False)
            assert sum(sum(part) for part in client.gather(futures)) == expected

        for _ in range(args.reps):  # alternate, so drift on the shared machine hits all alike
            nbfan.config.forward_output = False
            times["off"].append(timed("off", client, quiet))
            nbfan.config.forward_output = True
            times["on"].append(timed("on", client, quiet))
            times["loud"].append(timed("loud", client, noisy))
            nbfan.config.forward_output = False
            times["loud_off"].append(timed("loud_off", client, noisy))
            nbfan.config.forward_output = True
            times["dask"].append(timed("dask", client, raw_dask))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"n={n} inputs, 2 workers x 1 thread, median of {args.reps}")
        for name, label in (("off", "quiet, forwarding off"), ("on", "quiet, forwarding on"),
                            ("loud", "a line per input, on"), ("loud_off", "a line per input, off"),
                            ("dask", "raw Dask, 100 chunks")):
            print(f"  {label:<24} {med[name]:.3f}s  ({n / med[name]:,.0f} inputs/s)  runs: "
                  + " ".join(f"{t:.3f}" for t in times[name]))
        print("  CPU seconds per map (median): " + ", ".join(
            f"{name} {statistics.median(values):.3f}" for name, values in CPU.items()))
        print(f"  forwarded to this process per loud map: {forwarded[::2]} lines (the rest kept: `nbfan logs`)")
        print(f"RATIO quiet on/off: {med['on'] / med['off']:.3f} (goal <= 1.03)")
        print(f"RATIO loud/quiet (both on): {med['loud'] / med['on']:.3f} (goal <= 1.5)")
        print(f"RATIO loud on/off (capture vs printing to the workers' stdout): {med['loud'] / med['loud_off']:.3f}")
        print(f"RATIO loud off/quiet (what printing costs without nbfan): {med['loud_off'] / med['on']:.3f}")
        print(f"RATIO quiet on / raw Dask: {med['on'] / med['dask']:.3f}")
    finally:
        nbfan.disconnect()
        cluster.close()


if __name__ == "__main__":
    main()
