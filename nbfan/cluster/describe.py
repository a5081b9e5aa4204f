"""What a cluster offers: workers, threads, memory, GPUs (the `status` and `%nbfan` views)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dask.utils import format_bytes


@dataclass
class ClusterSummary:
    address: str
    workers: int
    threads: int
    memory: int  # bytes
    gpus: dict[str, int] = field(default_factory=dict)  # model -> count
    resources: dict[str, float] = field(default_factory=dict)  # totals of every advertised resource
    dashboard: str | None = None

    def text(self) -> str:
        gpus = ", ".join(f"{model} x{n}" for model, n in sorted(self.gpus.items())) or "none"
        lines = [
            f"address:   {self.address}",
            f"workers:   {self.workers}",
            f"threads:   {self.threads}",
            f"memory:    {format_bytes(self.memory)}",
            f"GPUs:      {gpus}",
        ]
        if self.dashboard:
            lines.append(f"dashboard: {self.dashboard}")
        return "\n".join(lines)


def summarize(info: dict[str, Any], dashboard: str | None = None) -> ClusterSummary:
    """Summarize `client.scheduler_info()`."""
    workers = info.get("workers", {})
    totals: dict[str, float] = {}
    gpus: dict[str, int] = {}
    for w in workers.values():
        for name, amount in (w.get("resources") or {}).items():
            totals[name] = totals.get(name, 0) + amount
            if name.startswith("GPU-"):
                gpus[name[4:]] = gpus.get(name[4:], 0) + int(amount)
    return ClusterSummary(
        address=info.get("address", "?"),
        workers=len(workers),
        threads=sum(w.get("nthreads", 0) for w in workers.values()),
        memory=sum(w.get("memory_limit") or 0 for w in workers.values()),
        gpus=gpus,
        resources=totals,
        dashboard=dashboard,
    )
