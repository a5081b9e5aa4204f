"""Issue 25, fairness: eight client processes each map 3,000 inputs (2 ms each) at once on
nbfan's own 2-worker cluster (as eight notebooks share `nbfan cluster up`), while this process,
a ninth client, makes interactive one-input calls, `.remote` and raw Dask's
`client.submit(...).result()` on a plain client, in turns; the same calls idle before.

S1  `.remote` p50/p99 under that load (goal: p99 <= 250 ms), beside raw Dask's under the
    same load, and both idle.
S2  the eight maps: each one's wall time (the slowest over the quickest says whether one was
    starved), and inputs/s over all against the ideal of 2 slots.

    .venv/bin/python benchmarks/bench_shared.py
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from distributed import Client

import nbfan
from nbfan.cluster.local import start_local_cluster

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from field_record import record  # noqa: E402

CLIENTS = 8
INPUTS = 3000
SECONDS = 0.002
REPO = Path(__file__).resolve().parents[1]

CLIENT = """
import json, os, sys, time
import nbfan

me = int(sys.argv[1])
app = nbfan.App(f"shared-{me}")

@app.function
def work(x):
    time.sleep(%(seconds)r)
    return x + me

if __name__ == "__main__":
    nbfan.connect(sys.argv[2]).wait_for_workers(2, timeout=60)
    list(work.map(range(4)))  # warm, as a notebook that ran a cell before
    open(sys.argv[3] + f".ready{me}", "w").close()
    while not os.path.exists(sys.argv[3] + ".go"):
        time.sleep(0.01)
    start = time.perf_counter()
    out = list(work.map(range(%(inputs)d)))
    assert out == [x + me for x in range(%(inputs)d)]
    print("RESULT", json.dumps({"seconds": time.perf_counter() - start}))
"""


def inc(x: int) -> int:
    return x + 1


app = nbfan.App("bench-shared")
remote_inc = app.function(inc)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1e3


def timed(call, i: int) -> float:
    start = time.perf_counter()
    assert call(i) == i + 1
    return time.perf_counter() - start


def main() -> None:
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    cluster = start_local_cluster(2, gpus=[])
    client = nbfan.connect(cluster)
    client.wait_for_workers(2)
    plain = Client(cluster, set_as_default=False)
    raw = lambda i: plain.submit(inc, i, pure=False).result()  # noqa: E731
    idle = {"nbfan .remote": [], "raw Dask submit": []}
    for i in range(60):
        idle["nbfan .remote"].append(timed(remote_inc.remote, i))
        idle["raw Dask submit"].append(timed(raw, i))
    tmp = Path(tempfile.mkdtemp(prefix="nbfan-bench-shared-"))
    script = tmp / "client.py"
    script.write_text(CLIENT % {"seconds": SECONDS, "inputs": INPUTS})
    sync = str(tmp / "sync")
    env = {**os.environ, "PYTHONPATH": str(REPO), "NBFAN_PROGRESS": "0"}
    procs = [subprocess.Popen([sys.executable, str(script), str(i), cluster.scheduler_address, sync],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                              start_new_session=True) for i in range(CLIENTS)]
    loaded: dict[str, list[float]] = {"nbfan .remote": [], "raw Dask submit": []}
    try:
        while not all(Path(f"{sync}.ready{i}").exists() for i in range(CLIENTS)):
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
            time.sleep(0.05)
        Path(f"{sync}.go").touch()
        began = time.perf_counter()
        i = 0
        while all(p.poll() is None for p in procs):  # while all eight still map
            loaded["nbfan .remote"].append(timed(remote_inc.remote, i))
            loaded["raw Dask submit"].append(timed(raw, i))
            i += 1
            time.sleep(0.01)
        walls = []
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err[-3000:]
            walls.append(json.loads(next(x for x in out.splitlines() if x.startswith("RESULT ")).split(" ", 1)[1])["seconds"])
        total_s = time.perf_counter() - began
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    print(f"S1 one-input calls, {CLIENTS} clients x {INPUTS} x {SECONDS * 1e3:.0f} ms maps on 2 slots "
          f"({len(loaded['nbfan .remote'])} calls each under load)")
    print(f"   {'':18} {'idle p50':>9} {'load p50':>9} {'load p99':>9}  (ms)")
    for name in loaded:
        print(f"   {name:18} {pct(idle[name], 0.5):9.1f} {pct(loaded[name], 0.5):9.1f} {pct(loaded[name], 0.99):9.1f}")
    p99 = pct(loaded["nbfan .remote"], 0.99)
    print(f"S1 nbfan .remote p99 under load {p99:.0f} ms (goal <= 250 ms) {'ok' if p99 <= 250 else 'MISSED'}; "
          f"p50 {pct(loaded['nbfan .remote'], 0.5) / pct(loaded['raw Dask submit'], 0.5):.2f}x raw Dask's under the same load")
    record("S1", nbfan_p50=pct(loaded["nbfan .remote"], 0.5), nbfan_p99=p99,
           raw_p50=pct(loaded["raw Dask submit"], 0.5), raw_p99=pct(loaded["raw Dask submit"], 0.99),
           idle_p50=pct(idle["nbfan .remote"], 0.5), clients=CLIENTS, inputs=INPUTS)
    ideal = CLIENTS * INPUTS * SECONDS / 2
    print(f"S2 maps: wall min {min(walls):.1f}s, max {max(walls):.1f}s (max/min {max(walls) / min(walls):.2f}); "
          f"all {CLIENTS * INPUTS} inputs in {total_s:.1f}s, ideal {ideal:.1f}s on 2 slots ({ideal / total_s:.2f})")
    plain.close()
    nbfan.disconnect()
    cluster.close()


if __name__ == "__main__":
    main()
