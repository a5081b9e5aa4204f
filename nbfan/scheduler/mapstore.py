"""Durable state of `spawn_map` calls, kept on the SCHEDULER (a part of nbfan's plugin).

The scheduler outlives callers and workers, so a map's progress and where its inputs and
finished batches are live here: a coordinator task that dies with its worker is rerun by Dask
and resumes from what was stored, and any process can re-attach to a map by id to watch or
collect it.

Memory: the scheduler is the one process every user of a cluster shares, so it keeps only
small data. Small inputs (a pickled total up to `INLINE_INPUT_BYTES`) and small batches of
results (up to `INLINE_RESULT_BYTES`) are kept here as bytes; larger ones stay on the workers as
Dask data (input chunks the caller scattered, result batches the coordinator scattered), held
for the map by the pseudo-client `HOLDER`: the scheduler keeps their keys. Results are dropped
`KEEP_AFTER_COLLECT` seconds after a reader read them to the end, and at most `MAX_FINISHED`
finished maps are kept (the oldest finished ones go first).

Journal: when the cluster has one (journal.py), each change of a record is also written there
as a `("map", ...)` record and replayed on the plugin's start (`replay`). What stays on the
workers (inputs over `INLINE_INPUT_BYTES`, batches of results over `INLINE_RESULT_BYTES`) dies
with them: a running map whose inputs were there fails on the restart, saying so; a stored batch
that was there is run again (running map) or its map is released, saying why (finished map).
A running map restored from the journal is `resumable()`: the plugin starts its coordinator.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from nbfan import compat
from nbfan.keys import COORDINATOR_PREFIX, coordinator_key
from nbfan.scheduler.journal import NoJournal, Record

KEEP_AFTER_COLLECT = 600.0  # seconds a collected map's results stay (a second reader may come)
MAX_FINISHED = 100  # finished maps kept with their results, oldest dropped first
MAX_TOMBSTONES = 10_000  # ids of dropped maps remembered, to say "released" rather than "unknown"
READ_BYTES = 16 * 2**20  # results sent per read, at most (one batch more if a batch is bigger)
INLINE_INPUT_BYTES = 16 * 2**20  # a map's inputs up to this size are kept here; larger ones on workers
INLINE_RESULT_BYTES = 2**20  # a batch of results up to this size is kept here; larger ones on workers
HOLDER = "nbfan-mapstore"  # the pseudo-client that holds maps' data on the workers

FINISHED = ("done", "cancelled", "failed")



@dataclass(frozen=True)
class StoredBatch:
    """A finished batch's outcomes: the blob itself, or the key of their data on the workers."""

    count: int
    blob: bytes | None
    key: str | None
    nbytes: int
    failed: int = 0  # of its inputs (the others are done)


