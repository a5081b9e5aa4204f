"""`pip install nbfan` alone is the whole product: the built wheel, installed into a fresh venv
with nothing else, gives `jupyter lab` with the nbfan panel, the server extension and the
"Python 3 (nbfan)" kernel, as Jupyter's own commands list them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(*cmd: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.mark.slow
def test_the_wheel_alone_gives_lab_with_panel_server_extension_and_kernel(tmp_path: Path) -> None:
    assert (REPO / "nbfan/labextension/static/style.js").exists(), "the panel is built by `make install`"
    wheels = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), ".")
    (wheel,) = wheels.glob("nbfan-*.whl")

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    # the lock as constraints: the same versions CI tested, fetched from the index like a user's
    run(str(venv / "bin/python"), "-m", "pip", "install", "-q", "--constraint", "requirements/test.txt", str(wheel))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "PYTHONPATH", "VIRTUAL_ENV"))}
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),  # no user-level settings: only what the wheel installed
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
    )
    jupyter = str(venv / "bin/jupyter")
    assert (venv / "bin/jupyter-lab").exists(), "`jupyter lab` is missing: jupyterlab must be a dependency"
    assert run(jupyter, "lab", "--version", env=env).strip()

    panel = run(jupyter, "labextension", "list", env=env)
    assert any("nbfan" in line and "enabled" in line and "OK" in line for line in panel.splitlines()), panel

    server = re.sub(r"\x1b\[[0-9;]*m", "", run(jupyter, "server", "extension", "list", env=env))
    lines = [line.strip() for line in server.splitlines()]
    assert "nbfan.server enabled" in lines, server
    at = lines.index("nbfan.server enabled")  # then "- Validating nbfan.server..." and "nbfan.server ... OK"
    assert lines[at + 2].startswith("nbfan.server") and lines[at + 2].endswith("OK"), server

    kernels = run(jupyter, "kernelspec", "list", env=env)
    (line,) = [line for line in kernels.splitlines() if line.split() and line.split()[0] == "nbfan"]
    assert str(venv) in line, kernels
    spec = (Path(line.split()[-1]) / "kernel.json").read_text()
    assert "Python 3 (nbfan)" in spec and "nbfan.notebook.kernel" in spec
