"""Autoscaling a SpecCluster group by group: `nbfan.autoscale(cluster, groups={"a100": WorkerGroup(spec,
maximum=2)})` starts workers of a group only while inputs that need what its workers offer wait
(a `gpu="A100"` map starts A100 workers, a CPU map starts the cluster's own), and stops each once
unneeded for the scale-down window.

Dask's `Adaptive` counts tasks, not resources, and one `scale(n)` cannot say which kind of worker
to start (distributed#1851). So this drives the manager's `worker_spec` itself, SpecCluster's
public extension point (as dask-jobqueue and dask-cuda do): a group's workers are named
`<group>-<n>`, the cluster's own are the others; after a change, `cluster.scale(len(spec))` has
SpecCluster start and retire workers to match (gracefully: their results move). The demand by
group comes from nbfan's scheduler plugin (scheduler/demand.py), which also learns what each
group offers, so that a call no current worker fits waits for a group that fits it, and one that
no group fits fails at once, naming what can be started (engine/placement.py)."""

from __future__ import annotations

import copy
import itertools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tornado.ioloop import PeriodicCallback

from nbfan import compat
from nbfan.cluster.autoscale import INTERVAL, AdaptiveLimits
from nbfan.exception import InvalidError
from nbfan.scheduler.demand import DEFAULT_GROUP
from nbfan.scheduler.rpc import request, request_async

logger = logging.getLogger("nbfan.autoscale")
EVENTS_KEPT = 50


@dataclass(frozen=True)
class WorkerGroup:
    """Workers of one kind a SpecCluster can start: `spec` as SpecCluster takes one
    (`{"cls": Nanny, "options": {"resources": {"GPU": 1, "GPU-A100": 1}, ...}}`), kept between
    `minimum` and `maximum`. What it offers is read from its `resources`."""

    spec: Mapping[str, Any]
    maximum: int
    minimum: int = 0
    offer: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.spec, Mapping) or "cls" not in self.spec:
            raise InvalidError(f"WorkerGroup spec {self.spec!r}: give a SpecCluster worker spec, "
                               f'e.g. {{"cls": distributed.Nanny, "options": {{"resources": {{"GPU": 1}}}}}}')
        AdaptiveLimits(self.minimum, self.maximum).checked()  # the same rules as the cluster's own
        resources = dict(self.spec.get("options", {}).get("resources") or {})
        object.__setattr__(self, "offer", {str(k): float(v) for k, v in resources.items()})


