"""A real `jupyter lab` on 127.0.0.1 with a token, isolated from the user's Jupyter state
(config, data, runtime and IPython dirs in a temp folder; HOME kept), and Debian's Chromium
driven by Playwright. Used by the browser tests' fixtures."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Lab:
    """A running JupyterLab server."""

    proc: subprocess.Popen[bytes]
    url: str  # http://127.0.0.1:PORT/
    token: str
    root: Path  # the server's root_dir (notebooks live here)
    log: Path
    base: Path
    env: dict[str, str]
    port: int

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
        """Call the server's REST API with the token (returns parsed JSON or None)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path.lstrip("/"),
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read().decode()
        return json.loads(text) if text else None

    def page_url(self, path: str = "lab") -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.url}{path}{sep}reset&token={self.token}"

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:]


def isolated_env(base: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a Lab whose Jupyter state lives under `base` (HOME stays as it is)."""
    env = dict(os.environ)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        path = base / name.lower()
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    env.pop("JUPYTER_PATH", None)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    # No news prompt over the screenshots (trap 7 in the toolchain notes).
    overrides = base / "jupyter_config_dir" / "labconfig"
    overrides.mkdir(parents=True, exist_ok=True)
    (overrides / "default_setting_overrides.json").write_text(
        json.dumps({"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}})
    )
    env.update(extra or {})
    return env


def start_lab(
    base: Path, env: dict[str, str], *, port: int | None = None, token: str | None = None, timeout: float = 90
) -> Lab:
    """Start `jupyter lab` (on `port` with `token` to restart one) and wait until its API answers."""
    root = base / "root"
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    token = token or secrets.token_hex(16)
    log = base / "jupyter-lab.log"
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    lab = Lab(proc=proc, url=f"http://127.0.0.1:{port}/", token=token, root=root, log=log, base=base, env=env, port=port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{lab.log_tail()}")
        try:
            lab.api("GET", "api/status", timeout=2)
            return lab
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            time.sleep(0.3)
    stop_lab(lab)
    raise TimeoutError(f"jupyter lab did not answer within {timeout}s:\n{lab.log_tail()}")


def stop_lab(lab: Lab, timeout: float = 20) -> None:
    """Stop the server and its kernels (the whole process group it leads)."""
    if lab.proc.poll() is None:
        try:
            os.killpg(lab.proc.pid, signal.SIGINT)
            lab.proc.wait(timeout=timeout / 2)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    if lab.proc.poll() is None:
        try:
            os.killpg(lab.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        lab.proc.wait(timeout=timeout / 2)


def restart_lab(lab: Lab) -> None:
    """Stop the server and start it again on the same port with the same token (in place)."""
    stop_lab(lab)
    lab.proc = start_lab(lab.base, lab.env, port=lab.port, token=lab.token).proc


def notebook(cells: list[str], kernel: str) -> dict[str, Any]:
    """A notebook document with code cells, bound to a kernelspec."""
    return {
        "type": "notebook",
        "format": "json",
        "content": {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": kernel, "display_name": kernel, "language": "python"}},
            "cells": [
                {"cell_type": "code", "id": f"cell{i}", "metadata": {}, "source": src, "outputs": [],
                 "execution_count": None}
                for i, src in enumerate(cells)
            ],
        },
    }


def kernel_name() -> str:
    """The nbfan kernel when its kernelspec is installed, else plain python3."""
    from jupyter_client.kernelspec import KernelSpecManager

    return "nbfan" if "nbfan" in KernelSpecManager().find_kernel_specs() else "python3"


def launch_chromium(playwright: Any, user_data_dir: Path) -> Any:
    """A persistent Chromium context (fresh profile) from Debian's chromium, never a download."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        raise RuntimeError("chromium is missing: run `make system-deps` (apt-get install chromium)")
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        headless=True,
        viewport={"width": 1280, "height": 800},
    )
