"""Shared by the reliability drills: run the CLI and Python in fresh processes, clean up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.setdefault("NBFAN_PROGRESS", "0")
    return env


def nbfan_cli(*args: str, home: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nbfan.cli", *args],
        capture_output=True, text=True, timeout=timeout, env=child_env(NBFAN_HOME=str(home), **env),
    )


def run_script(path: Path, *, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=timeout, env=child_env(**env)
    )


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL a process we started in its own session, and everything it started."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
