"""How many workers nbfan's functions want now (a part of nbfan's plugin): the figure an
autoscaler sizes the cluster for (`nbfan cluster up --adaptive`, `nbfan.autoscale(cluster)`),
and each function's stats (`Function.get_current_stats()`).

- Every unfinished input of a running call wants a worker (Modal scales containers to the
  backlog); a call whose total is not known yet wants `unknown` (the autoscaler's maximum).
- A function with scaling knobs wants more: its `min_containers` at all times while they are
  set, `buffer_containers` beyond its backlog while it has unfinished inputs, and, for
  `scaledown_window` seconds after its last input finished, what it last wanted.
- Knobs come from callers (the `autoscaler.set` request, made at a function's first call in a
  process and by `Function.update_autoscaler`; held while that client stays connected, the
  latest wins) and from deployed apps (their record's "scaling", held while deployed).

With worker groups (`nbfan.autoscale(cluster, groups=...)`: a GPU group beside the CPU workers),
the demand is split by what each call's tasks ask of a worker (their Dask resources, seen as its
first tasks arrive): a call goes to the first group whose workers offer all of it, else to the
cluster's own workers (""). The groups that can be started are kept here too, so that placement
in any process can tell "no worker yet, but one will start" from "no worker can ever run this".

Pure bookkeeping over the call tracker: the autoscaler asks about once a second."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from nbfan.scheduler.tracker import CallTracker

Key = tuple[str, str]  # (app name, "" outside an App; function name)
Resources = dict[str, float]
CAP_PREFIX = "nbfan-cap-"  # the concurrency caps' resources (scheduler/caps.py): never a worker's offer
DEFAULT_GROUP = ""  # the cluster's own workers
Knobs = dict[str, Any]  # {"min_containers": int, "buffer_containers": int, "scaledown_window": float | None}


def knobs_of(min_containers: int = 0, buffer_containers: int = 0, scaledown_window: float | None = None) -> Knobs:
    return {"min_containers": max(0, int(min_containers)), "buffer_containers": max(0, int(buffer_containers)),
            "scaledown_window": None if scaledown_window is None else float(scaledown_window)}


class Demand:
    """The workers wanted, from the tracker's calls and the functions' knobs."""

    def __init__(self, tracker: CallTracker, deployed: Callable[[], Iterable[tuple[str, str, Knobs]]] = tuple,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.tracker = tracker
        self.deployed = deployed  # (app, function, knobs) of the deployed apps' current versions
        self.clock = clock
        self.set_by: dict[Key, dict[str, Knobs]] = {}  # function -> client id -> knobs, latest last
        self.last_busy: dict[Key, tuple[float, int]] = {}  # function -> (when, what it wanted) with inputs
        self.call_resources: dict[str, Resources] = {}  # running call -> what its tasks ask of a worker
        self.function_resources: dict[Key, Resources] = {}  # function -> what its last call asked
        self.startable: dict[str, Resources] | None = None  # group -> what its workers offer (None: not said)

    # -- requests and events -------------------------------------------------------------------

    def saw_call(self, call_id: str, resources: Resources) -> None:
        """A call's first tasks arrived, asking `resources` of a worker (caps left out)."""
        asked = {k: float(v) for k, v in resources.items() if not str(k).startswith(CAP_PREFIX)}
        if len(self.call_resources) > 2 * len(self.tracker.running) + 100:  # ended calls go (bounded)
            self.call_resources = {c: r for c, r in self.call_resources.items() if c in self.tracker.running}
        self.call_resources[call_id] = asked
        rec = self.tracker.get(call_id)
        if rec is not None:
            self.function_resources[(rec.app or "", rec.function)] = asked

    def set_startable(self, groups: dict[str, Resources] | None = None) -> None:
        """The `demand.startable` request: the groups an autoscaler can start, and what each offers."""
        self.startable = None if groups is None else {name: dict(offer) for name, offer in groups.items()}

    def set_knobs(self, app: str | None = None, function: str = "", holder: str = "", **knobs: Any) -> Knobs:
        """The `autoscaler.set` request: client `holder` sets `function`'s knobs (until it leaves)."""
        holders = self.set_by.setdefault((app or "", function), {})
        holders.pop(holder, None)  # the latest setting wins: it goes last
        holders[holder] = knobs_of(**knobs)
        return holders[holder]

    def stats(self, app: str | None = None, function: str = "",
              executing: Callable[[set[str]], tuple[int, int]] = lambda calls: (0, 0)) -> dict[str, Any]:
        """The `autoscaler.stats` request: `function`'s inputs waiting for a slot, inputs running
        and workers running them (`executing(call ids)`: both), and its knobs."""
        key = (app or "", function)
        calls = [rec for rec in self.tracker.running.values()  # a delivered outcome is finished for its caller
                 if rec.state == "running" and not rec.delivered and (rec.app or "", rec.function) == key]
        running, workers = executing({rec.call_id for rec in calls})
        unfinished = sum(max(0, rec.total - rec.finished) for rec in calls if rec.total is not None)
        return {"backlog": max(0, unfinished - running), "running": running, "workers": workers,
                "knobs": self.knobs().get(key)}

    def client_gone(self, client: str) -> None:
        """A client left: the knobs it set go (a deployed app's stay)."""
        for key in list(self.set_by):
            self.set_by[key].pop(client, None)
            if not self.set_by[key]:
                del self.set_by[key]

    # -- the figure -----------------------------------------------------------------------------

    def knobs(self) -> dict[Key, Knobs]:
        """Each function's knobs in effect: a caller's latest, else its deployed app's."""
        found = {(app or "", function): knobs_of(**knobs) for app, function, knobs in self.deployed()}
        found.update({key: list(holders.values())[-1] for key, holders in self.set_by.items()})
        return found

    def wanted(self, unknown: int = 0) -> int:
        """The workers wanted now (`unknown`: what a call whose total is not known yet wants)."""
        return sum(self.wanted_by_group({}, unknown).values())

    def wanted_by_group(self, groups: dict[str, Resources] | None = None, unknown: int = 0) -> dict[str, int]:
        """The `demand.groups` request: `wanted`, split among `groups` (name -> what its workers
        offer) and the cluster's own workers (DEFAULT_GROUP)."""
        groups = groups or {}
        self.call_resources = {c: r for c, r in self.call_resources.items() if c in self.tracker.running}
        backlog: dict[Key, int] = {}
        group_of: dict[Key, str] = {}
        for rec in self.tracker.running.values():
            if rec.state == "running":
                key = (rec.app or "", rec.function)
                unfinished = unknown if rec.total is None else max(0, rec.total - rec.finished)
                backlog[key] = backlog.get(key, 0) + unfinished
                group_of[key] = _group_for(self.call_resources.get(rec.call_id, {}), groups)
        knobs = self.knobs()
        wanted = dict.fromkeys([DEFAULT_GROUP, *groups], 0)
        for key in set(backlog) | set(knobs):
            group = group_of[key] if key in group_of else _group_for(self.function_resources.get(key, {}), groups)
            wanted[group] += self._wanted_by(key, backlog.get(key, 0), knobs.get(key))
        return wanted

    def _wanted_by(self, key: Key, backlog: int, knobs: Knobs | None) -> int:
        if knobs is None:
            return backlog
        now = self.clock()
        busy = backlog + knobs["buffer_containers"] if backlog else 0
        if busy:
            self.last_busy[key] = (now, busy)
        elif key in self.last_busy:
            when, last = self.last_busy[key]
            if now - when < (knobs["scaledown_window"] or 0):
                busy = last
            else:
                del self.last_busy[key]
        return max(int(knobs["min_containers"]), busy)


def _group_for(asked: Resources, groups: dict[str, Resources]) -> str:
    """The first group whose workers offer all of `asked`; the cluster's own workers for a call
    that asks nothing special (or that no group fits)."""
    if not asked:
        return DEFAULT_GROUP
    for name, offer in groups.items():
        if all(offer.get(resource, 0) >= amount for resource, amount in asked.items()):
            return name
    return DEFAULT_GROUP
