"""Clusters without nbfan: ship nbfan's own code to the scheduler and the workers, once.

A stock Dask cluster (Kubernetes, Gateway, jobqueue, Coiled) has dask, distributed and
cloudpickle, not nbfan. The tasks nbfan submits, its scheduler plugin and the workers' fork
servers import nbfan. So on connecting, the client asks the scheduler and the workers which
nbfan they import (`probe.py`, sent by value); where one has none, or other code, it zips
its own package (pure Python) and installs it with Dask's `SchedulerUploadFile` and
`UploadFile` plugins, named by the code's fingerprint: workers that join later get it from
the plugin, and nothing travels per task. A process that already imported other nbfan code
cannot switch: that fails at once, naming both versions and the fix.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any

import cloudpickle

from nbfan.cluster import probe
from nbfan.exception import ClusterConnectionError

logger = logging.getLogger("nbfan")

cloudpickle.register_pickle_by_value(probe)  # the probe runs where nbfan is not installed

_ready: set[str] = set()  # schedulers (by id) known to run our code
_lock = threading.Lock()


def our_code() -> tuple[str, str]:
    """(version, fingerprint) of the nbfan this process runs."""
    code = probe.nbfan_here()
    assert code is not None  # this process runs nbfan
    return code


def ensure_nbfan_on_cluster(client: Any) -> str:
    """Make the scheduler and every worker run this process's nbfan code; "present" when they
    already do, "shipped" when it was sent now. Once per scheduler per process."""
    scheduler_id = str(client.scheduler_info().get("id", client.scheduler.address))
    with _lock:
        if scheduler_id in _ready:
            return "present"
    ours = our_code()
    theirs = _theirs(client)
    if all(code == ours for code in theirs.values()):
        outcome = "present"
    else:
        failure: Exception | None = None
        try:
            _ship(client, ours)
        except Exception as exc:  # a node that cannot import it: the probe below says why
            failure = exc
        outcome = "shipped"
        wrong = {where: code for where, code in _theirs(client).items() if code != ours}
        if wrong:
            raise ClusterConnectionError(_mismatch_message(ours, wrong)) from failure
        if failure is not None:
            raise ClusterConnectionError(f"sending nbfan's code to the cluster failed: {failure}") from failure
    with _lock:
        _ready.add(scheduler_id)
    return outcome


def _theirs(client: Any) -> dict[str, tuple[str, str] | None]:
    """What each worker and the scheduler import, keyed by address."""
    found: dict[str, Any] = dict(client.run(probe.nbfan_here, on_error="return"))
    found["scheduler"] = client.run_on_scheduler(probe.nbfan_here)
    return {where: tuple(code) if isinstance(code, (tuple, list)) else None for where, code in found.items()}


def _ship(client: Any, ours: tuple[str, str]) -> None:
    from distributed.diagnostics.plugin import SchedulerUploadFile, UploadFile

    path = package_zip(ours[1])
    name = f"nbfan-code-{ours[1]}"
    logger.info("nbfan: the cluster has no nbfan %s; sending its code (%d KiB)", ours[0], path.stat().st_size // 1024)
    client.register_plugin(SchedulerUploadFile(str(path), load=True), name=name)
    client.register_plugin(UploadFile(str(path), load=True), name=name)


def package_zip(fingerprint: str) -> Path:
    """The zip of nbfan's Python files, importable from `sys.path` (built once per code version)."""
    path = Path(tempfile.gettempdir()) / f"nbfan-code-{fingerprint}.zip"
    if path.exists():
        return path
    root = Path(__file__).resolve().parents[1]
    partial = path.with_suffix(f".{threading.get_ident()}.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for source in sorted(root.rglob("*.py")):
            archive.write(source, Path("nbfan") / source.relative_to(root))
    partial.replace(path)
    return path


def _mismatch_message(ours: tuple[str, str], wrong: dict[str, tuple[str, str] | None]) -> str:
    where, code = next(iter(wrong.items()))
    theirs = f"nbfan {code[0]} (code {code[1]})" if code else "no nbfan"
    if code and code[1].startswith("mixed"):
        theirs = f"nbfan code {code[1]}, an older copy it had already imported"
    return (
        f"the cluster runs other nbfan code than this process: {where} has {theirs}, this process has nbfan "
        f"{ours[0]} (code {ours[1]}), and a process that already imported nbfan cannot switch. Restart the "
        f"cluster's scheduler and workers (nbfan then sends its code), or install nbfan=={ours[0]} there."
    )
