"""Capacity that follows demand on the local cluster (`nbfan cluster up --adaptive`).

Dask's `Adaptive` (its public extension point: the scheduler's own estimate of the workers its
queued and running work needs, `Scheduler.adaptive_target`, or, when larger, nbfan's backlog of
unfinished inputs from the scheduler plugin's telemetry) drives the CPU workers between
`minimum` and `maximum`; the per-GPU workers stay (a GPU is not started on demand here); a CPU
worker is stopped once the estimate has not needed it for `scaledown_window` seconds (60 by
default, as Modal's). Each start and stop is written to the cluster's log, with why, and the
limits to its state file (`nbfan cluster status` shows both)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distributed.deploy.adaptive import Adaptive

from nbfan.exception import InvalidError

logger = logging.getLogger("nbfan.autoscale")
INTERVAL = 1.0  # seconds between decisions
GPU_PREFIX = "gpu-"  # the per-GPU workers' names (cluster/local.py): never stopped here
EVENTS_KEPT = 20


@dataclass(frozen=True)
class AdaptiveLimits:
    """How many CPU workers an adaptive local cluster may hold, and how long one may idle."""

    minimum: int = 0
    maximum: int = 0  # 0: one per core
    scaledown_window: float = 60.0

    def checked(self) -> AdaptiveLimits:
        """The limits with `maximum` filled in; InvalidError saying what is wrong."""
        maximum = self.maximum or max(1, os.cpu_count() or 1)
        for name, value in (("--min-workers", self.minimum), ("--max-workers", maximum)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidError(f"{name} {value!r}: give a whole number >= 0")
        if maximum < max(self.minimum, 1):
            raise InvalidError(f"--max-workers {maximum} is below --min-workers {self.minimum} (or 0): "
                               f"give a maximum of at least {max(self.minimum, 1)}")
        if isinstance(self.scaledown_window, bool) or not self.scaledown_window > 0:
            raise InvalidError(f"--scaledown-window {self.scaledown_window!r}: give seconds > 0")
        return AdaptiveLimits(self.minimum, maximum, float(self.scaledown_window))

    def describe(self) -> str:
        return (f"adaptive: {self.minimum} to {self.maximum} CPU workers, each stopped after "
                f"{self.scaledown_window:g}s unneeded")


class LocalAdaptive(Adaptive):
    """Dask's Adaptive that leaves the per-GPU workers alone and says why it scales (the last
    EVENTS_KEPT decisions, in `events_file` when set: `nbfan cluster status` reads them)."""

    events_file: Path | None = None

    async def target(self) -> int:
        """Dask's estimate, or nbfan's backlog when larger: a map keeps most of its inputs on its
        caller (a window sized for the slots there are), so the scheduler alone would not see
        that they wait; each unfinished input of a running call could use a worker (as Modal
        scales containers to the backlog)."""
        estimate = int(await super().target())  # type: ignore[no-untyped-call]
        plugin = getattr(getattr(self.cluster, "scheduler", None), "plugins", {}).get("nbfan")
        if plugin is None:
            return estimate
        backlog: int = plugin.demand.wanted(unknown=int(self.maximum))
        return max(estimate, backlog)

    async def workers_to_close(self, target: int) -> list[str]:
        names = await super().workers_to_close(target)
        return [name for name in names if not str(name).startswith(GPU_PREFIX)]

    async def scale_up(self, n: Any) -> None:  # distributed types it loosely (AdaptiveCore: Iterable)
        self._said(f"start workers: {n} wanted, for the work waiting for a slot")
        await super().scale_up(n)  # type: ignore[no-untyped-call]

    async def scale_down(self, workers: Any) -> None:
        if workers:
            self._said(f"stop {', '.join(sorted(map(str, workers)))}: not needed for the scale-down window")
        await super().scale_down(workers)

    def _said(self, what: str) -> None:
        logger.info("nbfan: adaptive: %s", what)
        if self.events_file is None:
            return
        try:
            events = json.loads(self.events_file.read_text()) if self.events_file.exists() else []
        except (OSError, ValueError):
            events = []
        events = [*events, [time.time(), what]][-EVENTS_KEPT:]
        with contextlib.suppress(OSError):
            self.events_file.write_text(json.dumps(events))


def recent_events(path: Path) -> list[tuple[float, str]]:
    """The autoscaler's last decisions (time, what), oldest first."""
    try:
        return [(float(t), str(what)) for t, what in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        return []


def adapt_arguments(limits: AdaptiveLimits, fixed_workers: int = 0) -> dict[str, Any]:
    """`cluster.adapt(...)`'s sizes and pace for `limits` (checked), on top of `fixed_workers`
    that are never stopped: a decision every INTERVAL, a worker stopped once unneeded for
    the scale-down window."""
    return {
        "minimum": fixed_workers + limits.minimum,
        "maximum": fixed_workers + limits.maximum,
        "interval": f"{INTERVAL}s",
        "wait_count": max(1, math.ceil(limits.scaledown_window / INTERVAL)),
    }


def adapt(cluster: Any, limits: AdaptiveLimits, n_gpus: int, events_file: Path | None = None) -> Any:
    """Start adapting `cluster` (a SpecCluster from `start_local_cluster`, with a CPU worker as
    its template) within `limits`; the Adaptive object."""
    LocalAdaptive.events_file = events_file
    return cluster.adapt(Adaptive=LocalAdaptive, **adapt_arguments(limits, n_gpus))
