"""Named state kept on the Dask scheduler: the contents of `nbfan.Dict`s and `nbfan.Queue`s
(deployed apps: apps.py).

Why the scheduler: every client and every worker already talks to it, it outlives the processes
that wrote to it, and it runs its handlers one at a time on one event loop, so each operation
(a read-modify-write such as `put(skip_if_exists=True)` or `pop`) is atomic under any number of
concurrent writers. Values travel as cloudpickle blobs the scheduler never unpickles.

A part of nbfan's scheduler plugin (plugin.py); every change is also recorded in the journal
(journal.py: `("store", ...)` records, replayed by `replay`) when the cluster has one, so the
state outlives the scheduler too.

Lifetimes, as Modal's: a Dict entry expires `DICT_ENTRY_TTL` (7 days) after it was last read or
written; a Queue partition is cleared `partition_ttl` seconds (24 h by default) after its last
put. Reads are not journaled: after a restart, every Dict entry counts as used at that moment
(it can only live longer, never shorter); a partition keeps the time of its last put.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from typing import Any

from nbfan.scheduler.journal import NoJournal, Record

DICT_OP = "dict"
QUEUE_OP = "queue"
DICT_ENTRY_TTL = 7 * 24 * 3600.0  # seconds without a read or write before a Dict entry expires
QUEUE_PARTITION_TTL = 24 * 3600.0  # seconds after its last put before a Queue partition is cleared
DICT_SWEEP_INTERVAL = 60.0  # how often Dict entries are checked (partitions: at every sweep)


class Store:
    """Scheduler-side state of Dicts and Queues (a part of `plugin.NbfanPlugin`: the `dict` and
    `queue` requests). Every operation returns a dict."""

    def __init__(self) -> None:
        self.scheduler: Any = None
        self.dicts: dict[str, dict[bytes, tuple[bytes, bytes]]] = {}  # name -> key blob -> (key, value)
        self.queues: dict[str, dict[Any, deque[bytes]]] = {}  # name -> partition -> items
        self.conditions: dict[str, asyncio.Condition] = {}
        self.journal: Any = NoJournal()  # the plugin sets the cluster's journal, if it has one
        self.clock = time.time
        self.dict_used: dict[str, dict[bytes, float]] = {}  # name -> key blob -> last read or write
        self.partition_life: dict[str, dict[Any, tuple[float, float]]] = {}  # name -> partition -> (last put, ttl)
        self.popped: dict[str, dict[Any, int]] = {}  # name -> partition -> items taken so far (peek cursors)
        self._dicts_swept = 0.0

    async def start(self, scheduler: Any) -> None:
        """Attached to the scheduler by the plugin."""
        self.scheduler = scheduler

    # -- Dict -------------------------------------------------------------------------------

    def dict_op(self, name: str, action: str, key: bytes | None = None, value: bytes | None = None,
                items: list[tuple[bytes, bytes]] | None = None, skip_if_exists: bool = False) -> dict[str, Any]:
        """The `dict` request: one action on the Dict `name` (list/create/delete act on names)."""
        if action in ("list", "create", "delete"):
            reply = _name_action(self.dicts, name, action, dict)
            if action == "delete":
                self.dict_used.pop(name, None)
            if action != "list":
                self.journal.append(("store", "dict", name, action))
            return reply
        store = self.dicts.get(name)
        if store is None:
            return {"ok": False, "missing": True}
        act = _DICT_ACTIONS.get(action)
        if act is None:
            return {"ok": False, "error": f"unknown dict action {action!r}"}
        reply = {"ok": True, **act(store, key, value, items or [], skip_if_exists)}
        self._touch(name, action, key, items)
        if action in _DICT_CHANGES and reply.get("written", True) and reply.get("found", True):
            self.journal.append(("store", "dict", name, action, key, value, items, skip_if_exists))
        return reply

    def _touch(self, name: str, action: str, key: bytes | None, items: list[tuple[bytes, bytes]] | None) -> None:
        """Record a use of the entries an action read or wrote (for their expiry)."""
        entries, used, now = self.dicts.get(name, {}), self.dict_used.setdefault(name, {}), self.clock()
        if action in ("clear", "items"):
            used.clear()
            used.update(dict.fromkeys(entries, now))
        elif action == "update":
            used.update((k, now) for k, _v in items or ())
        elif key is not None:
            if key in entries:
                used[key] = now
            else:
                used.pop(key, None)

    # -- Queue ------------------------------------------------------------------------------

    def _condition(self, name: str) -> asyncio.Condition:
        cond = self.conditions.get(name)
        if cond is None:
            cond = self.conditions[name] = asyncio.Condition()
        return cond

    async def queue_op(  # noqa: PLR0911  (a branch per action)
        self, comm: Any = None, name: str = "", action: str = "", partition: Any = None,
        values: list[bytes] | None = None, n: int = 1, block: bool = True, timeout: float | None = None,
        total: bool = False, partition_ttl: float | None = None, cursor: int | None = None,
    ) -> dict[str, Any]:
        """The `queue` request: one action on the Queue `name` (`get` may wait, here on the
        scheduler, for an item to arrive; `peek` reads from `cursor` on without taking, as
        Modal's `iterate`)."""
        if action in ("list", "create", "delete"):
            if action != "list":
                self.journal.append(("store", "queue", name, action))
            return await self._queue_names(name, action)
        parts = self.queues.get(name)
        if parts is None:
            return {"ok": False, "missing": True}
        if action == "put":
            parts.setdefault(partition, deque()).extend(values or ())
            life = (self.clock(), QUEUE_PARTITION_TTL if partition_ttl is None else float(partition_ttl))
            self.partition_life.setdefault(name, {})[partition] = life
            self.journal.append(("store", "queue", name, "put", partition, values or [], *life))
            cond = self._condition(name)
            async with cond:
                cond.notify_all()
            return {"ok": True}
        if action in ("get", "peek"):
            return await self._get(name, parts, partition, n, block, timeout, comm,
                                   cursor=(cursor or 0) if action == "peek" else None)
        if action == "len":
            size = sum(len(q) for q in parts.values()) if total else len(parts.get(partition, ()))
            return {"ok": True, "len": size}
        if action == "clear":
            gone = self.popped.setdefault(name, {})
            for cleared in list(parts) if total else [partition]:
                gone[cleared] = gone.get(cleared, 0) + len(parts.get(cleared, ()))
            _queue_clear(parts, partition, total)
            _queue_clear(self.partition_life.get(name, {}), partition, total)
            self.journal.append(("store", "queue", name, "clear", partition, total))
            return {"ok": True}
        return {"ok": False, "error": f"unknown queue action {action!r}"}

    async def _queue_names(self, name: str, action: str) -> dict[str, Any]:
        reply = _name_action(self.queues, name, action, dict)
        if action != "delete":
            return reply
        self.partition_life.pop(name, None)
        self.popped.pop(name, None)
        cond = self.conditions.pop(name, None)
        if cond is not None:
            async with cond:
                cond.notify_all()  # blocked getters wake up and see the queue is gone
        return reply

    async def _get(self, name: str, parts: dict[Any, deque[bytes]], partition: Any, n: int, block: bool,
                   timeout: float | None, comm: Any = None, cursor: int | None = None) -> dict[str, Any]:
        """Up to `n` items, taken; or, from `cursor` on (items ever put in the partition, counted
        from its first), read and left in place, with the cursor after them."""
        deadline = None if timeout is None else time.monotonic() + timeout
        cond = self._condition(name)
        while True:
            if self.queues.get(name) is not parts:
                return {"ok": False, "missing": True}
            if comm is not None and comm.closed():  # the getter gave up (Ctrl-C): take nothing
                return {"ok": True, "values": []}
            items = parts.get(partition)
            head = self.popped.get(name, {}).get(partition, 0)  # items taken from the partition so far
            if cursor is not None:  # peek: read without taking
                start = max(0, cursor - head)
                if items and start < len(items):
                    seen = list(itertools.islice(items, start, start + n))
                    return {"ok": True, "values": seen, "cursor": head + start + len(seen)}
            elif items:
                taken = min(n, len(items))
                self.popped.setdefault(name, {})[partition] = head + taken
                self.journal.append(("store", "queue", name, "pop", partition, taken))
                return {"ok": True, "values": [items.popleft() for _ in range(taken)]}
            remaining = None if deadline is None else deadline - time.monotonic()
            if not block or (remaining is not None and remaining <= 0):
                return {"ok": True, "values": [], **({} if cursor is None else {"cursor": max(cursor, head)})}
            async with cond:
                try:
                    # wake at least every 5 s to notice a getter that went away
                    await asyncio.wait_for(cond.wait(), 5.0 if remaining is None else min(remaining, 5.0))
                except asyncio.TimeoutError:
                    pass

    # -- the journal ------------------------------------------------------------------------

    def replay(self, record: Record) -> None:
        """Apply one journal record (as written above) to the state: on the plugin's start."""
        _store, kind, name, *rest = record
        if kind == "dict":
            self._replay_dict(name, rest)
        elif rest[0] in ("create", "delete"):
            _name_action(self.queues, name, rest[0], dict)
            if rest[0] == "delete":
                self.partition_life.pop(name, None)
        elif name in self.queues:
            if rest[0] == "put":
                self.partition_life.setdefault(name, {})[rest[1]] = (rest[3], rest[4])
            elif rest[0] == "clear":
                _queue_clear(self.partition_life.get(name, {}), rest[1], rest[2])
            self._replay_queue(self.queues[name], *rest[:3])

    def _replay_dict(self, name: str, rest: list[Any]) -> None:
        if rest[0] in ("create", "delete"):
            _name_action(self.dicts, name, rest[0], dict)
            if rest[0] == "delete":
                self.dict_used.pop(name, None)
        elif rest[0] == "expire" and name in self.dicts:
            for key in rest[3]:
                self.dicts[name].pop(key, None)
                self.dict_used.get(name, {}).pop(key, None)
        elif name in self.dicts:
            action, key, value, items, skip_if_exists = rest
            _DICT_ACTIONS[action](self.dicts[name], key, value, items or [], skip_if_exists)
            self._touch(name, action, key, items)  # read back now: a restart counts as a use

    @staticmethod
    def _replay_queue(parts: dict[Any, deque[bytes]], action: str, partition: Any, arg: Any) -> None:
        if action == "put":
            parts.setdefault(partition, deque()).extend(arg)
        elif action == "pop":
            items = parts.get(partition)
            for _ in range(min(arg, len(items or ()))):
                items.popleft()  # type: ignore[union-attr]
        elif action == "clear":
            _queue_clear(parts, partition, arg)

    def snapshot(self) -> list[Record]:
        """Records that rebuild the whole state (for the journal's compaction)."""
        records: list[Record] = []
        for name, entries in self.dicts.items():
            records.append(("store", "dict", name, "create"))
            if entries:
                records.append(("store", "dict", name, "update", None, None, list(entries.values()), False))
        for name, parts in self.queues.items():
            records.append(("store", "queue", name, "create"))
            lives = self.partition_life.get(name, {})
            records.extend(("store", "queue", name, "put", partition, list(items),
                            *lives.get(partition, (self.clock(), QUEUE_PARTITION_TTL)))
                           for partition, items in parts.items() if items)
        return records

    # -- lifetimes ------------------------------------------------------------------------

    def expire(self) -> None:
        """Drop what outlived its lifetime (called every second by the plugin's sweep): Queue
        partitions past their last put's TTL; Dict entries unused for `DICT_ENTRY_TTL`, checked
        once every `DICT_SWEEP_INTERVAL`."""
        now = self.clock()
        for name, lives in self.partition_life.items():
            parts = self.queues.get(name)
            for partition in [p for p, (put, ttl) in lives.items() if now >= put + ttl]:
                del lives[partition]
                removed = parts.pop(partition, None) if parts is not None else None
                if removed is not None:
                    gone = self.popped.setdefault(name, {})
                    gone[partition] = gone.get(partition, 0) + len(removed)
                    self.journal.append(("store", "queue", name, "clear", partition, False))
        if now - self._dicts_swept < DICT_SWEEP_INTERVAL:
            return
        self._dicts_swept = now
        for name, used in self.dict_used.items():
            entries = self.dicts.get(name)
            old = [key for key, last in used.items() if now - last >= DICT_ENTRY_TTL]
            if not old:
                continue
            for key in old:
                del used[key]
                if entries is not None:
                    entries.pop(key, None)
            self.journal.append(("store", "dict", name, "expire", None, None, old, False))


def _queue_clear(parts: dict[Any, Any], partition: Any, total: bool) -> None:
    if total:
        parts.clear()
    else:
        parts.pop(partition, None)


def _name_action(objects: dict[str, Any], name: str, action: str, empty: Any) -> dict[str, Any]:
    """list, create or delete a named object of one kind."""
    if action == "list":
        return {"ok": True, "names": sorted(objects)}
    if action == "create":
        created = name not in objects
        objects.setdefault(name, empty())
        return {"ok": True, "created": created}
    return {"ok": True, "found": objects.pop(name, None) is not None}


# -- one Dict's actions: (entries, key, value, items, skip_if_exists) -> reply fields ------------

Entries = dict[bytes, tuple[bytes, bytes]]


def _dict_get(store: Entries, key: Any, *_: Any) -> dict[str, Any]:
    hit = store.get(key)
    return {"found": hit is not None, "value": hit[1] if hit else None}


def _dict_put(store: Entries, key: Any, value: Any, _items: Any, skip_if_exists: bool) -> dict[str, Any]:
    if skip_if_exists and key in store:
        return {"written": False}
    store[key] = (key, value)
    return {"written": True}


def _dict_pop(store: Entries, key: Any, *_: Any) -> dict[str, Any]:
    hit = store.pop(key, None)
    return {"found": hit is not None, "value": hit[1] if hit else None}


def _dict_update(store: Entries, _key: Any, _value: Any, items: list[tuple[bytes, bytes]], *_: Any) -> dict[str, Any]:
    for k, v in items:
        store[k] = (k, v)
    return {}


def _dict_clear(store: Entries, *_: Any) -> dict[str, Any]:
    store.clear()
    return {}


_DICT_CHANGES = ("put", "pop", "update", "clear")  # the actions the journal records

_DICT_ACTIONS: dict[str, Any] = {
    "get": _dict_get,
    "put": _dict_put,
    "pop": _dict_pop,
    "update": _dict_update,
    "contains": lambda store, key, *_: {"found": key in store},
    "len": lambda store, *_: {"len": len(store)},
    "items": lambda store, *_: {"items": list(store.values())},
    "clear": _dict_clear,
}
