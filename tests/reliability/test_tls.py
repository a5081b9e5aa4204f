"""`nbfan cluster up --tls`: certificates on disk, TLS-only listeners on 127.0.0.1, nbfan
clients that pick the certificates up, and every other client refused."""

from __future__ import annotations

import json
import socket
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.reliability.helpers import nbfan_cli, run_script

SCRIPT = """
import nbfan
from nbfan.cluster import current_connection

app = nbfan.App("tls-drill")

@app.function
def square(x):
    return x * x

if __name__ == "__main__":
    conn = current_connection()
    print("SOURCE", conn.source, conn.address)
    print("REMOTE", square.remote(7))
    print("MAP", sum(square.map(range(200))))
"""

CONNECT_ONLY = """
import nbfan
from nbfan.exception import ClusterConnectionError
try:
    nbfan.connect({address!r})
except ClusterConnectionError as exc:
    print("REFUSED", exc)
else:
    print("CONNECTED")
"""


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict]]:
    home = tmp_path_factory.mktemp("tls-home")
    up = nbfan_cli("cluster", "up", "--tls", "--workers", "1", home=home)
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        state = json.loads((home / "cluster.json").read_text())
        yield home, state
    finally:
        down = nbfan_cli("cluster", "down", home=home)
        assert down.returncode == 0 or "no nbfan cluster" in down.stderr, down.stderr


def test_certificates_on_disk_with_private_keys(tls_cluster: tuple[Path, dict]) -> None:
    home, state = tls_cluster
    assert state["address"].startswith("tls://127.0.0.1:")
    tls = state["tls"]
    assert set(tls) == {"ca_file", "cert", "key"}
    for path in tls.values():
        assert Path(path).is_file() and Path(path).parent == home / "tls"
    key_mode = stat.S_IMODE(Path(tls["key"]).stat().st_mode)
    ca_key_mode = stat.S_IMODE((home / "tls" / "ca-key.pem").stat().st_mode)
    assert key_mode == 0o600 and ca_key_mode == 0o600
    assert "BEGIN CERTIFICATE" in Path(tls["cert"]).read_text()


def test_listens_on_loopback_only(tls_cluster: tuple[Path, dict]) -> None:
    """The daemon's scheduler, nannies and workers: every listening socket is on 127.0.0.1."""
    _, state = tls_cluster
    daemon = psutil.Process(state["pid"])
    procs = [daemon, *daemon.children(recursive=True)]
    listening = [
        c.laddr for p in procs for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
    ]
    assert listening, "the cluster has no listening sockets?"
    assert {addr.ip for addr in listening} == {"127.0.0.1"}, listening


def test_nbfan_client_with_the_certificates_works(tls_cluster: tuple[Path, dict], tmp_path: Path) -> None:
    home, state = tls_cluster
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    # resolved through the state file
    result = run_script(script, NBFAN_HOME=str(home))
    assert result.returncode == 0, result.stderr
    assert f"SOURCE local {state['address']}" in result.stdout
    assert "REMOTE 49" in result.stdout and f"MAP {sum(x * x for x in range(200))}" in result.stdout
    status = nbfan_cli("cluster", "status", home=home)  # the CLI's own client uses the certificates too
    assert status.returncode == 0 and state["address"] in status.stdout and "workers:   1" in status.stdout
    # resolved through NBFAN_SCHEDULER=tls://..., certificates from NBFAN_HOME
    result = run_script(script, NBFAN_HOME=str(home), NBFAN_SCHEDULER=state["address"])
    assert result.returncode == 0, result.stderr
    assert f"SOURCE env {state['address']}" in result.stdout and "REMOTE 49" in result.stdout


def test_client_without_certificates_is_refused(tls_cluster: tuple[Path, dict], tmp_path: Path) -> None:
    _, state = tls_cluster
    script = tmp_path / "connect.py"
    script.write_text(CONNECT_ONLY.format(address=state["address"]))
    result = run_script(script, NBFAN_HOME=str(tmp_path / "empty-home"), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "REFUSED" in result.stdout and "uses TLS" in result.stdout and "cluster.pem" in result.stdout


def test_client_with_another_clusters_certificate_is_refused(tls_cluster: tuple[Path, dict]) -> None:
    from distributed import Client
    from distributed.security import Security

    _, state = tls_cluster
    with pytest.raises(OSError, match="(?i)certificate"):
        Client(state["address"], security=Security.temporary(), timeout="10s", set_as_default=False)


def test_tls_handshake_without_client_certificate_fails(tls_cluster: tuple[Path, dict]) -> None:
    """Below Dask: a TLS client that trusts the CA but shows no certificate gets no session."""
    _, state = tls_cluster
    host, port = state["address"].removeprefix("tls://").rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=state["tls"]["ca_file"])
    ctx.check_hostname = False
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            with ctx.wrap_socket(raw) as tls_sock:
                tls_sock.sendall(b"\x00" * 16)  # TLS 1.3 reports the refusal on first use
                if not tls_sock.recv(1):
                    raise ConnectionResetError("closed by the scheduler")


def test_plain_tcp_to_a_tls_scheduler_is_refused(tls_cluster: tuple[Path, dict], tmp_path: Path) -> None:
    _, state = tls_cluster
    script = tmp_path / "connect.py"
    script.write_text(CONNECT_ONLY.format(address=state["address"].replace("tls://", "tcp://")))
    result = run_script(script, NBFAN_HOME=str(tmp_path / "empty-home"), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "REFUSED" in result.stdout and "tls://" in result.stdout
