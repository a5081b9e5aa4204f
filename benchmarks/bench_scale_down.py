"""How an autoscaled cluster of nanny workers shrinks once work is done, nbfan against raw Dask's
own `cluster.adapt()` in the same run on the same machine:

- scale-downs that printed Dask warnings or errors (the retirement race of intervals.py: a worker
  told to close before its nanny is, killed 4 s later), for a 40-input map;
- the workers left up after spawned calls were read (their results kept for re-attaching: on the
  scheduler when small, see scheduler/retention.py), sampled each second.

    .venv/bin/python benchmarks/bench_scale_down.py [--runs 4] [--seconds 12]

Each run is a fresh interpreter (a fresh LocalCluster, 2 workers at most, scale-down after 1 s).
There is no goal beyond "no noisier than raw Dask" and "down to the minimum"."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time

RUN = """
import sys, time
from distributed import Client, LocalCluster

if __name__ == "__main__":
    peer, work, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    with LocalCluster(n_workers=0, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        if peer == "dask":
            client = Client(cluster)
            cluster.adapt(minimum=0, maximum=2, wait_count=1, interval="1s")
            if work == "map":
                client.gather(client.map(lambda x: x, range(40)))
            else:
                futures = [client.submit(lambda x: x, i) for i in range(4)]
                client.gather(futures)
        else:
            import nbfan
            app = nbfan.App("bench-scale-down")
            same = app.function(lambda x: x)
            client = nbfan.connect(cluster)
            nbfan.autoscale(cluster, minimum=0, maximum=2, scaledown_window=1)
            if work == "map":
                list(same.map(range(40)))
            else:
                calls = [same.spawn(i) for i in range(4)]  # the handles are kept, as in a notebook
                [call.get() for call in calls]
        samples = []
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            samples.append(len(client.scheduler_info()["workers"]))
            time.sleep(1)
        print("WORKERS", *samples)
        if peer == "dask":
            client.close()
        else:
            nbfan.disconnect()
"""


def one_run(peer: str, work: str, seconds: float) -> tuple[list[str], list[int]]:
    """(the Dask WARNING and ERROR lines the run printed, addresses left out; the worker counts sampled)."""
    out = subprocess.run([sys.executable, "-c", RUN, peer, work, str(seconds)], capture_output=True, text=True,
                         timeout=seconds + 120)
    noisy = [re.sub(r"^[\d-]+ [\d:,]+ - |'?tcp://[\d.:]+'?", "", line) for line in out.stderr.splitlines()
             if " - WARNING - " in line or " - ERROR - " in line]
    counts = next((line.split()[1:] for line in out.stdout.splitlines() if line.startswith("WORKERS")), [])
    return noisy, [int(c) for c in counts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args()
    started = time.monotonic()
    for work in ("map", "spawn"):
        for peer in ("nbfan", "dask"):
            runs = [one_run(peer, work, args.seconds) for _ in range(args.runs)]
            noisy = sum(bool(lines) for lines, _ in runs)
            last = [counts[-1] if counts else -1 for _, counts in runs]
            print(f"{work:5} {peer:5}: noisy scale-downs {noisy}/{args.runs}; workers left at the end {last}; "
                  f"first run's samples {runs[0][1]}")
            for line in sorted({line for lines, _ in runs for line in lines}):
                print("      ", line[:120])
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
