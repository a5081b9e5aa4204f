"""The journal's files (journal.py): the frame format (length, CRC32, pickled record), files
only their owner reads, fsyncs, and the lock that keeps a directory to one scheduler."""

from __future__ import annotations

import os
import pickle
import struct
import zlib
from pathlib import Path
from typing import Any

MAGIC = b"NBFANJ1\n"
HEADER = struct.Struct(">II")  # payload length, CRC32 of the payload
MAX_RECORD = 2**31  # a longer length field is corruption
Record = tuple[Any, ...]


def encode(record: Record) -> bytes:
    """One frame: length, CRC32, pickled record."""
    payload = pickle.dumps(record, protocol=5)
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_frames(path: Path) -> tuple[list[Record], int, str | None]:
    """The valid records of one file, the offset where they end, and why the rest (if any) is
    not valid (None: the file ends cleanly)."""
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        return [], 0, "it does not start with the journal's header" if data else None
    records: list[Record] = []
    offset = len(MAGIC)
    while offset < len(data):
        if offset + HEADER.size > len(data):
            return records, offset, "a record's header is cut short (a torn write)"
        length, crc = HEADER.unpack_from(data, offset)
        start = offset + HEADER.size
        if length > MAX_RECORD or start + length > len(data):
            return records, offset, f"a record of {length} bytes is cut short (a torn write)"
        payload = data[start : start + length]
        if zlib.crc32(payload) != crc:
            return records, offset, "a record fails its CRC32 check (corrupt)"
        try:
            record = pickle.loads(payload)
        except Exception as exc:
            return records, offset, f"a record does not unpickle ({type(exc).__name__}: {exc})"
        records.append(record)
        offset = start + length
    return records, offset, None


class JournalError(RuntimeError):
    """The journal's directory cannot be used; the message says which and why."""


def lock_dir(directory: Path) -> Any:
    """Hold the directory for this journal alone (an flock on its `lock` file, released when the
    process ends, however it ends): two schedulers writing one journal would corrupt it."""
    import fcntl

    lock = private_open(directory / "lock", "ab")
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise JournalError(
            f"the journal directory {directory} is in use by another scheduler; give this one a directory of "
            f"its own (nbfan.journal-dir or NBFAN_JOURNAL_DIR), or \"off\""
        ) from None
    return lock


def private_open(path: Path, mode: str) -> Any:
    """Open a journal file readable by its owner only (it holds Dict values and pickled calls)."""
    return open(path, mode, opener=lambda name, flags: os.open(name, flags, 0o600))


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
