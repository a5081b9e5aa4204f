"""Types flow from a decorated function to every way of calling it, as editors see them:
`tests/typing/usage.py` is checked by mypy --strict and by pyright (its `assert_type`s fail
on a wrong inference; calls that must be type errors carry ignores that fail when unused).
And nbfan's own code passes `mypy --strict` with no error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
USAGE = "tests/typing/usage.py"


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_mypy_strict_infers_the_api_types() -> None:
    result = _run(str(BIN / "mypy"), "--strict", "--follow-imports=silent", USAGE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pyright_infers_the_api_types() -> None:
    result = _run(str(BIN / "pyright"), USAGE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 errors" in result.stdout


def test_mypy_strict_on_nbfan_finds_nothing() -> None:
    result = _run(str(BIN / "mypy"), "--strict", "nbfan")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
