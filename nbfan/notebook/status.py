"""The `%nbfan` view: the cluster this kernel uses and the calls running on it, as an HTML
table in notebooks and text elsewhere. Calls come from `nbfan.telemetry` when its query
functions exist; without them the view shows the cluster alone."""

from __future__ import annotations

import dataclasses
import html
import time
from dataclasses import dataclass, field
from typing import Any

from dask.utils import format_bytes

from ..cluster import connect, current_connection
from ..cluster.describe import ClusterSummary, summarize

#: Query functions the telemetry layer may offer, tried in order: f(client) -> calls.
_TELEMETRY_QUERIES = ("calls_snapshot", "snapshot", "get_snapshot", "query_calls", "list_calls")


@dataclass
class WorkerRow:
    name: str
    address: str
    threads: int
    memory: int
    resources: dict[str, float]
    gpu: str = ""  # model, utilisation and memory when NVML reports them


@dataclass
class NbfanStatus:
    """What `%nbfan` shows; renders itself as HTML in notebooks and as text elsewhere."""

    summary: ClusterSummary
    source: str
    workers: list[WorkerRow] = field(default_factory=list)
    calls: list[dict[str, Any]] | None = None  # None: no telemetry available

    def __repr__(self) -> str:
        lines = [self.summary.text(), f"source:    {self.source}", "", "workers:"]
        for w in self.workers:
            res = ", ".join(f"{k}={v:g}" for k, v in sorted(w.resources.items()))
            lines.append(f"  {w.name:<10} {w.address:<24} {w.threads} thr  {format_bytes(w.memory):>9}  {res}  {w.gpu}".rstrip())
        lines.append("")
        if self.calls is None:
            lines.append("calls:     (no telemetry on this cluster)")
        elif not self.calls:
            lines.append("calls:     none running")
        else:
            lines.append("calls:")
            for c in self.calls:
                lines.append("  " + "  ".join(f"{k}={v}" for k, v in _call_row(c).items()))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        s = self.summary
        gpus = ", ".join(f"{html.escape(m)} ×{n}" for m, n in sorted(s.gpus.items())) or "none"
        head = (
            f"<b>nbfan cluster</b> <code>{html.escape(s.address)}</code> ({html.escape(self.source)}) · "
            f"{s.workers} workers · {s.threads} threads · {format_bytes(s.memory)} · GPUs: {gpus}"
        )
        if s.dashboard:
            head += f' · <a href="{html.escape(s.dashboard)}" target="_blank">dashboard</a>'
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in (
                w.name, w.address, w.threads, format_bytes(w.memory),
                ", ".join(f"{k}={v:g}" for k, v in sorted(w.resources.items())), w.gpu,
            )) + "</tr>"
            for w in self.workers
        )
        workers = (
            "<table><thead><tr><th>worker</th><th>address</th><th>threads</th><th>memory</th>"
            f"<th>resources</th><th>GPU</th></tr></thead><tbody>{rows}</tbody></table>"
        )
        if self.calls is None:
            calls = "<p><i>Running calls: no telemetry on this cluster.</i></p>"
        elif not self.calls:
            calls = "<p>No calls running.</p>"
        else:
            table = [_call_row(c) for c in self.calls]
            cols = list(table[0])
            calls = (
                "<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr></thead><tbody>"
                + "".join("<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in cols) + "</tr>" for r in table)
                + "</tbody></table>"
            )
        return f"<div class='nbfan-status'><p>{head}</p>{workers}{calls}</div>"


def _call_row(call: dict[str, Any]) -> dict[str, Any]:
    """The columns shown for one call, whatever shape the telemetry snapshot gives."""
    name = call.get("function") or call.get("function_name") or call.get("name") or "?"
    total = call.get("total")
    done = call.get("done", 0)
    started = call.get("start") or call.get("started")
    elapsed = ""
    if isinstance(started, (int, float)) and started > 1e9:
        elapsed = f"{max(0.0, (call.get('end') or time.time()) - started):.1f}s"
    return {
        "call": str(call.get("call_id") or call.get("id") or "")[:12],
        "function": name,
        "kind": call.get("kind", ""),
        "state": call.get("state", ""),
        "done": f"{done}/{total if total is not None else '?'}",
        "failed": call.get("failed", 0),
        "running": call.get("running", 0),
        "elapsed": elapsed,
    }


def _as_dict(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        return item
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return dataclasses.asdict(item)
    return dict(vars(item))


def running_calls(client: Any) -> list[dict[str, Any]] | None:
    """The calls telemetry knows about (running first), or None when it offers no query."""
    try:
        from .. import telemetry
    except Exception:
        return None
    for name in _TELEMETRY_QUERIES:
        query = getattr(telemetry, name, None)
        if callable(query):
            break
    else:
        return None
    try:
        snapshot = query(client)
    except Exception:
        return None
    calls = snapshot.get("calls", snapshot) if isinstance(snapshot, dict) else getattr(snapshot, "calls", snapshot)
    if isinstance(calls, dict):
        calls = list(calls.values())
    rows = [_as_dict(c) for c in calls or []]
    return sorted(rows, key=lambda c: c.get("state") != "running")


def _gpu_text(worker: dict[str, Any]) -> str:
    gpu = worker.get("gpu") or {}
    metrics = worker.get("metrics") or {}
    parts = []
    if gpu.get("name"):
        parts.append(str(gpu["name"]))
    if metrics.get("gpu_utilization") is not None:
        parts.append(f"{metrics['gpu_utilization']}% util")
    if metrics.get("gpu_memory_used") is not None and gpu.get("memory-total"):
        parts.append(f"{format_bytes(metrics['gpu_memory_used'])}/{format_bytes(gpu['memory-total'])}")
    return " ".join(parts)


def cluster_status() -> NbfanStatus:
    """Connect if needed (the kernel connects lazily) and describe the cluster and its calls."""
    conn = current_connection()
    client = conn.client
    info = client.scheduler_info(n_workers=-1) if _takes_n_workers(client) else client.scheduler_info()
    dashboard = None
    try:
        dashboard = client.dashboard_link
    except Exception:
        pass
    workers = [
        WorkerRow(
            name="" if str(w.get("name", addr)) == addr else str(w.get("name")),
            address=addr,
            threads=w.get("nthreads", 0),
            memory=w.get("memory_limit") or 0,
            resources=dict(w.get("resources") or {}),
            gpu=_gpu_text(w),
        )
        for addr, w in sorted(info.get("workers", {}).items(), key=lambda kv: str(kv[1].get("name", kv[0])))
    ]
    return NbfanStatus(summarize(info, dashboard), conn.source, workers, running_calls(client))


def _takes_n_workers(client: Any) -> bool:
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):
        return False


def connect_to(address: str) -> NbfanStatus:
    """`%nbfan connect ADDRESS`: switch this kernel's cluster, then show it."""
    connect(address)
    return cluster_status()
