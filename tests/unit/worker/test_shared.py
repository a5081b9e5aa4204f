"""Shared-memory buffers: what a caller writes, a reader maps copy-on-write; files are removed
by their owner, and those of dead processes by the next one that shares memory."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest

from nbfan.exception import ExecutionError
from nbfan.worker import shared

pytestmark = pytest.mark.skipif(not shared.available(), reason="no /dev/shm on this machine")


def test_a_shared_buffer_maps_copy_on_write_where_it_is_unpickled() -> None:
    frame = shared.share(memoryview(b"abc" * 1000))
    assert frame is not None
    try:
        there = pickle.loads(pickle.dumps(frame))  # as a task argument travels: by name
        view = there.data
        assert bytes(view) == b"abc" * 1000
        view[0:3] = b"xyz"  # writable, and private to the reader
        assert bytes(shared.SharedFrame(frame.name, frame.nbytes).data[:3]) == b"abc"
    finally:
        shared.release([frame.name])
    assert not os.path.exists(os.path.join(shared.SHM_DIR, frame.name))
    with pytest.raises(ExecutionError, match="caller removed it"):
        shared.SharedFrame(frame.name, frame.nbytes).data  # noqa: B018


def test_files_of_dead_processes_are_swept_and_live_ones_kept() -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_file = os.path.join(shared.SHM_DIR, f"{shared.PREFIX}{int(dead.stdout)}-test-0")
    live_file = os.path.join(shared.SHM_DIR, f"{shared.PREFIX}{os.getppid()}-test-0")
    for path in (dead_file, live_file):
        with open(path, "wb") as f:
            f.write(b"x")
    try:
        shared._swept = False
        frame = shared.share(memoryview(b"y"))
        assert frame is not None
        shared.release([frame.name])
        assert not os.path.exists(dead_file) and os.path.exists(live_file)
    finally:
        for path in (dead_file, live_file):
            if os.path.exists(path):
                os.unlink(path)


def test_a_file_no_reader_maps_is_written_again_and_one_in_use_is_not() -> None:
    import numpy as np

    first = shared.share(memoryview(bytes(range(256)) * 512))
    assert first is not None
    reader = pickle.loads(pickle.dumps(first))
    array = np.frombuffer(reader.data, dtype=np.uint8)
    assert not reader.unmap()  # an array made from it is alive: the mapping stays
    assert array[1] == 1
    del array
    assert reader.unmap()
    shared.recycle([(first.name, first.nbytes)])
    second = shared.share(memoryview(b"\x07" * first.nbytes))
    assert second is not None and second.name == first.name  # the same pages, written again
    assert bytes(pickle.loads(pickle.dumps(second)).data[:2]) == b"\x07\x07"
    shared.recycle([(second.name, second.nbytes)])
    shared.trim()  # a map ended: the kept files go
    assert not os.path.exists(os.path.join(shared.SHM_DIR, first.name))
