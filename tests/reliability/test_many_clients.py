"""Five client processes mapping at once against one cluster, with a cluster-wide cap
(`concurrency_limit=2`) and a GPU-annotated function on a worker with fake GPU resources:
the cap holds across all five, gpu="A100" inputs run only on the A100 worker, results are right."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbfan.cluster.gpus import GpuInfo
from nbfan.cluster.local import start_local_cluster
from tests.reliability.helpers import child_env, kill_group

CLIENTS = 5
CAP = 2

CLIENT = """
import json, os, sys, time
import distributed
import nbfan

app = nbfan.App("many-clients")

@app.function(concurrency_limit={cap})
def capped(x):
    start = time.time()
    time.sleep(0.15)
    return x * x, start, time.time()

@app.function(gpu="A100")
def on_gpu(x):
    return x + 1, os.environ.get("NBFAN_GPU_MODEL"), distributed.get_worker().address

if __name__ == "__main__":
    me = int(sys.argv[1])
    nbfan.connect(sys.argv[2]).wait_for_workers(4, timeout=60)
    open(sys.argv[3] + f".ready{{me}}", "w").close()
    while not os.path.exists(sys.argv[3] + ".go"):
        time.sleep(0.02)
    base = 100 * me
    gpu = list(on_gpu.map(range(base, base + 10)))
    spans = list(capped.map(range(base, base + 6)))
    print("RESULT", json.dumps({{"capped": spans, "gpu": gpu}}))
"""


def max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda ev: (ev[0], ev[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


@pytest.fixture(scope="module")
def gpu_cluster() -> Iterator[Any]:
    fake = GpuInfo(index=0, model="A100", name="NVIDIA A100 (fake)", memory_total=40 << 30, uuid="GPU-fake-0")
    cluster = start_local_cluster(3, gpus=[fake])
    try:
        yield cluster
    finally:
        cluster.close()


def test_five_clients_with_a_cap_and_a_gpu_worker(gpu_cluster: Any, tmp_path: Path) -> None:
    script = tmp_path / "client.py"
    script.write_text(CLIENT.format(cap=CAP))
    sync = str(tmp_path / "sync")
    procs = [
        subprocess.Popen([sys.executable, str(script), str(i), gpu_cluster.scheduler_address, sync],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
                         start_new_session=True)
        for i in range(CLIENTS)
    ]
    try:
        deadline = time.monotonic() + 120
        while not all(Path(f"{sync}.ready{i}").exists() for i in range(CLIENTS)):
            assert time.monotonic() < deadline, "client processes did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
            time.sleep(0.05)
        Path(f"{sync}.go").touch()
        started = time.monotonic()
        outputs = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-3000:]
            outputs.append(json.loads(next(line for line in out.splitlines() if line.startswith("RESULT ")).split(" ", 1)[1]))
        elapsed = time.monotonic() - started
    finally:
        for proc in procs:
            kill_group(proc)

    from distributed import Client

    with Client(gpu_cluster, set_as_default=False) as admin:
        workers = admin.scheduler_info()["workers"]
    a100 = [addr for addr, w in workers.items() if w.get("resources", {}).get("GPU-A100")]
    assert len(a100) == 1 and len(workers) == 4
    spans: list[tuple[float, float]] = []
    for i, data in enumerate(outputs):
        base = 100 * i
        assert [r for r, _, _ in data["capped"]] == [x * x for x in range(base, base + 6)]
        assert [r for r, _, _ in data["gpu"]] == [x + 1 for x in range(base, base + 10)]
        assert {(model, worker) for _, model, worker in data["gpu"]} == {("A100", a100[0])}
        spans += [(s, e) for _, s, e in data["capped"]]
    peak = max_overlap(spans)
    assert peak <= CAP, f"{peak} capped inputs ran at once across {CLIENTS} clients; the cap is {CAP}"
    assert peak == CAP  # a cap, not a serialisation
    print(f"\nDRILL five-clients: clients={CLIENTS} capped_inputs={len(spans)} peak_running={peak} cap={CAP} "
          f"gpu_inputs={10 * CLIENTS} all_on_the_A100_worker wall_s={elapsed:.1f}")
