"""How long a spawned call's result stays on the cluster, whoever spawned it (a caller, a task
on a worker, a coordinator): until it has been read and `keep_for` seconds have passed, or the
cluster stops. Unread results are kept too, up to `max_unread` results and `max_bytes` bytes;
past that the oldest unread ones are dropped first, and a late `FunctionCall.from_id` says so.

How: `.spawn()` sends a `hold` event on the spawner's own stream, in order after the task
itself (so it cannot be missed even when the spawner exits at once); this part of nbfan's
plugin (plugin.py) then holds the task's key for the pseudo-client `nbfan-retained`, and lets
go of it when the policy says so; Dask then forgets the result like any other.

A small outcome (worker/push.py pushes it to the caller through the scheduler) is kept here
instead, and the task's key let go as soon as the task has finished: a result held on a worker
would keep that worker from being retired (an autoscaled cluster could never shrink below it)
and would be computed again if the worker died."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from nbfan import compat
from nbfan.keys import parse_task_key

HOLDER = "nbfan-retained"
KEEP_FOR = 600.0  # seconds a result stays after it was read
MAX_UNREAD = 10_000  # unread results kept at most (the oldest go first)
MAX_BYTES = 4 * 2**30  # bytes of unread results kept at most (as Dask measures them)
MAX_TOMBSTONES = 20_000


@dataclass
class Held:
    """One spawned call's result the cluster keeps for re-attaching."""

    key: Any
    since: float
    nbytes: int = 0
    read_at: float | None = None
    blob: bytes | None = None  # the outcome pushed to the caller, kept here: the key is let go
    key_held: bool = True  # whether HOLDER still holds the task's key


