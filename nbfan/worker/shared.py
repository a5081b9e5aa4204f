"""Large buffers through shared memory, between a caller and workers on one host.

The caller copies each large buffer of a call's inputs once into a file of its own in
/dev/shm; the task carries only the file's name, and the worker maps the file copy-on-write
(the array arrives writable; the caller's copy is never touched). Neither the scheduler nor a
socket carries the bytes, and the array arrives page-aligned. What Ray does with its object store.

Writing a new file costs the kernel a fresh page per 4 KiB, three times what copying into
pages it already has costs; so a worker says, with a task's result, which of its input files it
no longer maps (`unmap`: no array of the task is left alive), and the caller writes the next
inputs of the map into those (`recycle`), until the map ends (`trim`).

The caller owns the files: it removes them once the task has finished (its result arrived,
it failed, or it was cancelled), and at exit; the files of a process that died are removed by
the next nbfan process on the host that shares memory (the pid is in the name). A worker that
finds no file (its caller removed it: the call was cancelled, or the caller exited) fails the
input with a message that says so.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import mmap
import os
import sys
import threading
import uuid
from typing import Any

from nbfan.exception import ExecutionError

SHM_DIR = "/dev/shm"
PREFIX = "nbfan-shm-"

_owned: set[str] = set()  # names of the files this process made and has not removed yet
_free: dict[int, list[str]] = {}  # size -> files of that size no reader maps: written again next
_free_bytes = 0
#: the most bytes of files kept for reuse (each one is as much memory held in /dev/shm)
FREE_MAX_BYTES = 256 << 20
#: map every page of a file for reading in one call, not a fault per 64 KiB as they are read (Linux 5.14+;
#: pages written later are still copied then, one by one): ~1.9 ms to read 16 MiB instead of ~2.5
MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22) if sys.platform == "linux" else None
_lock = threading.Lock()
_counter = itertools.count()
_token = uuid.uuid4().hex[:8]  # a pid can be reused: names stay unique
_swept = False


class SharedFrame:
    """A buffer in a shared-memory file: pickles as its name, maps where it is unpickled."""

    __slots__ = ("_mapped", "_view", "name", "nbytes")

    def __init__(self, name: str, nbytes: int) -> None:
        self.name = name
        self.nbytes = nbytes
        self._mapped: mmap.mmap | None = None
        self._view: memoryview | None = None

    @property
    def data(self) -> memoryview:
        """The buffer, mapped copy-on-write from the file (once)."""
        if self._view is None:
            self._mapped = _map(self.name, self.nbytes)
            self._view = memoryview(self._mapped)
        return self._view

    def unmap(self) -> bool:
        """Let go of the mapping: True when nothing (no array) used it any more, so the file
        may be written again; False, and the mapping is kept, while something does."""
        if self._view is None or self._mapped is None:
            return False
        try:
            self._view.release()
            self._mapped.close()
        except BufferError:  # an array made from it is still alive (kept by the function?)
            return False
        self._view = self._mapped = None
        return True

    def __reduce__(self) -> tuple[type[SharedFrame], tuple[str, int]]:
        return SharedFrame, (self.name, self.nbytes)


def available() -> bool:
    """Whether this host has a shared-memory folder nbfan can write."""
    return os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK)


def share(buffer: memoryview) -> SharedFrame | None:
    """Copy `buffer` (contiguous) into a shared-memory file (a new one, or one of its size no
    reader maps any more); None when there is no room (the caller then sends the buffer the
    usual way)."""
    _sweep_once()
    data = buffer.cast("B")
    name = _take_free(data.nbytes)
    if name is None:
        name = f"{PREFIX}{os.getpid()}-{_token}-{next(_counter)}"
        flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
    else:
        flags = os.O_WRONLY  # a file of this size no reader maps any more: its pages are reused
    try:
        fd = os.open(os.path.join(SHM_DIR, name), flags, 0o600)
    except OSError:
        return None
    with _lock:
        _owned.add(name)
    try:
        try:  # written, not mapped: a full /dev/shm is an error here (ENOSPC), never a SIGBUS
            written = 0
            while written < data.nbytes:
                written += os.pwrite(fd, data[written:], written)
        finally:
            os.close(fd)
    except OSError:  # no room: the caller sends this buffer the usual way
        release([name])
        return None
    return SharedFrame(name, data.nbytes)


def _take_free(nbytes: int) -> str | None:
    global _free_bytes
    with _lock:
        names = _free.get(nbytes)
        if not names:
            return None
        _free_bytes -= nbytes
        return names.pop()


def recycle(frames: Any) -> None:
    """Files (name, size) that their reader no longer maps: keep them to write the next
    buffers of that size into (up to FREE_MAX_BYTES), remove the others."""
    global _free_bytes
    removed = []
    for name, nbytes in frames:
        with _lock:
            keep = name in _owned and _free_bytes + nbytes <= FREE_MAX_BYTES
            if keep:
                _free.setdefault(nbytes, []).append(name)
                _free_bytes += nbytes
        if not keep:
            removed.append(name)
    release(removed)


def trim() -> None:
    """Remove the files kept for reuse (a map ended)."""
    global _free_bytes
    with _lock:
        names = [name for kept in _free.values() for name in kept]
        _free.clear()
        _free_bytes = 0
    release(names)


def release(names: Any) -> None:
    """Remove shared-memory files this process made (mapped buffers stay valid)."""
    for name in names:
        with _lock:
            _owned.discard(name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(SHM_DIR, name))


def _map(name: str, nbytes: int) -> mmap.mmap:
    try:
        fd = os.open(os.path.join(SHM_DIR, name), os.O_RDONLY)
    except FileNotFoundError:
        raise ExecutionError(
            f"an input's shared-memory buffer ({name}) is gone: its caller removed it, because the call was "
            f"cancelled or the caller exited"
        ) from None
    try:
        mapped = mmap.mmap(fd, nbytes, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    if MADV_POPULATE_READ is not None:
        with contextlib.suppress(OSError):  # Linux < 5.14: the pages are faulted in as read
            mapped.madvise(MADV_POPULATE_READ)
    return mapped


def _sweep_once() -> None:
    """Remove the files of nbfan processes of this host that died without removing theirs."""
    global _swept
    if _swept:
        return
    _swept = True
    try:
        names = [n for n in os.listdir(SHM_DIR) if n.startswith(PREFIX)]
    except OSError:
        return
    for name in names:
        try:
            pid = int(name[len(PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(SHM_DIR, name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


@atexit.register
def _release_all() -> None:
    with _lock:
        names = list(_owned)
        _free.clear()
    release(names)
