"""Cluster-wide concurrency caps (`concurrency_limit=N`, alias `max_containers`).

How: each capped function gets its own worker resource, `nbfan-cap-<identity>`, whose N units a
scheduler plugin splits across the workers that can run the function; every task of the function
asks for 1 unit. Dask then never starts more than N of them at once, whichever client (or
detached spawn_map) submitted them, and tasks waiting for a unit wait in the scheduler/worker
queues, not in a worker thread. Shares move when workers join or leave (a restarted worker
joins again and gets its share back), so the cap stays exact and no unit sits on a dead worker.

Why not `distributed.Semaphore`: it caps too, but every waiting task blocks a worker thread
(threads the uncapped functions could use), and a lease held by a dead worker lingers ~40 s.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from typing import Any

from nbfan import compat

logger = logging.getLogger("nbfan.caps")

CAP_PREFIX = "nbfan-cap-"


def function_identity(app_name: str | None, name: str, module: str | None = None) -> str:
    """The same string in every process for the same function: `<app>.<qualified name>`
    (the defining module stands in for the app when the function has none)."""
    return f"{app_name or module or '__main__'}.{name}"


def cap_resource(identity: str) -> str:
    """The worker resource that carries a function's cap (visible in the dashboard)."""
    return CAP_PREFIX + re.sub(r"[^A-Za-z0-9_.:<>-]", "_", identity)


