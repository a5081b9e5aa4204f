"""The nbfan kernel: installed kernelspec, fast start, extension loaded, lazy cluster connection.

Also home of `KernelSession`, the small jupyter_client driver the notebook tests share."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Execution:
    """Everything one execute request produced, with arrival times (time.monotonic())."""

    reply: dict[str, Any]
    reply_at: float
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.reply["content"]["status"]

    def stream(self, name: str = "stdout") -> str:
        return "".join(m["content"]["text"] for _, m in self.messages if m["msg_type"] == "stream" and m["content"]["name"] == name)

    def outputs(self, *types: str) -> list[dict[str, Any]]:
        return [m["content"] for _, m in self.messages if m["msg_type"] in types]

    def data(self) -> list[dict[str, Any]]:
        """The mime bundles of every result, display and display update, in order."""
        return [c["data"] for c in self.outputs("execute_result", "display_data", "update_display_data")]

    def result_text(self) -> str | None:
        results = self.outputs("execute_result")
        return results[-1]["data"].get("text/plain") if results else None

    def error(self) -> dict[str, Any] | None:
        """The error output, or (UsageError is printed, not raised as an output) the reply's."""
        errors = self.outputs("error")
        if errors:
            return errors[-1]
        return self.reply["content"] if self.status == "error" else None


class KernelSession:
    """A real nbfan kernel driven over ZMQ, as a notebook frontend would."""

    def __init__(self, env: dict[str, str], kernel_name: str = "nbfan") -> None:
        self.km = KernelManager(kernel_name=kernel_name)
        self.km.start_kernel(env={**os.environ, **env})
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def execute(self, code: str, timeout: float = 60, on_output: tuple[str, Callable[[], None]] | None = None) -> Execution:
        """Run code and collect its iopub messages until the kernel is idle again.
        `on_output=(text, action)`: call action() once, as soon as the cell's output shows text."""
        msg_id = self.kc.execute(code)
        deadline = time.monotonic() + timeout
        messages: list[tuple[float, dict[str, Any]]] = []
        reply: dict[str, Any] | None = None
        reply_at = 0.0
        idle = False
        while not (idle and reply is not None):
            if time.monotonic() > deadline:
                raise TimeoutError(f"kernel did not finish within {timeout}s: {code[:80]!r}")
            if on_output is not None:
                shown = "".join(m["content"].get("text", "") for _, m in messages if m["msg_type"] == "stream")
                if on_output[0] in shown:
                    on_output[1]()
                    on_output = None
            try:
                msg = self.kc.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                msg = None
            if msg is not None and msg["parent_header"].get("msg_id") == msg_id:
                if msg["msg_type"] == "status":
                    idle = idle or msg["content"]["execution_state"] == "idle"
                else:
                    messages.append((time.monotonic(), msg))
            if reply is None:
                try:
                    r = self.kc.get_shell_msg(timeout=0.01)
                except queue.Empty:
                    continue
                if r["parent_header"].get("msg_id") == msg_id:
                    reply, reply_at = r, time.monotonic()
        return Execution(reply, reply_at, messages)

    def ok(self, code: str, timeout: float = 60) -> Execution:
        ex = self.execute(code, timeout)
        assert ex.status == "ok", ex.error() or ex.stream("stderr")
        return ex

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def kernel_env(scheduler: str, progress: bool = False) -> dict[str, str]:
    """Kernels share the test session's cluster and NBFAN_HOME; progress is opt-in."""
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
    return {"NBFAN_SCHEDULER": scheduler, "NBFAN_PROGRESS": "1" if progress else "0", "PYTHONPATH": pythonpath}


@pytest.fixture(scope="module")
def kernel(local_cluster: Any) -> Iterator[KernelSession]:
    session = KernelSession(kernel_env(local_cluster.scheduler_address))
    yield session
    session.close()


# -- tests ------------------------------------------------------------------------------------


def test_kernelspec_is_installed_with_the_package():
    spec = KernelSpecManager().get_kernel_spec("nbfan")
    assert spec.display_name == "Python 3 (nbfan)"
    assert spec.argv[1:3] == ["-m", "nbfan.notebook.kernel"]
    assert Path(spec.resource_dir).parent.parent.parent.parent == Path(sys.prefix)  # <prefix>/share/jupyter/kernels
    listed = subprocess.run([sys.executable, "-m", "jupyter", "kernelspec", "list", "--json"], capture_output=True, text=True, check=True)
    assert "nbfan" in json.loads(listed.stdout)["kernelspecs"]


def test_shipped_kernel_json_matches_the_installer(tmp_path):
    from nbfan.notebook.kernelspec import SPEC, install

    shipped = json.loads((REPO / "kernel" / "nbfan" / "kernel.json").read_text())
    assert shipped == SPEC
    folder = Path(install(prefix=str(tmp_path)))
    assert json.loads((folder / "kernel.json").read_text()) == SPEC


def test_kernel_loads_the_extension_and_connects_lazily(kernel, local_cluster):
    ex = kernel.ok(
        "import sys; c = sys.modules['nbfan.cluster.connect']\n"
        "print(c._current is None, 'remote' in get_ipython().magics_manager.magics['cell'],"
        " 'nbfan' in get_ipython().magics_manager.magics['line'])"
    )
    assert ex.stream().split() == ["True", "True", "True"]  # no cluster connection at start
    ex = kernel.ok("%nbfan")
    text = ex.result_text()
    assert local_cluster.scheduler_address in text and "workers:   2" in text
    html = ex.outputs("execute_result")[0]["data"]["text/html"]
    assert "<table>" in html and local_cluster.scheduler_address in html
    ex = kernel.ok("import sys; c = sys.modules['nbfan.cluster.connect']; print(c.current_connection().source)")
    assert ex.stream().strip() == "env"


def test_nbfan_connect_switches_the_cluster(kernel, local_cluster):
    address = local_cluster.scheduler_address
    ex = kernel.ok(f"%nbfan connect {address}")
    assert address in ex.result_text()
    ex = kernel.ok("import sys; c = sys.modules['nbfan.cluster.connect']; print(c.current_connection().source)")
    assert ex.stream().strip() == "connect"
    ex = kernel.execute("%nbfan connect")
    assert ex.status == "error" and ex.error()["ename"] == "UsageError" and "ADDRESS" in ex.stream("stderr")


def test_kernel_info_names_nbfan(kernel):
    kernel.kc.kernel_info()
    reply = kernel.kc.get_shell_msg(timeout=10)
    assert reply["content"]["implementation"] == "nbfan"
