"""What the scheduler knows about every nbfan call, counted in inputs.

Pure bookkeeping with no Dask in it, so the scheduler plugin stays a thin adapter and the
counting rules can be read in one place:

- a batch task entering `processing` adds its inputs to `running`; leaving it removes them;
- a batch reaching `memory` has finished all its inputs (counted once per batch, even if Dask
  recomputes it after losing a worker); the ones that raised, were skipped or retried are
  reported separately by the worker (`batch_report`), because for Dask the batch succeeded;
- a batch reaching `erred` (the task itself died: killed worker...) failed all its inputs;
- a one-input call whose outcome was pushed to its caller (worker/push.py) is `delivered`: its
  caller holds the result a moment before the task's end reaches the scheduler;
- a call ends when its caller says so (maps, generators, %%remote), or, for .remote/.spawn
  whose caller may never look again, when its input has finished or was cancelled.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from nbfan.scheduler.schema import SCHEMA_VERSION, Caller, CallSnapshot, CallsSnapshot

MAX_FINISHED = 200  # finished calls kept for late joiners
MAX_RUNNING = 2000  # safety bound on calls nobody ever ends
RATE_WINDOW = 5.0  # seconds the rate is measured over
SNAPSHOT_MIN_INTERVAL = 0.1  # rebuild a snapshot at most this often
SELF_ENDING = ("remote", "spawn")  # kinds whose caller may never report the end: counts decide
ANONYMOUS_IDLE = 5.0  # seconds after which an idle call no caller announced is dropped


def unknown_caller() -> Caller:
    return {"label": "unknown", "kind": "process", "host": "", "pid": 0, "notebook": None}


class CallRecord:
    """Counters of one call. Slots: this is touched on every task transition."""

    __slots__ = (
        "app",
        "batches",
        "call_id",
        "caller",
        "delivered",
        "ended",
        "failed",
        "finished",
        "function",
        "has_meta",
        "kind",
        "lost",
        "owner",
        "parent",
        "pending",
        "per_worker",
        "retried",
        "running",
        "samples",
        "skipped",
        "started",
        "state",
        "sticky",
        "total",
    )

    def __init__(self, call_id: str, now: float) -> None:
        self.call_id = call_id
        self.function = "?"
        self.app: str | None = None
        self.kind = "map"
        self.caller: Caller = unknown_caller()
        self.state = "running"
        self.total: int | None = None
        self.finished = 0  # inputs of batches that finished (memory) or died (erred)
        self.failed = 0  # inputs that raised, or whose task died
        self.skipped = 0  # inputs not run (cancelled, or after a failure in their batch)
        self.running = 0
        self.retried = 0
        self.per_worker: dict[str, int] = {}
        self.started = now
        self.ended: float | None = None
        self.owner: str | None = None  # the Dask client id that started it
        self.has_meta = False
        self.batches: set[int] = set()  # first input of every batch already counted
        self.samples: deque[tuple[float, int]] = deque(maxlen=64)
        self.lost = 0  # inputs whose task was forgotten unfinished (cancelled by its caller)
        self.sticky = False  # cancelled from outside (the panel, `nbfan calls`): final
        self.pending: dict[int, tuple[int, int]] = {}  # worker reports ahead of their batch's end
        self.parent: str | None = None  # the call this one was made inside (function composition)
        self.delivered = False  # its one input's outcome reached its caller (pushed), maybe ahead of its task

    @property
    def done(self) -> int:
        return max(0, self.finished - self.failed - self.skipped)

    def rate(self, now: float) -> float:
        """Inputs finished per second over the last RATE_WINDOW seconds."""
        samples = self.samples
        if len(samples) < 2:
            return 0.0
        end_t, end_n = samples[-1]
        if self.ended is not None and now - self.ended > RATE_WINDOW:
            return 0.0
        for t, n in samples:  # noqa: B007  (n is read after the loop)
            if end_t - t <= RATE_WINDOW:
                break
        span = end_t - t
        return (end_n - n) / span if span > 0 else 0.0

    def snapshot(self, now: float) -> CallSnapshot:
        return {
            "call_id": self.call_id,
            "parent": self.parent,
            "function": self.function,
            "app": self.app,
            "kind": self.kind,  # type: ignore[typeddict-item]
            "caller": self.caller,
            "state": self.state,  # type: ignore[typeddict-item]
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "running": max(0, self.running),
            "retried": self.retried,
            "per_worker": dict(self.per_worker),
            "started": self.started,
            "ended": self.ended,
            "rate": round(self.rate(now), 3),
        }


class CallTracker:
    """All calls the scheduler has seen: running ones, and the last MAX_FINISHED finished."""

    def __init__(self, clock: Any = time.time) -> None:
        self.clock = clock
        self.running: dict[str, CallRecord] = {}
        self.finished: OrderedDict[str, CallRecord] = OrderedDict()
        self.version = 0  # bumped on every change; snapshots are rebuilt only when it moved
        self._cached: CallsSnapshot | None = None
        self._cached_version = -1
        self._cached_at = 0.0

    # -- lookups ------------------------------------------------------------------------

    def get(self, call_id: str) -> CallRecord | None:
        return self.running.get(call_id) or self.finished.get(call_id)

    def _get_or_create(self, call_id: str) -> CallRecord:
        rec = self.running.get(call_id) or self.finished.get(call_id)
        if rec is None:
            rec = self.running[call_id] = CallRecord(call_id, self.clock())
            if len(self.running) > MAX_RUNNING:  # calls nobody ended: forget the oldest
                oldest = next(iter(self.running))
                self._finish(self.running[oldest], "cancelled")
        return rec

    # -- task transitions (the hot path: counting only) ---------------------------------

    def task_processing(self, call_id: str, count: int) -> None:
        self._get_or_create(call_id).running += count
        self.version += 1

    def task_left_processing(self, call_id: str, start: int, count: int, finish: str, worker: str | None) -> None:
        rec = self.get(call_id)
        if rec is None:
            return
        rec.running -= count
        # counts freeze when a call ends (a cancelled call's stragglers do not move its bar)
        if finish in ("memory", "erred") and rec.ended is None and start not in rec.batches:
            rec.batches.add(start)
            rec.finished += count
            if finish == "erred":
                rec.failed += count
            elif worker is not None:
                rec.per_worker[worker] = rec.per_worker.get(worker, 0) + count
            if rec.pending:
                failed, skipped = rec.pending.pop(start, (0, 0))
                rec.failed += failed
                rec.skipped += skipped
            self._maybe_complete(rec)
        self.version += 1

    def task_forgotten(self, call_id: str, start: int, count: int) -> None:
        """A batch was forgotten: unfinished, its inputs will never run (its caller cancelled
        it, e.g. `FunctionCall.cancel()` or an interrupted `.remote`)."""
        rec = self.running.get(call_id)
        if rec is None or start in rec.batches:
            return
        rec.batches.add(start)
        rec.lost += count
        self._maybe_complete(rec)
        self.version += 1

    def outcome_pushed(self, call_id: str) -> None:
        """A one-input call's outcome was pushed to its caller: for the caller it has finished,
        though its task's end may reach the scheduler a moment later (stats must not lag the
        result the caller already holds)."""
        rec = self.running.get(call_id)
        if rec is not None:
            rec.delivered = True

    def task_erred_elsewhere(self, call_id: str, start: int, count: int) -> None:
        """A batch erred without having been processing (e.g. no worker could ever run it)."""
        rec = self.get(call_id)
        if rec is None or rec.ended is not None or start in rec.batches:
            return
        rec.batches.add(start)
        rec.finished += count
        rec.failed += count
        self._maybe_complete(rec)
        self.version += 1

    # -- what callers and workers tell us -----------------------------------------------

    def call_started(self, call_id: str, *, function: str, app: str | None, kind: str, caller: Caller,
                     started: float | None, owner: str | None, parent: str | None = None) -> None:
        rec = self._get_or_create(call_id)
        if not rec.has_meta:  # the first start wins (a spawn_map's coordinator re-announces it)
            self._cached = None
            rec.has_meta = True
            rec.function, rec.app, rec.kind, rec.caller = function, app, kind, caller
            rec.owner = owner
            rec.parent = parent
            parent_rec = self.get(parent) if parent else None
            if parent_rec is not None:  # a call made inside a function: it was started by who started that
                rec.caller = parent_rec.caller
            if started is not None:
                rec.started = min(rec.started, started)
        self.version += 1

    def call_total(self, call_id: str, total: int) -> None:
        rec = self._get_or_create(call_id)
        rec.total = total
        self._maybe_complete(rec)
        self.version += 1

    def call_ended(self, call_id: str, state: str) -> None:
        rec = self.get(call_id)
        if rec is None or state not in ("done", "failed", "cancelled"):
            return
        if rec.sticky:  # a cancel from outside wins over how the caller saw it end
            return
        if rec.ended is None:
            self._finish(rec, state)
        else:
            rec.state = state
            self._cached = None
        self.version += 1

    def batch_report(
        self, call_id: str, start: int | None, failed: int = 0, skipped: int = 0, retried: int = 0
    ) -> None:
        """The worker's account of a batch: inputs that raised, were not run, were retried.
        It usually arrives just before the batch's end; failures count once the batch ends
        (a batch forgotten meanwhile never ends, and its report is dropped with the call)."""
        rec = self.get(call_id)
        if rec is None:
            return
        rec.retried += retried
        if rec.ended is None and start is not None and start not in rec.batches:
            if failed or skipped:
                rec.pending[start] = (failed, skipped)
            self.version += 1
            return
        if rec.ended is not None and rec.state != "done":
            self.version += 1
            return
        rec.failed += failed
        rec.skipped += skipped
        if rec.ended is not None and rec.state == "done" and rec.failed:
            rec.state = "failed"
        self.version += 1

    def descendants(self, call_id: str) -> list[str]:
        """The calls made inside `call_id`, at any depth (children before their children)."""
        records = [*self.running.values(), *self.finished.values()]
        found: list[str] = []
        frontier = [call_id]
        while frontier:
            children = [r.call_id for r in records if r.parent in frontier and r.call_id not in found]
            found += children
            frontier = children
        return found

    def cancel(self, call_id: str) -> bool:
        """Mark a call cancelled; False when it had already ended (or is unknown)."""
        rec = self.get(call_id)
        if rec is None or rec.ended is not None:
            return False
        self._finish(rec, "cancelled")
        rec.sticky = True
        self.version += 1
        return True

    def client_gone(self, client: str, still_wanted: Callable[[str], bool] | None = None) -> None:
        """A Dask client left: its running calls cannot go on (their futures are released),
        except spawn_map, whose map runs in a task that outlives its caller, and calls whose
        tasks someone else still holds (`still_wanted`: e.g. `nbfan run --detach` spawns)."""
        for rec in list(self.running.values()):
            if rec.owner == client and rec.kind != "spawn_map":
                if still_wanted is not None and still_wanted(rec.call_id):
                    continue
                self._finish(rec, "cancelled")
                self.version += 1

    # -- time ---------------------------------------------------------------------------

    def sample(self) -> None:
        """Record progress of running calls (the rate is measured from these samples)."""
        now = self.clock()
        for rec in list(self.running.values()):
            if not rec.has_meta and rec.running <= 0 and rec.samples and now - rec.samples[-1][0] > ANONYMOUS_IDLE:
                # tasks of a caller with telemetry off: nobody will ever say it ended
                del self.running[rec.call_id]
                self.version += 1
                continue
            n = rec.finished
            if not rec.samples or rec.samples[-1][1] != n or now - rec.samples[-1][0] > 1.0:
                rec.samples.append((now, n))

    def _maybe_complete(self, rec: CallRecord) -> None:
        if rec.kind not in SELF_ENDING:  # its caller says how it ended (call_ended)
            return
        if rec.ended is None and rec.total is not None and rec.finished + rec.lost >= rec.total and rec.running <= 0:
            self._finish(rec, "cancelled" if rec.lost else "failed" if rec.failed else "done")

    def _finish(self, rec: CallRecord, state: str) -> None:
        self._cached = None  # a state change is never served stale
        now = self.clock()
        rec.state = state
        rec.ended = now
        rec.samples.append((now, rec.finished))
        rec.batches = set()  # not needed any more; keep finished calls small
        rec.pending = {}
        self.running.pop(rec.call_id, None)
        self.finished[rec.call_id] = rec
        self.finished.move_to_end(rec.call_id)
        while len(self.finished) > MAX_FINISHED:
            self.finished.popitem(last=False)

    # -- snapshots ----------------------------------------------------------------------

    def snapshot(self) -> CallsSnapshot:
        """Running calls (newest first), then finished ones (most recently ended first).
        Rebuilt at most every SNAPSHOT_MIN_INTERVAL seconds, and only when something changed."""
        now = self.clock()
        if self._cached is not None and (
            (self._cached_version == self.version and not self.running)
            or now - self._cached_at < SNAPSHOT_MIN_INTERVAL
        ):
            return self._cached
        running = sorted(self.running.values(), key=lambda r: r.started, reverse=True)
        finished = list(reversed(self.finished.values()))
        self._cached = {
            "version": SCHEMA_VERSION,
            "time": now,
            "calls": [r.snapshot(now) for r in running + finished],
        }
        self._cached_version = self.version
        self._cached_at = now
        return self._cached
