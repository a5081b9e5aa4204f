"""Running the real `nbfan` command in a subprocess against a cluster the tests started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "scripts"


def nbfan_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "nbfan"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nbfan.cli"]


def run_nbfan(*args: str, scheduler: str | None, env: dict[str, str] | None = None, timeout: float = 120,
              cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """`nbfan ARGS` with NBFAN_SCHEDULER pointing at `scheduler` (or unset)."""
    full = {**os.environ, "NBFAN_PROGRESS": "0", **(env or {})}
    full.pop("NBFAN_SCHEDULER", None)
    if scheduler:
        full["NBFAN_SCHEDULER"] = scheduler
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full.get("PYTHONPATH", "")]))
    return subprocess.run([*nbfan_cmd(), *args], capture_output=True, text=True, env=full, timeout=timeout, cwd=cwd)
