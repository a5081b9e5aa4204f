"""The journal of the cluster's durable state, written by nbfan's scheduler plugin (plugin.py).

What the parts record (Dict/Queue/app operations, map records and their finished batches) is
appended to a log as records, and replayed into the parts when the plugin starts again.

Files, under one directory (`journal_dir`): `snapshot-<gen>.nbj` (the live state when the log
was last compacted, written to a temporary file, fsynced and renamed: always whole) and
`log-<gen>.nbj` (what happened since, append-only). Each starts with `MAGIC`; each record is a
frame: 4-byte big-endian payload length, 4-byte CRC32 of the payload, the payload (a pickled
tuple). Loading stops at the first frame that is short, fails its CRC or does not unpickle: it
is reported once by file and offset, the bytes from there are moved aside to `<file>.torn-<offset>`
and the file is cut there, so the valid prefix is kept and new records follow it.

Durability: records are buffered, and at the end of the scheduler's tick (one `call_soon`)
all of them are written in one `write` and fsynced, in a writer thread of their own (the
scheduler's loop does not wait on the disk); a request that wrote records is answered only once
its fsync is done (`durable()`; the plugin skips the wait for a map's progress: durable.py).
So a crash loses no acknowledged write, at most the records of the tick it happened in.

Bounded: when the log grows past `COMPACT_RATIO` times the last snapshot (and past
`COMPACT_MIN_BYTES`), the live state is written as a new snapshot and a new empty log begins,
so the parts' retention rules (maps released, Dict entries deleted) also bound the disk.

Where: `nbfan.journal-dir` in the scheduler's Dask config, or `NBFAN_JOURNAL_DIR` in its
environment (`nbfan cluster up` sets `$NBFAN_HOME/journal`); neither, or empty or "off": no
journal (one notice in the scheduler's log)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from nbfan.scheduler.journal_files import (
    MAGIC,
    JournalError,
    Record,
    encode,
    fsync_dir,
    lock_dir,
    private_open,
    read_frames,
)

__all__ = ["MAGIC", "Journal", "JournalError", "NoJournal", "Record", "configured_dir", "encode", "read_frames",
           "replay"]

logger = logging.getLogger("nbfan")

COMPACT_RATIO = 4.0  # compact when the log passes this many times the last snapshot...
COMPACT_MIN_BYTES = 64 * 2**20  # ...and this many bytes
CONFIG_KEY = "nbfan.journal-dir"
ENV_VAR = "NBFAN_JOURNAL_DIR"

def configured_dir() -> Path | None:
    """The journal's directory as this process (the scheduler's) is configured: the Dask
    config key `nbfan.journal-dir`, else the environment variable `NBFAN_JOURNAL_DIR`; None
    when neither is set (or set to an empty string)."""
    import dask

    value = dask.config.get(CONFIG_KEY, None)
    if value is None:
        value = os.environ.get(ENV_VAR)
    if value is None or str(value).strip().lower() in ("", "0", "off", "false", "no"):
        return None
    return Path(str(value)).expanduser()


class Journal:
    """An append-only log of records plus its last snapshot, in `directory`.

    `snapshot` returns the records that rebuild the live state (for compaction). Use from one
    thread (the scheduler's event loop); the disk is written by a writer thread of its own."""

    def __init__(
        self,
        directory: Path,
        snapshot: Callable[[], Iterable[Record]] = lambda: (),
        *,
        compact_ratio: float = COMPACT_RATIO,
        compact_min_bytes: int = COMPACT_MIN_BYTES,
    ) -> None:
        self.directory = Path(directory)
        self.snapshot = snapshot
        self.compact_ratio = compact_ratio
        self.compact_min_bytes = compact_min_bytes
        self.generation = 0
        self.log_bytes = 0  # of the current log, as written
        self.snapshot_bytes = 0
        self.writes = 0  # batches written (each one write and one fsync)
        self.compactions = 0
        self.problems: list[str] = []  # what load() found wrong, by file and offset
        self._pending: list[bytes] = []
        self._scheduled = False
        self._last: concurrent.futures.Future[None] | None = None
        self._log: Any = None  # the open log file (the writer thread writes it)
        self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nbfan-journal")
        self._lock = threading.Lock()
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._dir_lock = lock_dir(self.directory)
        except OSError as exc:
            raise JournalError(f"nbfan cannot use the journal directory {self.directory}: {exc}") from exc

    # -- reading back --------------------------------------------------------------------------

    def _files(self, kind: str) -> dict[int, Path]:
        found: dict[int, Path] = {}
        for path in self.directory.glob(f"{kind}-*.nbj"):
            try:
                found[int(path.stem.split("-", 1)[1])] = path
            except ValueError:
                continue
        return found

    def load(self) -> list[Record]:
        """Every valid record, the snapshot's then the log's, and open the log for appending. A
        torn or corrupt part is reported once (logged, and in `problems`) and cut off.

        The generation is the newest snapshot's (0 before the first compaction): a compaction
        makes its snapshot whole before its log exists, so a newer log without a snapshot is
        left over from a compaction the process did not finish, and is removed with any
        half-written snapshot (`.tmp`); the older generation it was replacing stays valid."""
        snapshots = self._files("snapshot")
        logs = self._files("log")
        self.generation = max([*snapshots, 0])
        for gen, path in logs.items():
            if gen > self.generation:
                path.unlink(missing_ok=True)
        for tmp in self.directory.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        records: list[Record] = []
        snapshot = snapshots.get(self.generation)
        if snapshot is not None:
            got, end, why = read_frames(snapshot)
            if why is not None:
                self._report(snapshot, end, why, kept="its records after that offset are lost")
            records.extend(got)
            self.snapshot_bytes = snapshot.stat().st_size
        log = logs.get(self.generation)
        if log is not None:
            got, end, why = read_frames(log)
            if why is not None:
                self._report(log, end, why, kept=f"the rest is moved to {log.name}.torn-{end}")
                self._cut(log, end)
            records.extend(got)
        self._open_log()
        self._remove_older(self.generation)
        return records

    def _report(self, path: Path, offset: int, why: str, *, kept: str) -> None:
        text = (f"nbfan: the journal file {path} is damaged at offset {offset}: {why}; "
                f"its records before that offset are kept, {kept}")
        self.problems.append(text)
        logger.warning(text)

    def _cut(self, path: Path, offset: int) -> None:
        with open(path, "r+b") as f:
            f.seek(offset)
            tail = f.read()
            if tail:
                aside = path.with_name(f"{path.name}.torn-{offset}")
                with private_open(aside, "wb") as out:
                    out.write(tail)
            if offset < len(MAGIC):  # not even the header survived: start the file again
                f.seek(0)
                f.write(MAGIC)
                offset = len(MAGIC)
            f.truncate(offset)
            f.flush()
            os.fsync(f.fileno())

    def _open_log(self) -> None:
        path = self._path("log", self.generation)
        self._log = private_open(path, "ab")  # open until close()
        if self._log.tell() == 0:
            self._log.write(MAGIC)
            self._log.flush()
            os.fsync(self._log.fileno())
            fsync_dir(self.directory)
        self.log_bytes = self._log.tell()

    def _path(self, kind: str, generation: int) -> Path:
        return self.directory / f"{kind}-{generation:06d}.nbj"

    def _remove_older(self, generation: int) -> None:
        for kind in ("snapshot", "log"):
            for gen, path in self._files(kind).items():
                if gen < generation:
                    path.unlink(missing_ok=True)

    # -- writing -------------------------------------------------------------------------------

    def append(self, record: Record) -> None:
        """Buffer a record; it is written and fsynced at the end of this tick (`flush`)."""
        self._pending.append(encode(record))
        if not self._scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (tests, tools): the caller flushes
            self._scheduled = True
            loop.call_soon(self.flush)

    def flush(self) -> concurrent.futures.Future[None] | None:
        """Hand the buffered records to the writer thread (one write and one fsync); compact
        when the log has grown large enough. The future of the write, or None if none."""
        self._scheduled = False
        if self._pending:
            data = b"".join(self._pending)
            self._pending = []
            self.log_bytes += len(data)
            self.writes += 1
            self._last = self._writer.submit(self._write, data)
        if self.log_bytes > max(self.compact_min_bytes, self.compact_ratio * self.snapshot_bytes):
            self.compact()
        return self._last

    def _write(self, data: bytes) -> None:
        with self._lock:
            log = self._log
            start = log.tell()
            try:
                log.write(data)
                log.flush()
                os.fsync(log.fileno())
            except OSError as exc:
                # a full or failing disk: cut what part of the batch got written, so that the
                # next batch follows a whole record and reading back does not stop there
                self._roll_back(log, start, exc)
                raise

    def _roll_back(self, log: Any, offset: int, exc: OSError) -> None:
        text = (f"nbfan: writing the journal {log.name} failed ({exc}); the requests that wrote it get "
                f"the error, and the log is cut back to its last whole record at offset {offset}")
        self.problems.append(text)
        logger.error(text)
        try:
            log.seek(offset)
            log.truncate(offset)
            log.flush()
        except (OSError, ValueError):  # the buffer may still hold the failed bytes
            try:
                os.ftruncate(log.fileno(), offset)
            except OSError:
                pass

    async def durable(self) -> None:
        """Wait until every record appended so far is on disk."""
        if self._pending:
            self.flush()
        last = self._last
        if last is not None and not last.done():
            await asyncio.wrap_future(last)

    def compact(self) -> None:
        """Write the live state as the next generation's snapshot and start its empty log."""
        self._pending = []  # already in the live state the snapshot holds
        data = MAGIC + b"".join(encode(record) for record in self.snapshot())
        self.generation += 1
        self.snapshot_bytes = len(data)
        self.log_bytes = len(MAGIC)
        self.compactions += 1
        self._last = self._writer.submit(self._switch, self.generation, data)

    def _switch(self, generation: int, data: bytes) -> None:
        snapshot = self._path("snapshot", generation)
        tmp = snapshot.with_name(snapshot.name + ".tmp")
        with private_open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, snapshot)  # the new generation exists once its snapshot does...
        fsync_dir(self.directory)
        log = private_open(self._path("log", generation), "wb")  # ...and its log only after (kept open)
        log.write(MAGIC)
        log.flush()
        os.fsync(log.fileno())
        fsync_dir(self.directory)
        with self._lock:
            old, self._log = self._log, log
        old.close()
        self._remove_older(generation)

    def close(self) -> None:
        """Write what is buffered, wait for the disk, and close the files."""
        self.flush()
        self._writer.shutdown(wait=True)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._dir_lock is not None:
            self._dir_lock.close()  # releases the directory for the next scheduler
            self._dir_lock = None

    # -- what `nbfan cluster status` shows -----------------------------------------------------

    def disk_bytes(self) -> int:
        total = 0
        for path in self.directory.glob("*.nbj"):
            try:
                total += path.stat().st_size
            except OSError:
                continue
        return total

    def status(self) -> dict[str, Any]:
        return {
            "on": True,
            "directory": str(self.directory),
            "bytes": self.disk_bytes(),
            "generation": self.generation,
            "compactions": self.compactions,
            "problems": list(self.problems),
        }


class NoJournal:
    """What the parts write to when there is no journal: nothing."""

    def append(self, record: Record) -> None:
        pass


def replay(records: Iterable[Record], parts: dict[str, Any]) -> Iterator[str]:
    """Hand each record to the part its first field names (`parts[name].replay(record)`);
    yields a line for each record no part could apply (logged by the caller)."""
    for record in records:
        part = parts.get(record[0]) if record else None
        if part is None:
            yield f"a journal record of unknown kind {record[:1]!r} was skipped"
            continue
        try:
            part.replay(record)
        except Exception as exc:
            yield f"a journal record {record[:3]!r} could not be applied ({type(exc).__name__}: {exc})"
