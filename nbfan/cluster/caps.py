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
import threading
import time
from typing import Any, Mapping

from distributed.diagnostics.plugin import SchedulerPlugin
from distributed.protocol.pickle import dumps

logger = logging.getLogger("nbfan.caps")

CAP_PREFIX = "nbfan-cap-"
PLUGIN_NAME = "nbfan-caps"


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


def _set_worker_resource(name: str, amount: int, dask_worker: Any = None) -> None:
    """Runs on a worker (its event loop): set one resource's total, keeping what running tasks
    hold, then let the worker start tasks that were waiting for it."""
    from distributed.worker_state_machine import UnpauseEvent

    state = dask_worker.state
    old = state.total_resources.get(name, 0)
    state.available_resources[name] = state.available_resources.get(name, 0) + amount - old
    state.total_resources[name] = amount
    if state.running:  # an unpause of a running worker only re-checks its ready/constrained tasks
        dask_worker.handle_stimulus(UnpauseEvent(stimulus_id=f"nbfan-cap-{time.time()}"))


class CapsPlugin(SchedulerPlugin):
    """Owns every function's cap on the scheduler and keeps the workers' shares in step."""

    name = PLUGIN_NAME

    def __init__(self) -> None:
        self.caps: dict[str, tuple[int, dict[str, float]]] = {}  # resource -> (limit, requires)
        self.shares: dict[str, dict[str, int]] = {}  # resource -> worker address -> units
        self.scheduler: Any = None
        self._lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def add_worker(self, scheduler: Any, worker: str) -> None:
        self._soon()

    def remove_worker(self, scheduler: Any, worker: str, **kwargs: Any) -> None:
        for shares in self.shares.values():
            shares.pop(worker, None)
        self._soon()

    def _soon(self) -> None:
        if not self.caps:
            return
        task = asyncio.ensure_future(self.rebalance())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
            self._set_on_scheduler(addr, name, n)
        await self._set_on_workers(name, down)
        done = await self._set_on_workers(name, up)
        kick: dict[Any, Any] = {}
        for addr in done:
            self._set_on_scheduler(addr, name, up[addr])
            ws = workers.get(addr)
            if ws is not None:
                kick.update(self.scheduler.bulk_schedule_unrunnable_after_adding_worker(ws))
        # a worker that did not take its raise keeps what it had (it holds that much)
        self.shares[name] = {a: (n if a in done or a not in up else old.get(a, 0)) for a, n in new.items() if a in workers}
        if kick:
            self.scheduler.transitions(kick, stimulus_id=f"nbfan-cap-{time.time()}")
        self._move_stranded(name, [a for a, n in down.items() if n == 0])

    def _move_stranded(self, name: str, zeroed: list[str]) -> None:
        """Tasks already sent to a worker whose share went to 0 would wait there forever: move
        the ones not yet running to workers with a share (Dask's safe steal handshake)."""
        stealing = self.scheduler.extensions.get("stealing")
        workers = self.scheduler.workers
        targets = [workers[a] for a, n in sorted(self.shares.get(name, {}).items()) if n > 0 and a in workers]
        if stealing is None or not targets or not zeroed:
            return
        i = 0
        for addr in zeroed:
            victim = workers.get(addr)
            for ts in list(victim.processing if victim is not None else ()):
                if name in (ts.resource_restrictions or {}) and ts not in stealing.in_flight:
                    stealing.move_task_request(ts, victim, targets[i % len(targets)])
                    i += 1

    def _set_on_scheduler(self, addr: str, name: str, amount: int) -> None:
        """The scheduler's record of one resource of one worker. Not `Scheduler.add_resources`:
        it zeroes the worker's used resources, all of them, while its tasks still hold them
        (checked on distributed 2026.8.0), and the scheduler then over-assigns."""
        ws = self.scheduler.workers.get(addr)
        if ws is None:
            return
        ws.resources[name] = amount
        ws.used_resources.setdefault(name, 0)
        self.scheduler.resources.setdefault(name, {})[addr] = amount

    async def _set_on_workers(self, name: str, amounts: Mapping[str, int]) -> list[str]:
        """Tell each worker its new share; returns the addresses that took it."""
        if not amounts:
            return []
        results = await asyncio.gather(
            *(self._run_on_worker(addr, name, n) for addr, n in amounts.items()), return_exceptions=True
        )
        return [addr for addr, ok in zip(amounts, results) if ok is True]

    async def _run_on_worker(self, addr: str, name: str, amount: int) -> bool:
        msg = {"op": "run", "function": dumps(_set_worker_resource), "args": dumps((name, amount)), "wait": True}
        out = await self.scheduler.broadcast(msg=msg, workers=[addr], on_error="return")
        reply = out.get(addr)
        return isinstance(reply, dict) and reply.get("status") == "OK"


async def _register_cap(name: str, limit: int, requires: dict[str, float], dask_scheduler: Any = None) -> dict[str, int]:
    """Runs on the scheduler: install the plugin once, then set the cap."""
    plugin = dask_scheduler.plugins.get(PLUGIN_NAME)
    if plugin is None:
        await dask_scheduler.register_scheduler_plugin(CapsPlugin(), name=PLUGIN_NAME, idempotent=True)
        plugin = dask_scheduler.plugins[PLUGIN_NAME]
    return await plugin.set_cap(name, limit, requires)


def _shares_on_scheduler(dask_scheduler: Any = None) -> dict[str, dict[str, int]]:
    plugin = dask_scheduler.plugins.get(PLUGIN_NAME)
    return {k: dict(v) for k, v in plugin.shares.items()} if plugin is not None else {}


_registered: set[tuple[Any, ...]] = set()
_registered_lock = threading.Lock()


def ensure_cap(client: Any, scheduler_id: str, name: str, limit: int, requires: Mapping[str, float]) -> None:
    """Make sure the cluster enforces `limit` for resource `name` (one round trip per process
    per scheduler and cap; later calls are free)."""
    key = (scheduler_id, name, int(limit), tuple(sorted(requires.items())))
    with _registered_lock:
        if key in _registered:
            return
    try:
        client.run_on_scheduler(_register_cap, name, int(limit), dict(requires))
    except ImportError as exc:
        from ..exception import ExecutionError

        raise ExecutionError(
            f"concurrency_limit needs nbfan installed where the Dask scheduler runs (it keeps the cap): {exc}"
        ) from None
    with _registered_lock:
        _registered.add(key)


def cap_shares(client: Any) -> dict[str, dict[str, int]]:
    """Every cap's current shares by worker address (for `nbfan cluster status` and tests)."""
    return client.run_on_scheduler(_shares_on_scheduler)
