"""Capacity that follows demand on a cluster you manage: `nbfan.autoscale(cluster, ...)` has a
Dask cluster manager that can `scale()` (LocalCluster, SpecCluster, dask-jobqueue,
dask-kubernetes, Coiled) start workers while nbfan's inputs wait and stop them once unneeded.

It is Dask's own `Adaptive` (`cluster.adapt`, the managers' public extension point), sized for
the larger of the scheduler's estimate and nbfan's backlog: a map keeps most of its inputs on its
caller, in a window sized for the slots that exist, so the scheduler alone does not see them
wait. (The local cluster's `nbfan cluster up --adaptive` does the same: cluster/autoscale.py.)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from distributed.deploy.adaptive import Adaptive

from nbfan.api.worker_groups import WorkerGroup, scale_by_group
from nbfan.cluster.autoscale import AdaptiveLimits, adapt_arguments
from nbfan.exception import InvalidError
from nbfan.scheduler.rpc import request_async


class BacklogAdaptive(Adaptive):
    """Dask's Adaptive, sized for nbfan's backlog too (asked of nbfan's scheduler plugin)."""

    client: Any = None  # the client nbfan uses on this cluster

    async def target(self) -> int:
        """The workers wanted: the scheduler's estimate, or nbfan's backlog when larger."""
        estimate = int(await super().target())  # type: ignore[no-untyped-call]
        if self.client is None:
            return estimate
        try:
            backlog = int(await request_async(self.client, "backlog", unknown=int(self.maximum)))
        except Exception:  # no plugin (yet), or a closing client: the scheduler's estimate alone
            return estimate
        return max(estimate, backlog)


def autoscale(cluster: Any, *, minimum: int = 0, maximum: int | None = None,
              scaledown_window: float = 60.0, groups: Mapping[str, WorkerGroup] | None = None) -> Any:
    """Let `cluster` (a Dask cluster manager) hold `minimum` workers while idle, start up to
    `maximum` (default: one per core of this machine) while nbfan's inputs
    wait, and stop each once unneeded for `scaledown_window` seconds. Returns Dask's Adaptive;
    `cluster.adapt(...)` again, or `.stop()` on it, changes or ends it.

    `groups` (a SpecCluster): other kinds of workers it can start, by name
    (`{"a100": nbfan.WorkerGroup(gpu_spec, maximum=2)}`), each started only for the inputs that
    need what it offers; `minimum`/`maximum` are then the cluster's own workers'. Returns the
    GroupScaler (`.events`: its decisions; `.stop()`)."""
    if not callable(getattr(cluster, "adapt", None)):
        raise InvalidError(f"nbfan.autoscale() takes a Dask cluster manager that can adapt (LocalCluster, "
                           f"SpecCluster, dask-jobqueue...), got {type(cluster).__name__}")
    limits = AdaptiveLimits(minimum, maximum or 0, scaledown_window).checked()
    from nbfan.cluster import get_client

    if groups:
        return scale_by_group(cluster, get_client(), groups, limits)
    adaptive = type("BacklogAdaptive", (BacklogAdaptive,), {"client": get_client()})  # this cluster's
    return cluster.adapt(Adaptive=adaptive, **adapt_arguments(limits))
