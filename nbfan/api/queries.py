"""Asking the cluster about calls, for every view (the panel's server, `%nbfan`, `nbfan calls`).

Each function is one round trip to the scheduler through any Dask client connected to it."""

from __future__ import annotations

import time
from typing import Any, cast
from urllib.parse import urlsplit

from nbfan.engine.cancel import cancel_by_id
from nbfan.exception import Error, ExecutionError, InvalidError
from nbfan.scheduler.rpc import request
from nbfan.scheduler.schema import SCHEMA_VERSION, CallsSnapshot, ClusterSnapshot, GpuSnapshot

__all__ = [
    "TelemetryUnavailable",
    "call_detail",
    "calls_snapshot",
    "cancel",
    "cluster_snapshot",
    "cluster_snapshot_from_info",
    "empty_calls_snapshot",
]

class TelemetryUnavailable(Error):
    """The scheduler does not track nbfan calls (telemetry off, or it cannot load nbfan)."""


def _request(dask_client: Any, op: str, **kwargs: Any) -> Any:
    """A telemetry request to nbfan's scheduler plugin (installed on first use)."""
    client = dask_client
    try:
        return request(client, op, **kwargs)
    except ExecutionError as exc:
        raise TelemetryUnavailable(
            f"the scheduler at {client.scheduler.address} does not track nbfan calls ({exc}). Make sure nbfan can "
            f"run where the scheduler runs."
        ) from None


def calls_snapshot(client: Any) -> CallsSnapshot:
    """Running calls, then the most recently finished ones (see schema.CallsSnapshot)."""
    return cast(CallsSnapshot, _request(client, "calls"))


def empty_calls_snapshot() -> CallsSnapshot:
    """A calls snapshot that lists no calls, for a view with no cluster to ask."""
    return {"version": SCHEMA_VERSION, "time": time.time(), "calls": []}


def cancel(client: Any, call_id: str) -> bool:
    """Cancel a call from anywhere (`engine/cancel.py`): False when it had already ended;
    NotFoundError when the cluster never saw it."""
    return cancel_by_id(client, call_id)


def as_tree(calls: list[Any]) -> list[dict[str, Any]]:
    """Calls in the snapshot's order, each followed by the calls made inside it, at any depth
    (`depth` says how deep): a parent's progress counts its own inputs, its children theirs."""
    ids = {c["call_id"] for c in calls}
    children: dict[str, list[Any]] = {}
    for call in calls:
        if call.get("parent") in ids:
            children.setdefault(call["parent"], []).append(call)
    ordered: list[dict[str, Any]] = []

    def add(call: Any, depth: int) -> None:
        ordered.append({**call, "depth": depth})
        for child in children.get(call["call_id"], []):
            add(child, depth + 1)

    for call in calls:
        if call.get("parent") not in ids:
            add(call, 0)
    return ordered


def _dashboard(info: dict[str, Any], address: str) -> str | None:
    port = (info.get("services") or {}).get("dashboard")
    if not port:
        return None
    host = urlsplit(address.replace("tls://", "tcp://")).hostname or "127.0.0.1"
    return f"http://{host}:{port}/status"


def _gpus(workers: dict[str, Any]) -> list[GpuSnapshot]:
    """GPU figures per GPU worker from Dask's own NVML metrics; null where Dask has none."""
    gpus: list[GpuSnapshot] = []
    for addr, w in sorted(workers.items()):
        resources = w.get("resources") or {}
        static = w.get("gpu") or {}  # Dask's NVML start-up info: name, memory-total
        if not static and not resources.get("GPU"):
            continue
        model = static.get("name") or next((k[4:] for k in resources if k.startswith("GPU-")), "GPU")
        live = (w.get("metrics") or {}).get("gpu") or {}
        util = live.get("utilization")
        used = live.get("memory-used")
        total = static.get("memory-total")
        gpus.append({
            "worker": addr,
            "model": str(model),
            "utilization": float(util) if isinstance(util, (int, float)) else None,
            "memory_used": int(used) if isinstance(used, (int, float)) else None,
            "memory_total": int(total) if isinstance(total, (int, float)) else None,
        })
    return gpus


def cluster_snapshot_from_info(info: dict[str, Any]) -> ClusterSnapshot:
    """A ClusterSnapshot from `client.scheduler_info()` (all workers)."""
    workers = info.get("workers") or {}
    address = str(info.get("address", ""))
    return {
        "version": SCHEMA_VERSION,
        "address": address,
        "workers": len(workers),
        "threads": sum(int(w.get("nthreads") or 0) for w in workers.values()),
        "memory": sum(int(w.get("memory_limit") or 0) for w in workers.values()),
        "gpus": _gpus(workers),
        "dashboard": _dashboard(info, address),
    }


def cluster_snapshot(client: Any) -> ClusterSnapshot:
    """What the cluster offers now: workers, threads, memory, GPUs, dashboard link."""
    return cluster_snapshot_from_info(client.scheduler_info(n_workers=-1))


def call_detail(client: Any, call_id: str, lines: int = 20) -> dict[str, Any]:
    """A call's failed inputs and its latest output lines (the panel's per-call view):
    {"call_id", "failures": [{input, exc_type, message, traceback, worker, attempts, time}],
    "lines": [{input, stream, time, worker, text}], "held", "progress": the running inputs' latest
    redrawn lines (tqdm bars), shaped as lines}."""
    if not isinstance(call_id, str) or not call_id:
        raise InvalidError(f"call_detail() takes a call id string, got {call_id!r}")
    summary = _request(client, "output.summary", call_id=call_id, last=lines)
    failure_keys = ("input", "exc_type", "message", "traceback", "worker", "attempts", "time")
    line_keys = ("input", "stream", "time", "worker", "text")
    return {
        "call_id": call_id,
        "failures": [dict(zip(failure_keys, row, strict=False)) for row in summary["failures"]],
        "lines": [dict(zip(line_keys, row[1:], strict=False)) for row in summary["lines"]],
        "held": summary["held"],
        "progress": [dict(zip(line_keys, row[1:], strict=False)) for row in summary.get("progress", ())],
    }
