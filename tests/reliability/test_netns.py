"""Across machines: scheduler, two workers and the client on four different hosts, made here
with network namespaces joined by a bridge on a private 10.77.0.0/24 network, all over TLS.
One worker is GPU-annotated (fake resources GPU=1, GPU-A100=1): gpu="A100" inputs must run there.

Needs root and iproute2 (`scripts/install-system-deps.sh`); skipped, saying why, elsewhere."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from nbfan.cluster.tls import ensure_certificates
from tests.reliability.helpers import child_env, kill_group

SUBNET = "10.77.0"
HOSTS = {"sched": 1, "cpu": 2, "gpu": 3, "client": 4}  # host name -> last address byte
PORT = 8786


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=check)


def _remove_stale_namespaces() -> None:
    """Namespaces left by a test run that was killed before its teardown (its pid is gone)."""
    listing = _ip("netns", "list", check=False).stdout
    for line in listing.splitlines():
        match = re.match(r"^nbf(\d+)(hub|sched|cpu|gpu|client)\b", line)
        if match and not psutil.pid_exists(int(match.group(1))):
            _ip("netns", "del", f"nbf{match.group(1)}{match.group(2)}", check=False)


def _why_no_namespaces() -> str | None:
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (run scripts/install-system-deps.sh)"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    probe = f"nbfprobe{os.getpid()}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed here: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


@dataclass
class Hosts:
    """Four namespaces on one bridge; processes started inside them."""

    tag: str
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    made: list[str] = field(default_factory=list)

    def ns(self, host: str) -> str:
        return f"nbf{self.tag}{host}"

    def addr(self, host: str) -> str:
        return f"{SUBNET}.{HOSTS[host]}"

    def create(self) -> None:
        hub = self.ns("hub")
        _ip("netns", "add", hub)
        self.made.append(hub)
        _ip("-n", hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", hub, "link", "set", "br0", "up")
        _ip("-n", hub, "link", "set", "lo", "up")
        for host, n in HOSTS.items():
            name = self.ns(host)
            _ip("netns", "add", name)
            self.made.append(name)
            _ip("link", "add", "eth0", "netns", name, "type", "veth", "peer", "name", f"p{n}", "netns", hub)
            _ip("-n", hub, "link", "set", f"p{n}", "master", "br0")
            _ip("-n", hub, "link", "set", f"p{n}", "up")
            _ip("-n", name, "addr", "add", f"{self.addr(host)}/24", "dev", "eth0")
            _ip("-n", name, "link", "set", "eth0", "up")
            _ip("-n", name, "link", "set", "lo", "up")

    def start(self, host: str, args: list[str], log: Path, **env: str) -> subprocess.Popen[str]:
        out = open(log, "w")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(host), sys.executable, *args],
            stdout=out, stderr=subprocess.STDOUT, env=child_env(**env), start_new_session=True, text=True,
        )
        out.close()
        self.procs.append(proc)
        return proc

    def run(self, host: str, args: list[str], timeout: float, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.ns(host), sys.executable, *args],
            capture_output=True, text=True, timeout=timeout, env=child_env(**env),
        )

    def destroy(self) -> None:
        for proc in self.procs:
            kill_group(proc)
        for name in reversed(self.made):
            _ip("netns", "del", name, check=False)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hosts, Path]]:
    why = _why_no_namespaces()
    if why:
        pytest.skip(f"multi-host drill skipped: {why}")
    home = tmp_path_factory.mktemp("netns-home")
    tls = ensure_certificates(home, hosts=[f"{SUBNET}.{n}" for n in HOSTS.values()])
    _remove_stale_namespaces()
    net = Hosts(tag=str(os.getpid()))
    try:
        net.create()
        tls_args = ["--tls-ca-file", tls["ca_file"], "--tls-cert", tls["cert"], "--tls-key", tls["key"]]
        logs = home / "logs"
        logs.mkdir()
        net.start("sched", ["-m", "dask", "scheduler", "--host", net.addr("sched"), "--port", str(PORT),
                            "--protocol", "tls", "--no-dashboard", *tls_args], logs / "scheduler.log")
        address = f"tls://{net.addr('sched')}:{PORT}"
        worker = ["-m", "dask", "worker", address, "--nthreads", "1", "--no-dashboard", "--protocol", "tls", *tls_args]
        net.start("cpu", [*worker, "--host", net.addr("cpu"), "--name", "cpu-host"], logs / "cpu.log")
        net.start("gpu", [*worker, "--host", net.addr("gpu"), "--name", "gpu-host",
                          "--resources", "GPU=1,GPU-A100=1"], logs / "gpu.log")
        yield net, home
    finally:
        net.destroy()


CLIENT = """
import json, socket, time
import distributed
import nbfan
from nbfan.cluster import current_connection, get_client

app = nbfan.App("netns")

@app.function
def where(x):
    return x * x, distributed.get_worker().address

