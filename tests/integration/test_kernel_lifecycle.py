"""A notebook kernel that used nbfan restarts and shuts down as quietly as one that did not.

The nbfan kernel runs under jupyter_client's KernelManager, as JupyterLab runs it, on a cluster
from `nbfan cluster up` in a temporary NBFAN_HOME, with its stdout and stderr written to files.
Its cells use `.remote`, `.map`, an unread `.spawn` and a `spawn_map`; then, while a cell's map
is running, the kernel restarts, runs a cell again and shuts down. The kernel process's stderr must hold nothing nbfan or Dask
printed (no traceback, no ERROR/WARNING line from distributed or tornado, no "Task was
destroyed", "Exception ignored", leaked semaphores), and restart and shutdown end promptly (the
guards catch a hang; they are not timing goals)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

from tests.conftest import REPO
from tests.waiting import wait_until

NOISE = (
    "Traceback", "Exception ignored", "Task was destroyed", "leaked semaphore", "Exception in callback",
    "CancelledError", "Failed to reconnect",
)
LOGGERS = ("distributed", "tornado")
GUARD = 60  # seconds: a restart or shutdown that takes longer has hung

CELL_DEFINE = """\
import os, time
import nbfan
app = nbfan.App("kernel-lifecycle")
MARKS = os.environ["MARKS"]

@app.function
def double(x):
    return 2 * x

@app.function
def slow(x):
    open(os.path.join(MARKS, f"started-{x}"), "w").close()
    deadline = time.monotonic() + 600
    while not os.path.exists(os.path.join(MARKS, "release")) and time.monotonic() < deadline:
        time.sleep(0.05)
    return x
"""
CELL_USE = """\
print(double.remote(2), list(double.map(range(4))))
call = double.spawn(6)  # never read
job = double.spawn_map(range(20))
print("spawned", call.object_id, job.object_id)
"""


# ipykernel's own, not nbfan's: a plain python3 kernel restarted while a cell runs (`time.sleep`)
# prints it too, when the interrupted cell's reply meets the closed shell socket
IPYKERNEL_RESTART_MID_CELL = re.compile(
    r"\[IPKernelApp\] ERROR \| Exception in message handler:\nTraceback \(most recent call last\):\n"
    r"(?:  .*\n)+zmq\.error\.ZMQError: Socket operation on non-socket\n"
)


def noise(stderr: str) -> list[str]:
    """Lines of the kernel's stderr a quiet kernel would not print."""
    stderr = IPYKERNEL_RESTART_MID_CELL.sub("", stderr, count=1)
    return [
        line for line in stderr.splitlines()
        if any(word in line for word in NOISE)
        or any(name in line and (" - ERROR" in line or " - WARNING" in line) for name in LOGGERS)
    ]


def nbfan_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nbfan.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.fixture(scope="module")
def home_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of a kernel whose NBFAN_HOME has a running `nbfan cluster up`."""
    home = tmp_path_factory.mktemp("kernel-lifecycle-home")
    env = {**os.environ, "NBFAN_HOME": str(home), "NBFAN_PROGRESS": "0"}
    env.pop("NBFAN_SCHEDULER", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    up = nbfan_cli("cluster", "up", "--workers", "2", env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    yield env
    nbfan_cli("cluster", "down", env=env)


def run_cell(kc: Any, code: str) -> str:
    """Run a cell; its stdout. Fails with the cell's error, or with noise in its stderr (what
    Dask logs inside the kernel shows in the cell, and in the process's stderr too)."""
    out: list[str] = []
    errors: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            (out if msg["content"]["name"] == "stdout" else errors).append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            errors.append("\n".join(msg["content"]["traceback"]))

    reply = kc.execute_interactive(code, timeout=GUARD, output_hook=hook)
    assert reply["content"]["status"] == "ok", "".join(errors)
    assert not noise("".join(errors)), "the cell's stderr holds noise:\n" + "".join(errors)
    return "".join(out)


def test_a_kernel_that_used_nbfan_restarts_and_shuts_down_quietly(home_env: dict[str, str], tmp_path: Path) -> None:
    stderr_path, stdout_path = tmp_path / "kernel-stderr.txt", tmp_path / "kernel-stdout.txt"
    marks = tmp_path / "marks"
    marks.mkdir()
    with open(stderr_path, "w") as stderr, open(stdout_path, "w") as stdout:
        km = KernelManager(kernel_name="nbfan")
        km.shutdown_wait_time = GUARD  # a kernel that does not end on request is not killed early and unseen
        km.start_kernel(env={**home_env, "MARKS": str(marks)}, stdout=stdout, stderr=stderr)
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=GUARD)
            run_cell(kc, CELL_DEFINE)
            shown = run_cell(kc, CELL_USE).split()
            assert shown[:5] == ["4", "[0,", "2,", "4,", "6]"] and shown[5] == "spawned", shown
            kc.execute("list(slow.map(range(4)))")  # still running when the kernel restarts
            wait_until(lambda: any(marks.iterdir()), timeout=GUARD, what="the map to start")

            started = time.monotonic()
            km.restart_kernel(now=False)  # as JupyterLab's restart: a shutdown request, then a new kernel
            kc.wait_for_ready(timeout=GUARD)
            restart_took = time.monotonic() - started
            run_cell(kc, CELL_DEFINE)
            assert run_cell(kc, "print(double.remote(3))").strip() == "6"
        finally:
            kc.stop_channels()
            started = time.monotonic()
            km.shutdown_kernel(now=False)  # a shutdown request, as closing the notebook sends
            shutdown_took = time.monotonic() - started
            (marks / "release").touch()
    err = stderr_path.read_text()
    print(f"restart {restart_took:.2f}s, shutdown {shutdown_took:.2f}s; kernel stderr:\n{err}")
    assert not noise(err), "the kernel's stderr holds noise:\n" + err
    assert restart_took < GUARD and shutdown_took < GUARD, (restart_took, shutdown_took)
