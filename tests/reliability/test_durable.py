"""Nothing lost when the cluster goes down: `nbfan cluster up`, a deployment, a Dict, a Queue, a
finished spawn_map and a running one; then the daemon and its workers are killed outright
(SIGKILL, as an OOM kill or a reboot would) and `nbfan cluster up` starts it again. Everything
is back, and the interrupted map resumes by itself and completes, each result right, once.
Then a torn last journal write: reported by its file's name, and the records before it kept."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from tests.reliability.helpers import child_env, nbfan_cli

pytestmark = pytest.mark.timeout(600)

APP = """\
import os, time
import nbfan

app = nbfan.App("durable-app")
MARKS = {marks!r}  # a global: it travels with the function to the workers

@app.function
def square(x):
    return x * x

@app.function
def slow_square(x):
    with open(os.path.join(MARKS, "ran"), "a") as f:  # one line per run of an input
        f.write(f"{x}\\n")
    time.sleep(0.01)
    return x * x
"""

SETUP = """\
import json, os, sys, time
sys.path.insert(0, os.environ["APP_DIR"])
import nbfan
from app import slow_square, square

d = nbfan.Dict.from_name("durable-dict", create_if_missing=True)
for i in range(100):
    d[f"k{i}"] = i * 10
q = nbfan.Queue.from_name("durable-queue", create_if_missing=True)
q.put_many(list(range(50)))
finished = square.spawn_map(range(40))
assert finished.get() == [x * x for x in range(40)]
running = slow_square.spawn_map(range(600))
while running.progress().done < 50:  # killed mid-map: well started, far from done
    assert running.progress().state == "running", running.progress()
    time.sleep(0.05)
print(json.dumps({"finished": finished.object_id, "running": running.object_id}))
"""

CHECK = """\
import json, os, sys
import nbfan

ids = json.loads(os.environ["IDS"])
d = nbfan.Dict.from_name("durable-dict")
assert len(d) == 100 and all(d[f"k{i}"] == i * 10 for i in range(100)), dict(d.items())
q = nbfan.Queue.from_name("durable-queue")
assert q.len() == 50
assert q.get_many(50, timeout=5) == list(range(50))
assert nbfan.Function.from_name("durable-app", "square").remote(7) == 49
assert nbfan.MapCall.from_id(ids["finished"]).get(timeout=60) == [x * x for x in range(40)]
assert nbfan.MapCall.from_id(ids["running"]).get(timeout=300) == [x * x for x in range(600)]
print("all back")
"""

AFTER_TORN = """\
import nbfan

d = nbfan.Dict.from_name("durable-dict")
if "--write" in __import__("sys").argv:
    d["last"] = "the last record"
else:
    print(sorted(k for k in d.keys()) == sorted([f"k{i}" for i in range(100)]), "last" in d)
"""


def kill_cluster(home: Path) -> None:
    """SIGKILL the `nbfan cluster up` daemon and its workers, and wait for them to be gone."""
    daemon = psutil.Process(json.loads((home / "cluster.json").read_text())["pid"])
    processes = [*daemon.children(recursive=True), daemon]
    for process in processes:
        process.kill()
    psutil.wait_procs(processes, timeout=30)


def up(home: Path) -> None:
    result = nbfan_cli("cluster", "up", "--workers", "1", home=home)
    assert result.returncode == 0, result.stderr


def script(tmp_path: Path, name: str, body: str, *args: str, **env: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    result = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True, timeout=400,
                            env=child_env(**env))
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def set_up(tmp_path: Path) -> tuple[Path, Path, dict[str, str], dict[str, str]]:
    """`nbfan cluster up`, then the deployment, the Dict, the Queue, a finished map and a running
    one (SETUP): (home, marks, the scripts' environment, the maps' ids)."""
    home = tmp_path / "home"
    marks = tmp_path / "marks"
    marks.mkdir()
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(APP.replace("{marks!r}", repr(str(marks))))
    env = {"NBFAN_HOME": str(home), "MARKS": str(marks), "APP_DIR": str(app_dir)}
    up(home)
    deployed = nbfan_cli("deploy", str(app_dir / "app.py"), home=home, MARKS=str(marks))
    assert deployed.returncode == 0, deployed.stderr
    ids = json.loads(script(tmp_path, "setup.py", SETUP, **env).splitlines()[-1])
    return home, marks, env, ids


def test_a_killed_cluster_comes_back_with_everything(tmp_path: Path) -> None:
    home = tmp_path / "home"
    try:
        home, marks, env, ids = set_up(tmp_path)
        kill_cluster(home)
        ran_before = len((marks / "ran").read_text().split())
        assert ran_before < 600, "the map ended before the cluster was killed: nothing to resume"

        up(home)
        assert script(tmp_path, "check.py", CHECK, IDS=json.dumps(ids), **env).strip() == "all back"
        runs = [int(x) for x in (marks / "ran").read_text().split()]
        assert set(runs) == set(range(600))
        reruns = len(runs) - 600
        assert 0 <= reruns <= 100, f"{reruns} inputs ran twice: more than the in-flight window"
        status = nbfan_cli("cluster", "status", home=home)
        assert status.returncode == 0 and "journal: " in status.stdout and "MiB in" in status.stdout, status.stdout

        # a torn last write: the Dict's last put is cut short on disk
        script(tmp_path, "write.py", AFTER_TORN, "--write", **env)
        assert nbfan_cli("cluster", "down", home=home).returncode == 0
        (log,) = (home / "journal").glob("log-*.nbj")
        size = log.stat().st_size
        with open(log, "r+b") as f:
            f.truncate(size - 3)
        up(home)
        assert script(tmp_path, "read.py", AFTER_TORN, **env).split() == ["True", "False"]
        status = nbfan_cli("cluster", "status", home=home)
        assert str(log) in status.stdout and "damaged at offset" in status.stdout, status.stdout
        reported = [line for line in (home / "cluster.log").read_text().splitlines() if "damaged at offset" in line]
        assert len(reported) == 1 and str(log) in reported[0], reported

        # a restart on purpose that keeps nothing
        assert nbfan_cli("cluster", "down", "--forget", home=home).returncode == 0
        up(home)
        assert script(tmp_path, "gone.py", "import nbfan\nprint(nbfan.Dict.from_name('durable-dict', "
                      "create_if_missing=True).len())\n", **env).strip() == "0"
    finally:
        nbfan_cli("cluster", "down", home=home)


def test_a_cluster_stopped_on_purpose_mid_map_comes_back_with_everything(tmp_path: Path) -> None:
    """`nbfan cluster down` while a spawn_map runs, then `up`: the batches its stopping workers
    cut short are not failures; the map resumes and every result arrives, with the rest."""
    home = tmp_path / "home"
    try:
        home, marks, env, ids = set_up(tmp_path)
        assert nbfan_cli("cluster", "down", home=home).returncode == 0
        assert len((marks / "ran").read_text().split()) < 600, "the map ended before the cluster stopped"
        up(home)
        assert script(tmp_path, "check.py", CHECK, IDS=json.dumps(ids), **env).strip() == "all back"
        assert set(int(x) for x in (marks / "ran").read_text().split()) == set(range(600))
    finally:
        nbfan_cli("cluster", "down", home=home)
