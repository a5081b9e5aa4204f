"""A process that outlives its cluster: a notebook kernel stays up while the cluster it uses is
killed and started again. Its next call runs on the new cluster, with everything nbfan set up
on the old one set up again (the scheduler plugin, the output and result topics, concurrency
caps): prints from functions still reach the caller, and nothing on stderr.

Two shapes of restart: `nbfan cluster up` comes back at a new address (each start picks a free
port), and a cluster of the user's comes back at the same address (Dask's client reconnects
by itself, to a scheduler that knows nothing of this process)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.reliability.helpers import child_env, kill_group, nbfan_cli
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(300)

SCRIPT = """\
import sys
import nbfan

nbfan.config.connect_timeout = 120.0  # Dask would keep trying the old address for two minutes
app = nbfan.App("reconnect")

@app.function(concurrency_limit=1)
def hello(x):
    print(f"hello from input {x}", flush=True)
    return 2 * x

@app.function
def forever():
    import time
    time.sleep(3600)

print(hello.remote(1), flush=True)
held = forever.spawn()  # running when the cluster goes
sys.stdin.readline()  # the test restarts the cluster meanwhile
try:
    held.get()
except nbfan.exception.ClusterConnectionError:  # not "cancelled": nobody cancelled it
    print("held-call-lost", flush=True)
print(hello.remote(2), flush=True)
print(sum(hello.map(range(4))), flush=True)
"""


def start_script(tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    path = tmp_path / "kernel.py"
    path.write_text(SCRIPT)
    return subprocess.Popen([sys.executable, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=child_env(**env))


def first_call_done(proc: subprocess.Popen[str]) -> list[str]:
    """The script's lines up to its first result (its function's print comes first)."""
    assert proc.stdout is not None
    lines: list[str] = []
    while not lines or lines[-1] != "2":
        line = proc.stdout.readline()
        assert line, f"the script ended early: {lines}\n{proc.stderr.read() if proc.stderr else ''}"
        lines.append(line.strip())
    return lines


def after_restart(proc: subprocess.Popen[str]) -> tuple[list[str], str]:
    """Let the script make its calls on the restarted cluster; (its stdout lines, its stderr)."""
    out, err = proc.communicate("go\n", timeout=120)
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{err}"
    return out.split(), err


def assert_quiet(err: str) -> None:
    noisy = [line for line in err.splitlines() if any(w in line for w in ("Traceback", "ERROR", "Error", "WARNING"))]
    assert not noisy, err


def test_a_restarted_nbfan_cluster_up_is_used_by_the_next_call_of_a_live_process(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert nbfan_cli("cluster", "up", "--workers", "1", home=home).returncode == 0
    proc = start_script(tmp_path, NBFAN_HOME=str(home))
    try:
        assert first_call_done(proc) == ["hello from input 1", "2"]
        old = json.loads((home / "cluster.json").read_text())
        daemon = psutil.Process(old["pid"])
        doomed = [*daemon.children(recursive=True), daemon]
        for process in doomed:  # outright, as an OOM kill or a reboot would
            process.kill()
        psutil.wait_procs(doomed, timeout=30)
        up = nbfan_cli("cluster", "up", "--workers", "1", home=home)
        assert up.returncode == 0, up.stderr
        assert json.loads((home / "cluster.json").read_text())["address"] != old["address"]
        lines, err = after_restart(proc)
    finally:
        kill_group(proc)
        nbfan_cli("cluster", "down", home=home)
    # the second call ran on the new cluster at once (the old client would have tried the dead
    # address for two minutes), with its print forwarded; then a capped map
    assert "held-call-lost" in lines and "4" in lines and "12" in lines and lines.count("hello") == 5, lines
    assert_quiet(err)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_cluster(address: str, port: int, folder: Path) -> list[subprocess.Popen[bytes]]:
    """A scheduler at `port` and one worker, started as a user would from their own terminal."""
    env = child_env()
    log = (folder / f"scheduler-{port}.log").open("ab")
    started = [subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--no-dashboard"], stdout=log, stderr=log, env=env, start_new_session=True,
    )]
    started.append(subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "2", "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    ))
    from distributed import Client

    def has_a_worker() -> bool:
        try:
            with Client(address, timeout="5s", set_as_default=False) as plain:
                plain.wait_for_workers(1, timeout=30)
            return True
        except (OSError, TimeoutError):
            return False

    wait_until(has_a_worker, timeout=90, what=f"a scheduler with a worker at {address}")
    return started


@pytest.fixture
def user_cluster(tmp_path: Path) -> Iterator[tuple[str, int]]:
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    running = _start_cluster(address, port, tmp_path)
    yield address, port
    for process in running:
        kill_group(process)


def test_a_scheduler_restarted_at_the_same_address_is_set_up_again(
    user_cluster: tuple[str, int], tmp_path: Path
) -> None:
    address, port = user_cluster
    proc = start_script(tmp_path, NBFAN_SCHEDULER=address)
    restarted: list[subprocess.Popen[bytes]] = []
    try:
        assert first_call_done(proc) == ["hello from input 1", "2"]
        for process in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(process.info["cmdline"] or [])
            if "distributed.cli.dask_" in cmdline and (str(port) in cmdline):
                process.kill()  # the scheduler and its worker, outright
        wait_until(lambda: not any(str(port) in " ".join(p.info["cmdline"] or []) and "distributed.cli" in
                                   " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])),
                   timeout=30, what="the old scheduler and worker to be gone")
        restarted = _start_cluster(address, port, tmp_path)
        lines, err = after_restart(proc)
    finally:
        kill_group(proc)
        for process in restarted:
            kill_group(process)
    # without nbfan setting itself up again, the new scheduler has no plugin (the call's telemetry
    # message closes the client's connection), no topic for the print and no cap
    assert "held-call-lost" in lines and "4" in lines and "12" in lines and lines.count("hello") == 5, lines
    assert_quiet(err)
    log = (tmp_path / f"scheduler-{port}.log").read_text()
    assert "KeyError" not in log and "Exception while handling" not in log, log[-3000:]
