"""Pyflakes-level checks (ruff's F rules) on the package, tests and benchmarks: undefined names
and unused imports are bugs waiting to happen."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_no_undefined_names_or_unused_imports():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is a test dependency: `pip install -e .[test]`"
    result = subprocess.run(
        [ruff, "check", "--select", "F", "--output-format", "concise", "nbfan", "tests", "benchmarks"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
