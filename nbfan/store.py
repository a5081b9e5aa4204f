"""Named state kept on the Dask scheduler: the contents of `nbfan.Dict`s and `nbfan.Queue`s and
the apps `nbfan deploy` registered.

Why the scheduler: every client and every worker already talks to it, it outlives the processes
that wrote to it, and it runs its handlers one at a time on one event loop, so each operation
(a read-modify-write such as `put(skip_if_exists=True)` or `pop`) is atomic under any number of
concurrent writers. Values travel as cloudpickle blobs the scheduler never unpickles.

The handlers are installed from the client (`client.run_on_scheduler`), idempotently, the way
distributed's own Queue/Variable extensions register theirs; any cluster with nbfan importable
on the scheduler works. State lives as long as the scheduler does.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

EXTENSION = "nbfan_store"
DICT_OP = "nbfan_dict"
QUEUE_OP = "nbfan_queue"
APPS_OP = "nbfan_apps"


class StoreExtension:
    """Scheduler-side state. Every handler returns a dict (a missing handler answers None)."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.dicts: dict[str, dict[bytes, tuple[bytes, bytes]]] = {}  # name -> key blob -> (key, value)
        self.queues: dict[str, dict[Any, deque[bytes]]] = {}  # name -> partition -> items
        self.conditions: dict[str, asyncio.Condition] = {}
        self.apps: dict[str, dict[str, Any]] = {}  # app name -> {"functions": {name: blob}, ...}

    def install(self) -> None:
        self.scheduler.handlers[DICT_OP] = self.dict_op
        self.scheduler.handlers[QUEUE_OP] = self.queue_op
        self.scheduler.handlers[APPS_OP] = self.apps_op

    # -- Dict -------------------------------------------------------------------------------

    def dict_op(self, name: str, action: str, key: bytes | None = None, value: bytes | None = None,
                items: list[tuple[bytes, bytes]] | None = None, skip_if_exists: bool = False) -> dict[str, Any]:
        if action == "list":
            return {"ok": True, "names": sorted(self.dicts)}
        if action == "create":
            created = name not in self.dicts
            self.dicts.setdefault(name, {})
            return {"ok": True, "created": created}
        if action == "delete":
            return {"ok": True, "found": self.dicts.pop(name, None) is not None}
        store = self.dicts.get(name)
        if store is None:
            return {"ok": False, "missing": True}
        if action == "get":
            hit = store.get(key)  # type: ignore[arg-type]
            return {"ok": True, "found": hit is not None, "value": hit[1] if hit else None}
        if action == "put":
            if skip_if_exists and key in store:
                return {"ok": True, "written": False}
            store[key] = (key, value)  # type: ignore[index,assignment]
            return {"ok": True, "written": True}
        if action == "pop":
            hit = store.pop(key, None)  # type: ignore[arg-type]
            return {"ok": True, "found": hit is not None, "value": hit[1] if hit else None}
        if action == "update":
            for k, v in items or ():
                store[k] = (k, v)
            return {"ok": True}
        if action == "contains":
            return {"ok": True, "found": key in store}
        if action == "len":
            return {"ok": True, "len": len(store)}
        if action == "items":
            return {"ok": True, "items": list(store.values())}
        if action == "clear":
            store.clear()
            return {"ok": True}
        return {"ok": False, "error": f"unknown dict action {action!r}"}

    # -- Queue ------------------------------------------------------------------------------

    def _condition(self, name: str) -> asyncio.Condition:
        cond = self.conditions.get(name)
        if cond is None:
            cond = self.conditions[name] = asyncio.Condition()
        return cond

    async def queue_op(self, comm: Any = None, name: str = "", action: str = "", partition: Any = None,
                       values: list[bytes] | None = None, n: int = 1, block: bool = True, timeout: float | None = None,
                       total: bool = False) -> dict[str, Any]:
        if action == "list":
            return {"ok": True, "names": sorted(self.queues)}
        if action == "create":
            created = name not in self.queues
            self.queues.setdefault(name, {})
            return {"ok": True, "created": created}
        if action == "delete":
            found = self.queues.pop(name, None) is not None
            cond = self.conditions.pop(name, None)
            if cond is not None:
                async with cond:
                    cond.notify_all()  # blocked getters wake up and see the queue is gone
            return {"ok": True, "found": found}
        parts = self.queues.get(name)
        if parts is None:
            return {"ok": False, "missing": True}
        if action == "put":
            parts.setdefault(partition, deque()).extend(values or ())
            cond = self._condition(name)
            async with cond:
                cond.notify_all()
            return {"ok": True}
        if action == "get":
            return await self._get(name, parts, partition, n, block, timeout, comm)
        if action == "len":
            size = sum(len(q) for q in parts.values()) if total else len(parts.get(partition, ()))
            return {"ok": True, "len": size}
        if action == "clear":
            if total:
                parts.clear()
            else:
                parts.pop(partition, None)
            return {"ok": True}
        return {"ok": False, "error": f"unknown queue action {action!r}"}

    async def _get(self, name: str, parts: dict[Any, deque[bytes]], partition: Any, n: int, block: bool,
                   timeout: float | None, comm: Any = None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        cond = self._condition(name)
        while True:
            if self.queues.get(name) is not parts:
                return {"ok": False, "missing": True}
            if comm is not None and comm.closed():  # the getter gave up (Ctrl-C): take nothing
                return {"ok": True, "values": []}
            items = parts.get(partition)
            if items:
                return {"ok": True, "values": [items.popleft() for _ in range(min(n, len(items)))]}
            remaining = None if deadline is None else deadline - time.monotonic()
            if not block or (remaining is not None and remaining <= 0):
                return {"ok": True, "values": []}
            async with cond:
                try:
                    # wake at least every 5 s to notice a getter that went away
                    await asyncio.wait_for(cond.wait(), 5.0 if remaining is None else min(remaining, 5.0))
                except asyncio.TimeoutError:
                    pass

    # -- deployed apps --------------------------------------------------------------------

    def apps_op(self, action: str, name: str | None = None, record: dict[str, Any] | None = None) -> dict[str, Any]:
        if action == "deploy":
            replaced = name in self.apps
            self.apps[name] = {**(record or {}), "deployed": time.time()}  # type: ignore[index]
            return {"ok": True, "replaced": replaced}
        if action == "list":
            return {"ok": True, "apps": {
                n: {k: v for k, v in rec.items() if k != "functions"} | {"functions": sorted(rec["functions"])}
                for n, rec in self.apps.items()
            }}
        if action == "get":
            return {"ok": True, "app": self.apps.get(name)}  # type: ignore[arg-type]
        if action == "stop":
            return {"ok": True, "found": self.apps.pop(name, None) is not None}  # type: ignore[arg-type]
        return {"ok": False, "error": f"unknown apps action {action!r}"}


def install_store(dask_scheduler: Any = None) -> bool:
    """Run on the scheduler: create the extension once and (re)register its handlers."""
    ext = dask_scheduler.extensions.get(EXTENSION)
    if ext is None:
        ext = dask_scheduler.extensions[EXTENSION] = StoreExtension(dask_scheduler)
    ext.install()
    return True


_installed: set[str] = set()


def store_call(client: Any, op: str, **kwargs: Any) -> dict[str, Any]:
    """One request to the scheduler's store, installing the handlers on first use (and again
    after a scheduler restart, which answers None for an unknown handler)."""
    from .exception import ExecutionError

    address = client.scheduler.address
    for _attempt in range(2):
        if address not in _installed:
            client.run_on_scheduler(install_store)
            _installed.add(address)
        reply = client.sync(getattr(client.scheduler, op), **kwargs)
        if isinstance(reply, dict):
            if not reply.get("ok") and "error" in reply:
                raise ExecutionError(f"nbfan store on {address}: {reply['error']}")
            return reply
        _installed.discard(address)
    raise ExecutionError(f"the scheduler at {address} did not answer nbfan's {op} request (is nbfan installed there?)")


def current_client() -> Any:
    """The Dask client to use here: the worker's own client inside a task, else nbfan's."""
    try:
        from distributed import get_worker

        get_worker()
    except ValueError:
        from .cluster import get_client

        return get_client()
    from distributed import get_client as worker_client

    return worker_client()
