"""ruff with the project's rule set (pyproject's [tool.ruff.lint]: pyflakes, pycodestyle, import
order, bugbear, pyupgrade, simplify, ruff's own, pylint, and the docstring rules on the public
API) on the package, the tests and the benchmarks: undefined names, unused imports, upward
style drift and undocumented public API all fail here."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is a test dependency: `pip install -e .[test]`"
    result = subprocess.run(
        [ruff, "check", "--output-format", "concise", "nbfan", "tests", "benchmarks"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_panels_typescript_passes_eslint_and_prettier() -> None:
    labextension = REPO / "labextension"
    assert (labextension / "node_modules").is_dir(), "the panel's packages come with `make install` (jlpm install)"
    jlpm = shutil.which("jlpm", path=str(Path(sys.executable).parent)) or shutil.which("jlpm")
    assert jlpm, "jlpm comes with jupyterlab (a dependency)"
    result = subprocess.run([jlpm, "lint"], cwd=labextension, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
