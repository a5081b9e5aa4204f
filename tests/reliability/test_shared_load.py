"""Eight client processes map at once on one nbfan cluster (as eight notebooks share
`nbfan cluster up`) while a ninth, this test, makes `.remote` calls: every result is right and
comes once, and the scheduler's telemetry counts each call exactly. The `.remote` latency
under that load is printed (its goal is checked in benchmarks/bench_shared.py, not here)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nbfan
from nbfan.api.queries import calls_snapshot
from nbfan.cluster.local import start_local_cluster
from tests.reliability.helpers import child_env, kill_group

CLIENTS = 8
INPUTS = 1500  # per client: 8 x 1,500 x 2 ms on 2 slots, ~12 s of work
REMOTES = 120  # the snapshot keeps 200 finished calls: the maps must stay in it

CLIENT = """
import json, os, sys, time
import nbfan

me = int(sys.argv[1])
app = nbfan.App(f"load-{me}")

@app.function
def work(x):
    time.sleep(0.002)
    return x * x + me

if __name__ == "__main__":
    nbfan.connect(sys.argv[2]).wait_for_workers(2, timeout=60)
    open(sys.argv[3] + f".ready{me}", "w").close()
    while not os.path.exists(sys.argv[3] + ".go"):
        time.sleep(0.02)
    start = time.time()
    out = list(work.map(range(%(inputs)d)))
    ok = out == [x * x + me for x in range(%(inputs)d)]
    print("RESULT", json.dumps({"ok": ok, "count": len(out), "seconds": time.time() - start}))
"""

app = nbfan.App("load-interactive")


@app.function
def ping(x: int) -> int:
    return x + 1


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    cluster = start_local_cluster(2, gpus=[])
    try:
        yield cluster
    finally:
        cluster.close()


def test_eight_mapping_clients_and_an_interactive_one(cluster: Any, tmp_path: Path) -> None:
    script = tmp_path / "client.py"
    script.write_text(CLIENT % {"inputs": INPUTS})
    sync = str(tmp_path / "sync")
    client = nbfan.connect(cluster)
    idle = []
    for i in range(20):
        start = time.perf_counter()
        assert ping.remote(i) == i + 1
        idle.append(time.perf_counter() - start)
    procs = [
        subprocess.Popen([sys.executable, str(script), str(i), cluster.scheduler_address, sync],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
                         start_new_session=True)
        for i in range(CLIENTS)
    ]
    latencies: list[float] = []
    try:
        deadline = time.monotonic() + 120
        while not all(Path(f"{sync}.ready{i}").exists() for i in range(CLIENTS)):
            assert time.monotonic() < deadline, "client processes did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
            time.sleep(0.05)
        Path(f"{sync}.go").touch()
        began = time.monotonic()
        while len(latencies) < REMOTES and any(p.poll() is None for p in procs):
            start = time.perf_counter()
            assert ping.remote(len(latencies)) == len(latencies) + 1
            latencies.append(time.perf_counter() - start)
            time.sleep(0.02)  # a person at a notebook, not a loop
        outputs = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-3000:]
            outputs.append(json.loads(next(line for line in out.splitlines() if line.startswith("RESULT ")).split(" ", 1)[1]))
        wall = time.monotonic() - began
    finally:
        for proc in procs:
            kill_group(proc)

    assert all(o["ok"] and o["count"] == INPUTS for o in outputs), outputs
    # telemetry: each map counted exactly once per input, each .remote one input, all ended
    wait_until_ended(client)
    calls = calls_snapshot(client)["calls"]
    maps = {c["app"]: c for c in calls if (c["app"] or "").startswith("load-") and c["kind"] == "map"}
    assert sorted(maps) == sorted(f"load-{i}" for i in range(CLIENTS)), sorted(maps)
    for name, call in maps.items():
        assert (call["state"], call["total"], call["done"], call["failed"], call["running"], call["retried"]) == (
            "done", INPUTS, INPUTS, 0, 0, 0), (name, call)
        assert sum(call["per_worker"].values()) == INPUTS, (name, call["per_worker"])
    pings = [c for c in calls if c["app"] == "load-interactive" and c["kind"] == "remote"]
    under_load = len(latencies)
    assert len(pings) == len(idle) + under_load  # 148 calls in all: the snapshot keeps 200
    assert all((c["state"], c["total"], c["done"], c["failed"]) == ("done", 1, 1, 0) for c in pings)
    ordered = sorted(latencies)
    print(f"\nDRILL shared-load: clients={CLIENTS} inputs_each={INPUTS} wall_s={wall:.1f} "
          f"remote_calls={under_load} idle_p50_ms={statistics.median(idle) * 1e3:.1f} "
          f"load_p50_ms={statistics.median(ordered) * 1e3:.1f} "
          f"load_p99_ms={ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3:.1f}")
    nbfan.disconnect()


def wait_until_ended(client: Any, timeout: float = 30) -> None:
    """The callers' end events travel after their last results: wait until no load call runs."""
    deadline = time.monotonic() + timeout
    while True:
        calls = calls_snapshot(client)["calls"]
        if not any((c["app"] or "").startswith("load") and c["state"] == "running" for c in calls):
            return
        assert time.monotonic() < deadline, [c for c in calls if c["state"] == "running"]
        time.sleep(0.1)