class Retention:
    """The results of spawned calls, kept by call id (a part of `plugin.NbfanPlugin`)."""

    def __init__(self) -> None:
        self.scheduler: Any = None
        self.held: OrderedDict[str, Held] = OrderedDict()  # call id -> held result, oldest first
        self.reads: OrderedDict[str, float] = OrderedDict()  # held and read: call id -> when, in read order
        self.unread_count = 0  # counted as they change: the caps cost nothing per spawn
        self.unread_bytes = 0
        self.dropped: OrderedDict[str, str] = OrderedDict()  # call id -> why its result is gone
        self.keep_for = KEEP_FOR
        self.max_unread = MAX_UNREAD
        self.max_bytes = MAX_BYTES

    async def start(self, scheduler: Any) -> None:
        """Attached to the scheduler by the plugin."""
        self.scheduler = scheduler

    def only_kept_here(self, keys: set[str]) -> bool:
        """Whether the results named are held for re-attaching and wanted by no client."""
        for key in keys:
            parsed = parse_task_key(key)
            held = self.held.get(parsed[0]) if parsed is not None else None
            if held is None or held.key != key or not held.key_held \
                    or compat.clients_wanting(self.scheduler, key) - {HOLDER}:
                return False
        return True

    def hold(self, call_id: str, key: Any) -> None:
        """A spawned call's task arrived: hold its key until the policy lets go of it."""
        if call_id in self.held or key not in self.scheduler.tasks:
            return
        compat.hold_on_scheduler(self.scheduler, [key], HOLDER)
        self.held[call_id] = Held(key, time.time())
        self.unread_count += 1
        self._enforce_caps()

    def pushed(self, call_id: str, blob: bytes) -> None:
        """A held call's outcome was pushed to its caller: keep it here (it is small)."""
        held = self.held.get(call_id)
        if held is not None and held.blob is None and held.key_held:
            held.blob = bytes(blob)

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        """A held call's task finished: note its result's size (for the byte cap); one whose
        outcome is kept here lets go of the key (the push is on the worker's stream ahead of the
        task's end: it is here by now)."""
        if finish != "memory":
            return
        parsed = parse_task_key(key)
        held = self.held.get(parsed[0]) if parsed is not None else None
        if held is None or held.key != key or not held.key_held:
            return
        if held.blob is not None:
            held.key_held = False
            # after the transitions under way (this runs inside them): no nested transitions
            asyncio.get_running_loop().call_soon(compat.release_keys, self.scheduler, [key], HOLDER)
            nbytes = len(held.blob)
        else:
            ts = self.scheduler.tasks.get(key)
            nbytes = max(int(getattr(ts, "nbytes", 0) or 0), 0) if ts is not None else 0
        if held.read_at is None:
            self.unread_bytes += nbytes - held.nbytes
        held.nbytes = nbytes
        self._enforce_caps()

    def read(self, call_id: str) -> None:
        """Someone read the result: it goes `keep_for` seconds from now."""
        held = self.held.get(call_id)
        if held is not None and held.read_at is None:
            held.read_at = time.time()
            self.reads[call_id] = held.read_at
            self.unread_count -= 1
            self.unread_bytes -= held.nbytes

    async def lookup(self, call_id: str, key: Any = None, wait: float = 2.0) -> dict[str, Any]:
        """The `retention.lookup` request: whether a call's result can still be re-attached. A
        call spawned inside a task may reach the scheduler a moment after its id reached the
        asker (another connection): an unknown one is waited for, `wait` seconds at most."""
        deadline = time.monotonic() + wait
        while True:
            if call_id in self.held:
                return {"state": "held", "blob": self.held[call_id].blob}
            if call_id in self.dropped:
                return {"state": "dropped", "why": self.dropped[call_id]}
            if key is not None and key in self.scheduler.tasks:
                return {"state": "running"}
            if time.monotonic() >= deadline:
                return {"state": "unknown"}
            await asyncio.sleep(0.01)

    def configure(self, keep_for: float | None = None, max_unread: int | None = None,
                  max_bytes: int | None = None) -> dict[str, Any]:
        """The `retention.configure` request: change the policy (None keeps a setting)."""
        self.keep_for = self.keep_for if keep_for is None else float(keep_for)
        self.max_unread = self.max_unread if max_unread is None else int(max_unread)
        self.max_bytes = self.max_bytes if max_bytes is None else int(max_bytes)
        self._enforce_caps()
        return {"keep_for": self.keep_for, "max_unread": self.max_unread, "max_bytes": self.max_bytes}

    def sweep(self) -> None:
        """Let go of results read more than `keep_for` seconds ago (called periodically; reads
        are in read order, so this looks at the expired ones only)."""
        now = time.time()
        while self.reads and now - next(iter(self.reads.values())) >= self.keep_for:
            self._drop(next(iter(self.reads)), f"its result was read and kept {self.keep_for:g}s after that")

    def _enforce_caps(self) -> None:
        if self.unread_count <= self.max_unread and self.unread_bytes <= self.max_bytes:
            return
        for call_id, held in list(self.held.items()):  # oldest first
            if self.unread_count <= self.max_unread and self.unread_bytes <= self.max_bytes:
                return
            if held.read_at is None:
                self._drop(
                    call_id,
                    f"it was the oldest unread result when more than {self.max_unread} results or "
                    f"{self.max_bytes / 2**20:.0f} MiB were kept unread on the cluster",
                )

    def worker_left(self) -> None:
        """A worker left: a result already read whose only copy was on it is let go, not
        recomputed (Dask would run the call again, for nobody: the caller has it). An unread one
        is recomputed as Dask does, so that its caller still gets it (at least once)."""
        for call_id in list(self.reads):
            held = self.held[call_id]
            task = self.scheduler.tasks.get(held.key)
            if held.key_held and (task is None or task.state != "memory"):
                self._drop(call_id, "its result was read, then the worker that kept it left the cluster")

    def release_all(self) -> None:
        """The cluster is stopping: let go of every result, so that its workers leaving does
        not set Dask recomputing them (and warning that it will)."""
        keys = [held.key for held in self.held.values() if held.key_held]
        if keys:
            compat.release_keys(self.scheduler, keys, HOLDER)
        for call_id in self.held:
            self.dropped[call_id] = "the cluster stopped"
        self.held.clear()
        self.reads.clear()
        self.unread_count = self.unread_bytes = 0

    def forget(self, call_id: str, why: str) -> None:
        """Stop holding a call's result (it was cancelled)."""
        if call_id in self.held:
            self._drop(call_id, why)

    def _drop(self, call_id: str, why: str) -> None:
        held = self.held.pop(call_id, None)
        if held is not None:
            if held.key_held:
                compat.release_keys(self.scheduler, [held.key], HOLDER)
            if held.read_at is None:
                self.unread_count -= 1
                self.unread_bytes -= held.nbytes
            self.reads.pop(call_id, None)
        self.dropped[call_id] = why
        while len(self.dropped) > MAX_TOMBSTONES:
            self.dropped.popitem(last=False)