def worker_capacity(nthreads: int, resources: Mapping[str, float], requires: Mapping[str, float]) -> int:
    """How many tasks needing `requires` a worker can run at once (0: it cannot run them)."""
    capacity = max(int(nthreads), 0)
    for key, amount in requires.items():
        if amount > 0:
            capacity = min(capacity, int(resources.get(key, 0) // amount + 1e-9))
    return capacity


def allocate(
    limit: int, capacity: Mapping[str, int], current: Mapping[str, int], avoid: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Split `limit` units over the eligible workers (`capacity`: address -> useful slots).

    Keeps existing shares where it can (moving a unit away from a worker that may have tasks
    queued for it would strand them); units beyond a worker's slots move to workers with free
    slots; missing units go to the workers with the most free slots, those with a lower `avoid`
    score first (workers with GPUs a CPU function does not need). Sums to `limit` whenever a
    worker is eligible, so a cap smaller than the number of workers leaves some at 0."""
    avoid = avoid or {}
    order = sorted(capacity)
    if not order:
        return {}
    shares = {a: int(current.get(a, 0)) for a in order}
    total = sum(shares.values())

    def spare(a: str) -> int:
        return capacity[a] - shares[a]

    while total > limit:  # the cap went down: take surplus units first, then from the largest shares
        a = max(order, key=lambda a: (-spare(a), shares[a]))
        shares[a] -= 1
        total -= 1
    while True:  # units a worker cannot use go where there are free slots
        donor = min(order, key=spare)
        taker = max(order, key=lambda a: (spare(a) > 0, -avoid.get(a, 0), spare(a)))
        if spare(donor) >= 0 or spare(taker) <= 0:
            break
        shares[donor] -= 1
        shares[taker] += 1
    while total < limit:
        a = max(order, key=lambda a: (spare(a) > 0, -avoid.get(a, 0), spare(a), -shares[a]))
        shares[a] += 1
        total += 1
    return shares


class Caps:
    """Owns every function's cap on the scheduler and keeps the workers' shares in step (a part of
    `plugin.NbfanPlugin`: the `caps.set` and `caps.shares` requests)."""

    def __init__(self) -> None:
        self.caps: dict[str, tuple[int, dict[str, float]]] = {}  # resource -> (limit, requires)
        self.shares: dict[str, dict[str, int]] = {}  # resource -> worker address -> units
        self.scheduler: Any = None
        self._lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self, scheduler: Any) -> None:
        """Attached to the scheduler by the plugin."""
        self.scheduler = scheduler
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        """Stop rebalancing."""
        for task in list(self._tasks):
            task.cancel()

    def add_worker(self, scheduler: Any, worker: str) -> None:
        """A worker joined: rebalance the shares soon."""
        self._soon()

    def remove_worker(self, scheduler: Any, worker: str, **kwargs: Any) -> None:
        """A worker left: its units go elsewhere."""
        for shares in self.shares.values():
            shares.pop(worker, None)
        self._soon()

    def _soon(self) -> None:
        if not self.caps:
            return
        task = asyncio.ensure_future(self.rebalance())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def all_shares(self) -> dict[str, dict[str, int]]:
        """The `caps.shares` request: every cap's shares by worker address."""
        return {k: dict(v) for k, v in self.shares.items()}

    async def set_cap(self, name: str, limit: int, requires: Mapping[str, float]) -> dict[str, int]:
        """Register (or change) a cap; idempotent. Returns the shares by worker address."""
        self.caps[name] = (int(limit), {k: float(v) for k, v in requires.items() if not k.startswith(CAP_PREFIX)})
        await self.rebalance([name])
        return dict(self.shares.get(name, {}))

    async def rebalance(self, names: list[str] | None = None) -> None:
        assert self._lock is not None
        async with self._lock:
            for name in names or list(self.caps):
                try:
                    await self._rebalance_one(name)
                except Exception:  # one cap's trouble must not stop the others
                    logger.exception("nbfan: could not rebalance %s", name)

    async def _rebalance_one(self, name: str) -> None:
        limit, requires = self.caps[name]
        workers = self.scheduler.workers
        capacity = {
            addr: cap
            for addr, ws in workers.items()
            if (cap := worker_capacity(ws.nthreads, ws.resources, requires)) > 0
        }
        old = {a: n for a, n in self.shares.get(name, {}).items() if a in workers}
        avoid = {a: sum(1 for k in workers[a].resources if k not in requires and k.startswith("GPU")) for a in capacity}
        new = allocate(limit, capacity, old, avoid)
        for addr in old:  # workers no longer eligible lose their units
            new.setdefault(addr, 0)
        down = {a: n for a, n in new.items() if n < old.get(a, 0)}
        up = {a: n for a, n in new.items() if n > old.get(a, 0)}
        # Shrink before growing, so the sum of the shares never exceeds the cap.
        for addr, n in down.items():
            compat.set_worker_resource(self.scheduler, addr, name, n)
        await self._set_on_workers(name, down)
        done = await self._set_on_workers(name, up)
        for addr in done:
            compat.set_worker_resource(self.scheduler, addr, name, up[addr])
        # a worker that did not take its raise keeps what it had (it holds that much)
        self.shares[name] = {
            a: (n if a in done or a not in up else old.get(a, 0)) for a, n in new.items() if a in workers
        }
        compat.schedule_waiting_tasks(self.scheduler, done)
        self._move_stranded(name, [a for a, n in down.items() if n == 0])

    def _move_stranded(self, name: str, zeroed: list[str]) -> None:
        """Tasks already sent to a worker whose share went to 0 would wait there forever: move
        the ones not yet running to workers with a share."""
        targets = [a for a, n in sorted(self.shares.get(name, {}).items()) if n > 0]
        for addr in zeroed:
            compat.move_queued_tasks(self.scheduler, addr, targets, name)

    async def _set_on_workers(self, name: str, amounts: Mapping[str, int]) -> list[str]:
        """Tell each worker its new share; returns the addresses that took it."""
        if not amounts:
            return []
        results = await asyncio.gather(
            *(self._run_on_worker(addr, name, n) for addr, n in amounts.items()), return_exceptions=True
        )
        return [addr for addr, ok in zip(amounts, results, strict=True) if ok is True]

    async def _run_on_worker(self, addr: str, name: str, amount: int) -> bool:
        return await compat.run_on_worker(self.scheduler, addr, compat.set_worker_resource_on_worker, name, amount)