if __name__ == "__main__":
    client = get_client()
    client.wait_for_workers(2, timeout=60)
    info = client.scheduler_info()
    workers = {w["name"]: {"address": addr, "resources": w.get("resources", {})} for addr, w in info["workers"].items()}
    plain = list(where.map(range(40)))
    gpu = list(where.with_options(gpu="A100").map(range(40, 60)))
    print("RESULT", json.dumps({
        "source": current_connection().source,
        "scheduler": client.scheduler.address,
        "workers": workers,
        "plain": plain,
        "gpu": gpu,
    }))
"""


def test_map_across_hosts_over_tls_with_a_gpu_worker(hosts: tuple[Hosts, Path], tmp_path: Path) -> None:
    net, home = hosts
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    address = f"tls://{net.addr('sched')}:{PORT}"
    deadline = time.monotonic() + 90
    while True:  # the scheduler and workers start in the background
        result = net.run("client", [str(script)], timeout=120, NBFAN_HOME=str(home), NBFAN_SCHEDULER=address)
        if result.returncode == 0 or time.monotonic() > deadline or "could not reach" not in result.stderr:
            break
        time.sleep(1)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted((home / "logs").iterdir()))
    assert result.returncode == 0, result.stderr[-4000:] + "\n" + logs
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    data = json.loads(line.removeprefix("RESULT "))

    assert data["source"] == "env" and data["scheduler"] == address
    workers = data["workers"]
    assert workers["cpu-host"]["address"].startswith(f"tls://{net.addr('cpu')}:")
    assert workers["gpu-host"]["address"].startswith(f"tls://{net.addr('gpu')}:")
    assert workers["gpu-host"]["resources"] == {"GPU": 1, "GPU-A100": 1}

    assert [r for r, _ in data["plain"]] == [x * x for x in range(40)]
    assert [r for r, _ in data["gpu"]] == [x * x for x in range(40, 60)]
    gpu_worker = workers["gpu-host"]["address"]
    assert {w for _, w in data["gpu"]} == {gpu_worker}, "gpu='A100' inputs ran off the A100 worker"
    assert {w for _, w in data["plain"]} <= {gpu_worker, workers["cpu-host"]["address"]}


def test_client_without_the_cluster_certificates_is_refused_across_hosts(
    hosts: tuple[Hosts, Path], tmp_path: Path
) -> None:
    net, _ = hosts
    code = (
        "import nbfan\nfrom nbfan.exception import ClusterConnectionError\n"
        f"try:\n    nbfan.connect('tls://{net.addr('sched')}:{PORT}')\n"
        "except ClusterConnectionError as exc:\n    print('REFUSED', exc)\nelse:\n    print('CONNECTED')\n"
    )
    script = tmp_path / "intruder.py"
    script.write_text(code)
    result = net.run("client", [str(script)], timeout=60, NBFAN_HOME=str(tmp_path / "no-certs"))
    assert result.returncode == 0, result.stderr
    assert "REFUSED" in result.stdout and "uses TLS" in result.stdout


PARTITIONED = """
import sys, time
import nbfan
from nbfan.exception import ClusterConnectionError

app = nbfan.App("netns-partition")

@app.function
def slow(x):
    time.sleep(0.2)
    return x

if __name__ == "__main__":
    try:
        for r in slow.map(range(100_000)):
            print("R", r, flush=True)
    except ClusterConnectionError as exc:
        print("LOST", time.time(), exc, flush=True)
"""


def test_scheduler_host_unreachable_mid_map_raises_within_30s(hosts: tuple[Hosts, Path], tmp_path: Path) -> None:
    """The scheduler's host drops off the network (no reset, packets just vanish)."""
    net, home = hosts
    script = tmp_path / "partitioned.py"
    script.write_text(PARTITIONED)
    cmd = ["ip", "netns", "exec", net.ns("client"), sys.executable, str(script)]
    env = child_env(NBFAN_HOME=str(home), NBFAN_SCHEDULER=f"tls://{net.addr('sched')}:{PORT}")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        for _ in range(5):
            assert proc.stdout.readline().startswith("R "), proc.stderr.read() if proc.poll() is not None else ""
        cut_at = time.time()
        _ip("-n", net.ns("sched"), "link", "set", "eth0", "down")
        out, err = proc.communicate(timeout=60)
    finally:
        _ip("-n", net.ns("sched"), "link", "set", "eth0", "up", check=False)
        kill_group(proc)
    lost = [line for line in out.splitlines() if line.startswith("LOST ")]
    assert lost, f"no clear error: {out[-500:]} {err[-2000:]}"
    detect = float(lost[0].split()[1]) - cut_at
    assert "lost the Dask scheduler" in lost[0]
    print(f"\nDRILL scheduler-unreachable (netns): detect_s={detect:.1f}")
    assert detect < 30, f"took {detect:.1f}s to notice the scheduler's host was gone"