class GroupScaler:
    """Starts and stops each group's workers for its share of nbfan's demand, every INTERVAL.
    `events` holds the last decisions, with why; `stop()` ends it."""

    def __init__(self, cluster: Any, client: Any, groups: Mapping[str, WorkerGroup], own: AdaptiveLimits) -> None:
        self.cluster = cluster
        self.client = client
        self.groups = dict(groups)
        self.limits = {DEFAULT_GROUP: (own.minimum, own.maximum),
                       **{name: (g.minimum, g.maximum) for name, g in self.groups.items()}}
        self.window = own.scaledown_window
        self.events: list[tuple[float, str]] = []
        self._surplus_since: dict[str, float] = {}
        self._numbers = itertools.count()
        self._busy = False
        self._callback = PeriodicCallback(self._step, INTERVAL * 1000)

    def start(self) -> GroupScaler:
        """Say what the groups offer (placement reads it), then decide every INTERVAL."""
        request(self.client, "demand.startable", groups=self._offers())
        self.cluster.loop.add_callback(self._callback.start)
        return self

    def stop(self) -> None:
        """Stop scaling (the workers stay as they are)."""
        self.cluster.loop.add_callback(self._callback.stop)
        request(self.client, "demand.startable", groups=None)

    def _offers(self) -> dict[str, dict[str, float]]:
        return {name: group.offer for name, group in self.groups.items()}

    def members(self, group: str) -> list[Any]:
        """The names of `group`'s workers in the cluster's spec (started or starting)."""
        prefixes = tuple(f"{name}-" for name in self.groups)
        if group == DEFAULT_GROUP:
            return [name for name in self.cluster.worker_spec if not str(name).startswith(prefixes)]
        return [name for name in self.cluster.worker_spec if str(name).startswith(f"{group}-")]

    async def _step(self) -> None:
        if self._busy or compat.cluster_closed(self.cluster):
            return
        self._busy = True
        try:
            most = sum(maximum for _, maximum in self.limits.values())
            wanted = await request_async(self.client, "demand.groups", groups=self._offers(), unknown=most)
            load = await self._load()
            if any([self._resize(group, int(wanted.get(group, 0)), load) for group in self.limits]):
                self.cluster.scale(len(self.cluster.worker_spec))  # SpecCluster starts/retires workers to match
        except Exception:  # a closing client or cluster: the next step tries again
            logger.debug("nbfan: group autoscaling step failed", exc_info=True)
        finally:
            self._busy = False

    async def _load(self) -> dict[str, int]:
        load: dict[str, int] = await request_async(self.client, "demand.worker_load")
        return load

    def _resize(self, group: str, wanted: int, load: Mapping[str, int]) -> bool:
        """Add or remove `group`'s workers toward `wanted` (within its limits); whether it changed."""
        minimum, maximum = self.limits[group]
        target = max(minimum, min(maximum, wanted))
        members = self.members(group)
        if target >= len(members):
            self._surplus_since.pop(group, None)
        if target > len(members):
            for _ in range(target - len(members)):
                self.cluster.worker_spec.update(self._new_spec(group))
            self._said(f"start {target - len(members)} worker(s) of {self._label(group)}: {wanted} wanted")
            return True
        if target == len(members):
            return False
        since = self._surplus_since.setdefault(group, time.monotonic())
        if time.monotonic() - since < self.window:
            return False
        idle = [name for name in members if not load.get(str(name), 0)][:len(members) - target]
        for name in idle:
            del self.cluster.worker_spec[name]
        self._surplus_since.pop(group, None)
        if idle:
            stopped = ", ".join(map(str, idle))
            self._said(f"stop {stopped} of {self._label(group)}: not needed for the scale-down window")
        return bool(idle)

    def _new_spec(self, group: str) -> dict[Any, Any]:
        if group == DEFAULT_GROUP:
            return dict(self.cluster.new_worker_spec())
        return {f"{group}-{next(self._numbers)}": copy.deepcopy(dict(self.groups[group].spec))}

    @staticmethod
    def _label(group: str) -> str:
        return f"group {group}" if group != DEFAULT_GROUP else "the cluster's own workers"

    def _said(self, what: str) -> None:
        logger.info("nbfan: autoscale: %s", what)
        self.events = [*self.events, (time.time(), what)][-EVENTS_KEPT:]


def scale_by_group(cluster: Any, client: Any, groups: Mapping[str, WorkerGroup], own: AdaptiveLimits) -> GroupScaler:
    """Start a GroupScaler on `cluster` (checked: a SpecCluster-style manager not adapting already)."""
    if not hasattr(cluster, "worker_spec") or not callable(getattr(cluster, "new_worker_spec", None)):
        raise InvalidError(f"autoscale(groups=...) drives a SpecCluster-style manager (worker_spec, new_worker_spec: "
                           f"SpecCluster, LocalCluster, dask-jobqueue); {type(cluster).__name__} has none")
    if compat.is_adaptive(cluster):
        raise InvalidError("this cluster already adapts by itself (cluster.adapt()): stop that first (.stop() on what "
                           "adapt() returned), then autoscale it by group")
    for name, group in groups.items():
        if not isinstance(group, WorkerGroup) or not name or not isinstance(name, str):
            raise InvalidError(f"groups={{{name!r}: {group!r}}}: give names and nbfan.WorkerGroup(spec, maximum=N)")
    return GroupScaler(cluster, client, groups, own).start()
