"""The `%nbfan` view: the cluster this kernel uses and the calls running on it, as an HTML
table in notebooks and text elsewhere. Calls come from the telemetry snapshot (the same one
the JupyterLab panel shows); on a cluster without nbfan telemetry the view shows the cluster alone."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from typing import Any

from dask.utils import format_bytes

from nbfan.cluster import connect, current_connection
from nbfan.cluster.describe import ClusterSummary, summarize

#: Finished calls shown under the running ones.
RECENT_FINISHED = 5


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
    calls: list[dict[str, Any]] | None = None  # telemetry CallSnapshots; None: no telemetry there

    def __repr__(self) -> str:
        lines = [self.summary.text(), f"source:    {self.source}", ""]
        lines += _text_table([_worker_row(w) for w in self.workers])
        lines.append("")
        if self.calls is None:
            lines.append("calls: (no nbfan telemetry on this cluster)")
        elif not self.calls:
            lines.append("calls: none yet")
        else:
            lines += _text_table([_call_row(c) for c in self.calls])
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        s = self.summary
        gpus = ", ".join(f"{html.escape(m)} \u00d7{n}" for m, n in sorted(s.gpus.items())) or "none"
        head = (
            f"<b>nbfan cluster</b> <code>{html.escape(s.address)}</code> ({html.escape(self.source)}) · "
            f"{s.workers} workers · {s.threads} threads · {format_bytes(s.memory)} · GPUs: {gpus}"
        )
        if s.dashboard:
            head += f' · <a href="{html.escape(s.dashboard)}" target="_blank">dashboard</a>'
        workers = _html_table([_worker_row(w) for w in self.workers])
        if self.calls is None:
            calls = "<p><i>Running calls: no telemetry on this cluster.</i></p>"
        elif not self.calls:
            calls = "<p>No calls yet.</p>"
        else:
            calls = _html_table([_call_row(c) for c in self.calls])
        return f"<div class='nbfan-status'><p>{head}</p>{workers}{calls}</div>"


def _worker_row(w: WorkerRow) -> dict[str, Any]:
    return {
        "worker": w.name or w.address,
        "address": w.address,
        "threads": w.threads,
        "memory": format_bytes(w.memory),
        "resources": ", ".join(f"{k}={v:g}" for k, v in sorted(w.resources.items())),
        "GPU": w.gpu,
    }


def _text_table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols).rstrip()]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in cols).rstrip() for r in rows]
    return lines


def _html_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _call_row(call: dict[str, Any]) -> dict[str, Any]:
    """The columns shown for one call of the telemetry snapshot (schema.CallSnapshot)."""
    total = call.get("total")
    started = call.get("started")
    elapsed = ""
    if isinstance(started, (int, float)):
        elapsed = f"{max(0.0, (call.get('ended') or time.time()) - started):.1f}s"
    caller = call.get("caller") or {}
    return {
        "call": "  " * call.get("depth", 0) + ("└ " if call.get("depth") else "") + str(call.get("call_id", ""))[:12],
        "function": call.get("function", "?"),
        "kind": call.get("kind", ""),
        "caller": caller.get("label", "") if isinstance(caller, dict) else str(caller),
        "state": call.get("state", ""),
        "done": f"{call.get('done', 0)}/{total if total is not None else '?'}",
        "failed": call.get("failed", 0),
        "running": call.get("running", 0),
        "rate": f"{call.get('rate', 0.0):.1f}/s",
        "elapsed": elapsed,
    }


def running_calls(client: Any) -> list[dict[str, Any]] | None:
    """Running calls, then the few most recently finished; None when the cluster has no
    nbfan telemetry (the view then shows the cluster alone)."""
    try:
        from nbfan.api.queries import as_tree, calls_snapshot
    except ImportError:
        return None
    try:
        calls = list(calls_snapshot(client)["calls"])
    except Exception:
        return None
    running = [c for c in calls if c.get("state") == "running"]
    finished = [c for c in calls if c.get("state") != "running"]
    finished.sort(key=lambda c: c.get("ended") or 0, reverse=True)
    return as_tree(running + finished[:RECENT_FINISHED])  # children under their parent


def _gpu_texts(info: dict[str, Any]) -> dict[str, str]:
    """Per worker address: GPU model, utilisation and memory, from Dask's NVML metrics."""
    try:
        from nbfan.api.queries import cluster_snapshot_from_info
    except ImportError:
        return {}
    texts: dict[str, str] = {}
    for gpu in cluster_snapshot_from_info(info)["gpus"]:
        parts = [gpu["model"]]
        if gpu["utilization"] is not None:
            parts.append(f"{gpu['utilization']:.0f}% util")
        if gpu["memory_used"] is not None and gpu["memory_total"]:
            parts.append(f"{format_bytes(gpu['memory_used'])}/{format_bytes(gpu['memory_total'])}")
        texts[gpu["worker"]] = " ".join(parts)
    return texts


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
    gpus = _gpu_texts(info)
    workers = [
        WorkerRow(
            name="" if str(w.get("name", addr)) == addr else str(w.get("name")),
            address=addr,
            threads=w.get("nthreads", 0),
            memory=w.get("memory_limit") or 0,
            resources=dict(w.get("resources") or {}),
            gpu=gpus.get(addr, ""),
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