@dataclass
class MapRecord:
    map_id: str
    name: str
    total: int
    inputs: bytes | None
    chunks: list[tuple[int, int, str]] = field(default_factory=list)  # (start, count, key) of inputs on workers
    resume: bytes | None = None  # the pickled coordinator call that resumes it (after a restart)
    state: str = "running"  # running | done | cancelled | failed
    error: str | None = None
    epoch: int = 0  # bumped each time a coordinator (re)starts; stale coordinators are refused
    done: int = 0
    failed: int = 0
    batches: dict[int, StoredBatch] = field(default_factory=dict)  # by the index of its first input
    created: float = field(default_factory=time.time)
    finished_at: float | None = None
    collected_at: float | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def summary(self) -> dict[str, Any]:
        return {
            "map_id": self.map_id,
            "name": self.name,
            "state": self.state,
            "error": self.error,
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "restarts": max(self.epoch - 1, 0),
        }

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class MapStore:
    """Every spawn_map's record, on the scheduler (a part of `plugin.NbfanPlugin`); its
    operations (`OPS`) are the `map.<op>` requests."""

    OPS = ("create", "submitted", "claim", "store", "finish", "fail", "progress", "results", "cancel")

    def __init__(self) -> None:
        self.records: OrderedDict[str, MapRecord] = OrderedDict()
        self.released: OrderedDict[str, str] = OrderedDict()  # dropped map id -> why
        self.scheduler: Any = None
        self.journal: Any = NoJournal()  # the plugin sets the cluster's journal, if it has one
        self.restored: list[str] = []  # running maps read back from the journal, to resume

    async def start(self, scheduler: Any) -> None:
        """Attached to the scheduler by the plugin."""
        self.scheduler = scheduler

    # -- coordinator lifecycle (a fire-and-forget task the scheduler reruns if its worker dies) --

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if not (isinstance(key, str) and key.startswith(COORDINATOR_PREFIX)):
            return
        record = self.records.get(key[len(COORDINATOR_PREFIX) :])
        if record is None or record.state != "running":
            return
        if finish == "erred":
            text = kwargs.get("exception_text") or "see the scheduler log"
            self._finish(record, "failed", f"the map's coordinator task failed on the cluster: {text}")
        elif finish == "forgotten":
            why = "the map's coordinator task was released by the scheduler before it finished"
            self._finish(record, "failed", why)

    def _finish(self, record: MapRecord, state: str, error: str | None = None) -> None:
        record.state = state
        record.error = error
        record.inputs = None
        record.resume = None
        self.journal.append(("map", "finish", record.map_id, state, error))
        self._let_go([key for _start, _count, key in record.chunks])
        record.chunks = []
        record.finished_at = time.time()
        record.notify()
        self._trim()

    def _trim(self) -> None:
        now = time.time()
        finished = [r for r in self.records.values() if r.state in FINISHED]
        extra = len(finished) - MAX_FINISHED
        for record in finished:
            if extra > 0:
                extra -= 1
                self._release(record, f"it was among the oldest of more than {MAX_FINISHED} finished maps")
            elif record.collected_at is not None and now - record.collected_at > KEEP_AFTER_COLLECT:
                self._release(record, f"its results were collected more than {KEEP_AFTER_COLLECT:g}s ago")

    def _let_go(self, keys: list[str]) -> None:
        """Stop holding data of a map on the workers (Dask forgets it unless someone else holds it)."""
        held = [key for key in keys if key in self.scheduler.tasks]
        if held:
            compat.release_keys(self.scheduler, held, HOLDER)

    def _release(self, record: MapRecord, why: str) -> None:
        self._let_go([batch.key for batch in record.batches.values() if batch.key is not None])
        del self.records[record.map_id]
        self.released[record.map_id] = why
        self.journal.append(("map", "release", record.map_id, why))
        while len(self.released) > MAX_TOMBSTONES:
            self.released.popitem(last=False)

    def _get(self, map_id: str) -> MapRecord | dict[str, Any]:
        record = self.records.get(map_id)
        if record is not None:
            return record
        why = self.released.get(map_id)
        return {"state": "released" if why else "unknown", "error": why, "map_id": map_id}

    # -- handlers (called through `client.scheduler.nbfan_map_<op>(...)`) ----------------------

    def create(
        self, map_id: str, name: str, total: int, inputs: bytes | None, chunks: list[Any] | None = None,
        resume: bytes | None = None,
    ) -> dict[str, Any]:
        """A new map: its inputs as bytes, or as `chunks` (start, count, key) the caller scattered;
        `resume`: its pickled coordinator call, run again if the cluster restarts mid-map."""
        if map_id not in self.records:
            self._trim()
            held = [(int(start), int(count), str(key)) for start, count, key in chunks or ()]
            compat.hold_on_scheduler(self.scheduler, [key for _s, _c, key in held], HOLDER)
            record = MapRecord(map_id, name, total, inputs if total else None, held, resume if total else None)
            self.records[map_id] = record
            self.journal.append(("map", "create", map_id, name, total, record.inputs, held, record.resume,
                                 record.created))
            if total == 0:
                self._finish(record, "done")
        return self.records[map_id].summary()

    async def submitted(self, map_id: str, timeout: float = 10.0) -> bool:
        """Wait until the coordinator task is known to the scheduler (or already ran)."""
        key = coordinator_key(map_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = self.records.get(map_id)
            if record is None or record.epoch > 0 or record.state != "running":
                return True
            if "fire-and-forget" in compat.clients_wanting(self.scheduler, key):
                return True
            await asyncio.sleep(0.005)
        return False

    def claim(self, map_id: str) -> dict[str, Any]:
        """A coordinator starts (or restarts): it gets the inputs and what is already stored."""
        found = self._get(map_id)
        if not isinstance(found, MapRecord):
            return found
        reply = found.summary()
        if found.state == "running":
            found.epoch += 1
            self.journal.append(("map", "claim", map_id, found.epoch))
            reply.update(
                epoch=found.epoch,
                inputs=found.inputs,
                chunks=found.chunks,
                stored=sorted((start, batch.count) for start, batch in found.batches.items()),
            )
        return reply

    def store(
        self, map_id: str, epoch: int, start: int, count: int, outcomes: bytes | None, done: int, failed: int,
        key: str | None = None, nbytes: int = 0,
    ) -> str:
        """Keep one finished batch: its `outcomes` blob, or the `key` of their data on the
        workers (then held here). Returns the map's state; `superseded` tells a stale
        coordinator (a newer one took over) to stop."""
        record = self.records.get(map_id)
        if record is None:
            return "released"
        if record.state != "running":
            return record.state
        if epoch != record.epoch:
            return "superseded"
        if start not in record.batches:
            if key is not None:
                compat.hold_on_scheduler(self.scheduler, [key], HOLDER)
            record.batches[start] = StoredBatch(count, outcomes, key, nbytes or len(outcomes or b""), failed)
            record.done += done
            record.failed += failed
            self.journal.append(("map", "batch", map_id, start, count, outcomes, key, nbytes, done, failed))
            if record.done + record.failed >= record.total:  # complete: no need to wait for the coordinator
                self._finish(record, "done")
            else:
                record.notify()
        return record.state

    def finish(self, map_id: str, epoch: int) -> str:
        record = self.records.get(map_id)
        if record is None:
            return "released"
        if record.state == "running" and epoch == record.epoch:
            self._finish(record, "done")
        return record.state

    def fail(self, map_id: str, epoch: int, error: str) -> str:
        record = self.records.get(map_id)
        if record is not None and record.state == "running" and epoch == record.epoch:
            self._finish(record, "failed", error)
        return record.state if record is not None else "released"

    def progress(self, map_id: str) -> dict[str, Any]:
        found = self._get(map_id)
        return found.summary() if isinstance(found, MapRecord) else found

    async def results(self, map_id: str, cursor: int, wait: float = 1.0) -> dict[str, Any]:
        """Stored batches from input `cursor` on, contiguous, in input order. Waits up to
        `wait` seconds for the next one when none is there yet and the map is running."""
        found = self._get(map_id)
        if not isinstance(found, MapRecord):
            return found
        record = found
        cursor = _batch_holding(record, cursor)  # a range read may start inside a batch
        if cursor not in record.batches and record.state == "running" and wait > 0:
            try:
                await asyncio.wait_for(record.changed.wait(), wait)
            except asyncio.TimeoutError:
                pass
        cursor = _batch_holding(record, cursor)
        batches: list[tuple[int, int, bytes | None, str | None]] = []  # (start, count, blob, key)
        size = 0
        while cursor in record.batches and size < READ_BYTES:
            batch = record.batches[cursor]
            batches.append((cursor, batch.count, batch.blob, batch.key))
            size += batch.nbytes if batch.key is None else 0  # a key is read from the workers, not sent here
            cursor += batch.count
        if cursor >= record.total and record.collected_at is None:  # read to the end
            record.collected_at = time.time()
            self.journal.append(("map", "collected", map_id, record.collected_at))
        reply = record.summary()
        reply["batches"] = batches
        if not batches and record.state in FINISHED:  # a cancelled/failed map's gap: where do results resume?
            reply["next_start"] = min((s for s in record.batches if s > cursor), default=record.total)
        return reply

    def cancel(self, map_id: str) -> dict[str, Any]:
        """Stop the map: no new batch starts; its coordinator and queued batches are cancelled."""
        found = self._get(map_id)
        if not isinstance(found, MapRecord):
            return found
        was_running = found.state == "running"
        if was_running:
            self._finish(found, "cancelled", "the map was cancelled")
            prefix = f"nbfan-{map_id}-"
            keys = [k for k in self.scheduler.tasks if isinstance(k, str) and k.startswith(prefix)]
            keys.append(coordinator_key(map_id))
            compat.cancel_keys(self.scheduler, keys, "fire-and-forget", reason="nbfan map cancelled")
        return {**found.summary(), "was_running": was_running}

    # -- the journal (journal.py) ------------------------------------------------------------

    def replay(self, record: Record) -> None:
        """Apply one journal record (as written above) on the plugin's start. Nothing on the
        workers survived the restart: keys of data held there are dropped (see the module doc)."""
        _map, op, map_id, *rest = record
        if op == "create":
            name, total, inputs, chunks, resume, created = rest
            self.records[map_id] = MapRecord(map_id, name, total, inputs, list(chunks), resume, created=created)
            self.released.pop(map_id, None)
            return
        if op == "release":
            self.records.pop(map_id, None)
            self.released[map_id] = rest[0]
            return
        found = self.records.get(map_id)
        if found is None:
            return
        if op == "claim":
            found.epoch = max(found.epoch, rest[0])
        elif op == "batch":
            start, count, outcomes, key, nbytes, done, failed = rest
            if start not in found.batches:
                found.batches[start] = StoredBatch(count, outcomes, key, nbytes or len(outcomes or b""), failed)
                found.done += done
                found.failed += failed
        elif op == "finish":
            found.state, found.error = rest
            found.inputs = found.resume = None
            found.chunks = []
            found.finished_at = time.time()
        elif op == "collected":
            found.collected_at = rest[0]

    def restored_from_journal(self) -> None:
        """After the replay: what lived on the workers is gone; running maps that can resume are
        listed in `restored` (the plugin starts their coordinators)."""
        for record in list(self.records.values()):
            lost = [start for start, batch in record.batches.items() if batch.key is not None]
            if record.state in FINISHED:
                if lost:
                    self._release(record, "its results over 1 MiB a batch were kept on the workers, "
                                          "and the cluster restarted since")
                continue
            if record.chunks or record.resume is None:
                why = ("its inputs (over 16 MiB) were kept on the workers, and the cluster restarted since"
                       if record.chunks else "the cluster restarted, and its map cannot be resumed")
                record.chunks = []
                self._finish(record, "failed", why)
                continue
            for start in lost:  # their outcomes are gone: those inputs run again
                batch = record.batches.pop(start)
                record.done -= batch.count - batch.failed
                record.failed -= batch.failed
            self.restored.append(record.map_id)

    def snapshot(self) -> list[Record]:
        """Records that rebuild every map (for the journal's compaction)."""
        records: list[Record] = []
        for map_id, why in self.released.items():
            records.append(("map", "release", map_id, why))
        for r in self.records.values():
            records.append(("map", "create", r.map_id, r.name, r.total, r.inputs, r.chunks, r.resume, r.created))
            if r.epoch:
                records.append(("map", "claim", r.map_id, r.epoch))
            records.extend(("map", "batch", r.map_id, start, b.count, b.blob, b.key, b.nbytes, b.count - b.failed,
                            b.failed) for start, b in r.batches.items())
            if r.state != "running":
                records.append(("map", "finish", r.map_id, r.state, r.error))
            if r.collected_at is not None:
                records.append(("map", "collected", r.map_id, r.collected_at))
        return records


def _batch_holding(record: MapRecord, index: int) -> int:
    """The start of the stored batch that holds input `index` (`index` itself when none does)."""
    if index in record.batches:
        return index
    for start, batch in record.batches.items():
        if start < index < start + batch.count:
            return start
    return index
