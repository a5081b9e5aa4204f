"""Placement: what a task of a function asks of this cluster, decided before anything is submitted.

`gpu=` alternatives are tried in their ranked order against what the workers advertise
(`client.scheduler_info()`, cached briefly so a `.remote` in a loop pays no extra round trip);
`cpu=`/`memory=` become `CPU`/`MEMORY` requests where workers advertise them and are noted
once otherwise; `concurrency_limit` adds the function's cap resource (see `scheduler/caps.py`).
A request no worker can satisfy fails here, naming what was asked and what is offered,
unless the cluster may still grow (adaptive, or no workers yet): then a warning, and Dask's
`no-workers-timeout` decides.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from nbfan import compat
from nbfan.cluster.connect import on_reconnect
from nbfan.engine.resources import GpuRequest
from nbfan.engine.target import CallTarget
from nbfan.exception import PlacementWarning, ResourceUnavailableError
from nbfan.scheduler.caps import cap_resource, function_identity
from nbfan.scheduler.rpc import ensure_cap, request

__all__ = ["ClusterView", "WorkerOffer", "cluster_view", "plan_resources", "resolve_resources"]


#: seconds a scheduler_info() answer is reused
INFO_TTL = 5.0


@dataclass(frozen=True)
class WorkerOffer:
    address: str
    nthreads: int
    resources: Mapping[str, float]

    def fits(self, ask: Mapping[str, float]) -> bool:
        return all(self.resources.get(k, 0) >= v for k, v in ask.items())


@dataclass(frozen=True)
class ClusterView:
    scheduler_id: str
    workers: tuple[WorkerOffer, ...]
    fetched: float  # time.monotonic()

    def advertises(self, resource: str) -> bool:
        return any(resource in w.resources for w in self.workers)


_cache: dict[tuple[int, str], ClusterView] = {}
_cache_lock = threading.Lock()
_noted: set[tuple[str, str]] = set()


def _fetch_info(client: Any) -> dict[str, Any]:
    try:
        return cast(dict[str, Any], client.scheduler_info(n_workers=-1))
    except TypeError:  # older distributed: no n_workers and every worker listed
        return cast(dict[str, Any], client.scheduler_info())


def cluster_view(client: Any, *, max_age: float = INFO_TTL) -> ClusterView:
    """What the cluster's workers offer, at most `max_age` seconds old."""
    key = (id(client), str(getattr(client.scheduler, "address", "")))
    now = time.monotonic()
    with _cache_lock:
        view = _cache.get(key)
    if view is not None and now - view.fetched <= max_age:
        return view
    info = _fetch_info(client)
    workers = tuple(
        WorkerOffer(addr, int(w.get("nthreads", 0)), dict(w.get("resources") or {}))
        for addr, w in sorted((info.get("workers") or {}).items())
    )
    view = ClusterView(str(info.get("id", "")), workers, time.monotonic())
    with _cache_lock:
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = view
    return view


def forget_cluster_view(client: Any | None = None) -> None:
    """Drop cached cluster views (all, or one client's)."""
    with _cache_lock:
        for key in [k for k in _cache if client is None or k[0] == id(client)]:
            del _cache[key]


on_reconnect.append(forget_cluster_view)  # perhaps a new scheduler: its id names the caps to set up


def startable_groups(client: Any) -> dict[str, dict[str, float]] | None:
    """The worker groups an autoscaler of this cluster can start, and what each offers (None
    when none said so: scheduler/demand.py)."""
    try:
        return cast("dict[str, dict[str, float]] | None", request(client, "demand.startable_groups"))
    except Exception:  # an older plugin, or a cluster going away: as if no autoscaler said
        return None


