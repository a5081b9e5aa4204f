"""Cluster resolution: connect() > NBFAN_SCHEDULER > the local nbfan cluster > embedded."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import nbfan
from nbfan.exception import InvalidError
from tests.conftest import run_py

REPORT = """
import json, warnings
warnings.simplefilter("always")
import nbfan
from nbfan.cluster import current_connection
with warnings.catch_warnings(record=True) as caught:
    conn = current_connection()
app = nbfan.App("probe")
@app.function
def probe(x):
    return x + 1
info = conn.client.scheduler_info()
print(json.dumps({
    "source": conn.source,
    "address": conn.address,
    "workers": len(info["workers"]),
    "hosts": sorted({w["host"] for w in info["workers"].values()}),
    "no_workers_timeout": conn.client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.no_workers_timeout),
    "result": probe.remote(1),
    "warnings": [str(w.message) for w in caught],
}))
"""


def _report(env: dict[str, str]) -> dict:
    result = run_py(REPORT, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_embedded_cluster_is_the_default(tmp_path):
    report = _report({"NBFAN_HOME": str(tmp_path)})
    assert report["source"] == "embedded"
    assert report["address"].startswith("tcp://127.0.0.1:")
    assert report["hosts"] == ["127.0.0.1"]
    import os

    assert report["workers"] == (os.cpu_count() or 1)  # one worker per core (no GPU here)
    assert report["no_workers_timeout"] is not None  # unrunnable tasks fail instead of hanging
    assert report["result"] == 2


def test_env_var_wins_over_local_state(local_cluster, tmp_path):
    address = local_cluster.scheduler_address
    report = _report({"NBFAN_HOME": str(tmp_path), "NBFAN_SCHEDULER": address})
    assert (report["source"], report["address"], report["result"]) == ("env", address, 2)


def test_running_local_cluster_is_used(local_cluster, tmp_path):
    import os

    (tmp_path / "cluster.json").write_text(json.dumps({"address": local_cluster.scheduler_address, "pid": os.getpid()}))
    report = _report({"NBFAN_HOME": str(tmp_path)})
    assert (report["source"], report["address"]) == ("local", local_cluster.scheduler_address)


def test_stale_state_file_is_removed_with_a_warning(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state = tmp_path / "cluster.json"
    state.write_text(json.dumps({"address": "tcp://127.0.0.1:1", "pid": dead.pid}))
    report = _report({"NBFAN_HOME": str(tmp_path)})
    assert report["source"] == "embedded"
    assert any("stale" in w and "nbfan cluster up" in w for w in report["warnings"])
    assert not state.exists()


def test_corrupt_state_file_is_reported_not_fatal(tmp_path):
    (tmp_path / "cluster.json").write_text("{not json")
    report = _report({"NBFAN_HOME": str(tmp_path)})
    assert report["source"] == "embedded"
    assert any("not a valid nbfan cluster state file" in w for w in report["warnings"])


def test_unreachable_scheduler_env_fails_fast_naming_the_address(tmp_path):
    code = "import nbfan\nfrom nbfan.cluster import get_client\nget_client()"
    result = run_py(code, env={"NBFAN_HOME": str(tmp_path), "NBFAN_SCHEDULER": "tcp://127.0.0.1:9"}, timeout=60)
    assert result.returncode != 0
    assert "ClusterConnectionError" in result.stderr
    assert "tcp://127.0.0.1:9" in result.stderr and "NBFAN_SCHEDULER" in result.stderr


def test_connect_accepts_address_cluster_and_client(local_cluster):
    from distributed import Client

    try:
        assert nbfan.connect(local_cluster.scheduler_address).scheduler.address == local_cluster.scheduler_address
        with Client(local_cluster, set_as_default=False) as mine:
            assert nbfan.connect(mine) is mine  # used as is, not closed by nbfan
            nbfan.disconnect()
            assert mine.status == "running"
        assert nbfan.connect(local_cluster).scheduler.address == local_cluster.scheduler_address
    finally:
        nbfan.disconnect()


def test_connect_rejects_other_types():
    with pytest.raises(InvalidError, match="scheduler address, a dask Cluster or a dask Client"):
        nbfan.connect(8786)
    with pytest.raises(InvalidError, match="tcp://127.0.0.1:8786"):
        nbfan.connect("localhost")


def test_clusters_nbfan_starts_send_without_dask_s_fixed_waits(client) -> None:
    """The workers' and this client's batched streams to the scheduler, and the scheduler's to
    them (latency of every call)."""
    from nbfan.cluster.scheduler_setup import SCHEDULER_SEND_INTERVAL
    from nbfan.cluster.worker_setup import WORKER_SEND_INTERVAL
    from nbfan.config import config

    intervals = client.run(lambda dask_worker: dask_worker.batched_stream.interval)
    assert set(intervals.values()) == {WORKER_SEND_INTERVAL}
    assert client.scheduler_comm.interval == config.send_interval

    def scheduler_side(client_id: str, dask_scheduler=None) -> tuple[set[float], float]:
        return {c.interval for c in dask_scheduler.stream_comms.values()}, dask_scheduler.client_comms[client_id].interval

    to_workers, to_this_client = client.run_on_scheduler(scheduler_side, client.id)
    assert to_workers == {SCHEDULER_SEND_INTERVAL} and to_this_client == SCHEDULER_SEND_INTERVAL
