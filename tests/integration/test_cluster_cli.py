"""`nbfan cluster up | down | status`: a persistent local cluster that outlives its shell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_py


def nbfan_cli(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NBFAN_HOME": str(home)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "nbfan.cli", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


@pytest.fixture
def home(tmp_path: Path):
    yield tmp_path
    nbfan_cli("cluster", "down", home=tmp_path)  # never leave a daemon behind


def test_up_status_reuse_down(home: Path):
    first = nbfan_cli("cluster", "up", "--workers", "1", home=home)
    assert first.returncode == 0, first.stderr
    assert "started at tcp://127.0.0.1:" in first.stdout
    state = json.loads((home / "cluster.json").read_text())

    again = nbfan_cli("cluster", "up", home=home)
    assert again.returncode == 0 and "already running" in again.stdout
    assert json.loads((home / "cluster.json").read_text())["pid"] == state["pid"]  # up twice is harmless

    status = nbfan_cli("cluster", "status", home=home)
    assert status.returncode == 0, status.stderr
    assert state["address"] in status.stdout
    assert "workers:   1" in status.stdout and "threads:   1" in status.stdout and "GPUs:" in status.stdout

    # a new process finds the cluster through the state file, and the cluster outlives it
    code = (
        "import nbfan\nfrom nbfan.cluster import current_connection\n"
        "app = nbfan.App('a')\n@app.function\ndef f(x):\n    return x * 3\n"
        "print(current_connection().source, f.remote(5))"
    )
    result = run_py(code, env={"NBFAN_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["local", "15"]

    down = nbfan_cli("cluster", "down", home=home)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not (home / "cluster.json").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(state["pid"], 0)


def test_down_and_status_when_none_runs_say_so(home: Path):
    down = nbfan_cli("cluster", "down", home=home)
    assert down.returncode == 1 and "no nbfan cluster is running" in down.stderr
    status = nbfan_cli("cluster", "status", home=home)
    assert status.returncode == 1 and "nbfan cluster up" in status.stderr


def test_stale_state_from_a_crashed_cluster_is_replaced(home: Path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (home / "cluster.json").write_text(json.dumps({"address": "tcp://127.0.0.1:1", "pid": dead.pid}))
    down = nbfan_cli("cluster", "down", home=home)
    assert down.returncode == 1 and "stale state file" in down.stderr
    (home / "cluster.json").write_text(json.dumps({"address": "tcp://127.0.0.1:1", "pid": dead.pid}))
    up = nbfan_cli("cluster", "up", "--workers", "1", home=home)
    assert up.returncode == 0 and "started" in up.stdout, up.stderr


def test_help_everywhere(home: Path):
    for args in (["--help"], ["cluster", "--help"], ["cluster", "up", "--help"]):
        result = nbfan_cli(*args, home=home)
        assert result.returncode == 0 and "usage:" in result.stdout
