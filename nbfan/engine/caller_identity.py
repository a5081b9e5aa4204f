"""Who is calling: a notebook kernel (with its notebook's file name when Jupyter says it),
a script, or some other Python process. Worked out once per process; never imports Jupyter."""

from __future__ import annotations

import os
import socket
import sys
from functools import lru_cache

from nbfan.scheduler.schema import Caller


def _kernel_id(argv: list[str]) -> str | None:
    """The kernel id from the connection file a kernel is started with (`-f .../kernel-<id>.json`)."""
    for i, arg in enumerate(argv):
        path = None
        if arg == "-f" and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith("--f="):
            path = arg[4:]
        if path:
            name = os.path.basename(path)
            if name.startswith("kernel-") and name.endswith(".json"):
                return name[len("kernel-"):-len(".json")]
    return None


def detect_caller(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> Caller:
    """Describe this process for the telemetry views."""
    argv = list(sys.argv if argv is None else argv)
    env = os.environ if environ is None else environ
    pid = os.getpid()
    host = socket.gethostname()
    program = argv[0] if argv else ""
    is_kernel = "ipykernel" in sys.modules and (
        "ipykernel" in os.path.basename(program) or _kernel_id(argv) is not None or "JPY_SESSION_NAME" in env
    )
    if is_kernel:
        session = env.get("JPY_SESSION_NAME") or ""
        notebook = os.path.basename(session.rstrip("/")) or None
        kernel = _kernel_id(argv)
        label = notebook or (f"kernel {kernel[:8]}" if kernel else f"kernel (pid {pid})")
        return {"label": label, "kind": "kernel", "host": host, "pid": pid, "notebook": notebook}
    if program and program not in ("-c", "-m", "-") and not program.startswith("<"):
        return {"label": os.path.basename(program), "kind": "script", "host": host, "pid": pid, "notebook": None}
    return {"label": f"python (pid {pid})", "kind": "process", "host": host, "pid": pid, "notebook": None}


@lru_cache(maxsize=1)
def this_caller() -> Caller:
    return detect_caller()