def cluster_may_grow(client: Any, view: ClusterView) -> bool:
    """Adaptive clusters (and clusters with no workers yet) may still bring a fitting worker."""
    if not view.workers:
        return True
    if os.environ.get("NBFAN_CLUSTER_MAY_GROW", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    cluster = getattr(client, "cluster", None)
    return cluster is not None and compat.is_adaptive(cluster)


def _amount(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def format_ask(ask: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={_amount(v)}" for k, v in ask.items()) or "nothing"


def describe_offer(view: ClusterView) -> str:
    """'GPU-A100 x2; per worker: 1 x {GPU=2, GPU-A100=2}, 2 x {no resources}'."""
    if not view.workers:
        return "no workers"
    models: dict[str, float] = {}
    groups: dict[str, int] = {}
    for w in view.workers:
        own = {k: v for k, v in sorted(w.resources.items()) if not k.startswith("nbfan-cap-")}
        for k, v in own.items():
            if k.startswith("GPU-"):
                models[k] = models.get(k, 0) + v
        label = "{" + (format_ask(own) if own else "no resources") + "}"
        groups[label] = groups.get(label, 0) + 1
    gpus = ", ".join(f"{k} x{_amount(v)}" for k, v in sorted(models.items())) or "no GPUs"
    per_worker = ", ".join(f"{n} x {label}" for label, n in sorted(groups.items(), key=lambda g: -g[1]))
    return f"{gpus}; per worker: {per_worker}"


def _note_once(identity: str, what: str, message: str) -> None:
    if (identity, what) in _noted:
        return
    _noted.add((identity, what))
    warnings.warn(message, PlacementWarning, stacklevel=5)


def _choose(
    identity: str, gpu: Sequence[GpuRequest], cpu: float | None, memory: int | None, view: ClusterView
) -> tuple[list[dict[str, float]], dict[str, float] | None]:
    """(the asks tried in order, the first one some worker fits or None)."""
    extra: dict[str, float] = {}
    for resource, value, option in (("CPU", cpu, f"cpu={cpu!r}"), ("MEMORY", memory, f"memory={memory!r} MiB")):
        if value is None:
            continue
        if view.advertises(resource):
            extra[resource] = float(value)
        elif view.workers:
            _note_once(
                identity, resource,
                f"{identity}: {option} is not enforced on this cluster: its workers do not advertise a {resource} "
                f"resource. Start workers with e.g. `dask worker ADDR --resources \"CPU=8,MEMORY=32768\"` "
                f"(MEMORY in MiB) so that tasks are placed by it.",
            )
    asks = [{**g.as_resources(), **extra} for g in gpu] or ([extra] if extra else [])
    for ask in asks:
        if any(w.fits(ask) for w in view.workers):
            return asks, ask
    return asks, None


def resolve_resources(
    identity: str,
    gpu: Sequence[GpuRequest],
    cpu: float | None,
    memory: int | None,
    client: Any,
) -> dict[str, float] | None:
    """The Dask `resources=` for tasks of `identity` on this client's cluster, or raise
    ResourceUnavailableError when no worker can satisfy any alternative."""
    if not gpu and cpu is None and memory is None:
        return None
    view = cluster_view(client)
    asks, chosen = _choose(identity, gpu, cpu, memory, view)
    if chosen is None and asks and time.monotonic() - view.fetched > 0.5:
        view = cluster_view(client, max_age=0)  # a worker may have joined since the cached answer
        asks, chosen = _choose(identity, gpu, cpu, memory, view)
    if chosen is not None or not asks:
        return chosen or None
    asked = " or ".join(format_ask(a) for a in asks)
    message = f"{identity}: asked for {asked}; workers offer {describe_offer(view)}"
    startable = startable_groups(client)
    if startable:  # an autoscaler said which workers it can start: wait for one that fits, or fail now
        for ask in asks:
            fitting = [name for name, offer in startable.items() if WorkerOffer("", 1, offer).fits(ask)]
            if fitting:
                _note_once(identity, "start:" + asked, f"{message}. The autoscaler starts a worker of group "
                           f"{fitting[0]!r} for it: the tasks are submitted and wait for it.")
                return ask
        groups = "; ".join(f"{name}: {format_ask(offer) if offer else 'no resources'}"
                           for name, offer in startable.items())
        raise ResourceUnavailableError(
            f"{message}; the autoscaler can start only these groups ({groups}): none fits. Add a "
            f"nbfan.WorkerGroup that offers it to nbfan.autoscale(groups=...), or change the function's "
            f"gpu=/cpu=/memory=."
        )
    if cluster_may_grow(client, view):
        _note_once(
            identity, "grow:" + asked,
            f"{message}. The cluster may still grow (it is adaptive or has no workers yet), so the tasks are "
            f"submitted and wait for a fitting worker (Dask's no-workers-timeout fails them otherwise).",
        )
        return asks[0]
    raise ResourceUnavailableError(
        f"{message}. No worker can run this function: start a worker that advertises it "
        f'(e.g. `dask worker ADDR --resources "GPU=1,GPU-A100=1"`), or change the function\'s gpu=/cpu=/memory=.'
    )


def plan_resources(function: CallTarget, client: Any) -> dict[str, float] | None:
    """Everything a task of `function` asks of Dask: placement plus its concurrency cap unit."""
    opts = function.options
    identity = function_identity(function.app_name, function.name, getattr(function.raw_f, "__module__", None))
    resources = resolve_resources(identity, opts.gpu, opts.cpu, opts.memory, client)
    if opts.concurrency_limit is None:
        return resources
    name = cap_resource(identity)
    # a @concurrent function's task runs up to that many inputs at once: fewer tasks at a time
    per_task = task_concurrency(opts)
    tasks = max(1, opts.concurrency_limit // per_task)
    ensure_cap(client, cluster_view(client).scheduler_id, name, tasks, resources or {})
    return {**(resources or {}), name: 1.0}


def task_concurrency(opts: Any) -> int:
    """How many inputs one task of the function runs at once: its `@concurrent(max_inputs=)`,
    within its concurrency_limit."""
    per_task = int(getattr(opts, "concurrent_inputs", 1) or 1)
    return min(per_task, opts.concurrency_limit) if opts.concurrency_limit else per_task
