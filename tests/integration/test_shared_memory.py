"""Large arrays of a `.map` or a blocking `.remote` reach workers on the caller's host through
shared memory (worker/shared.py): mapped on the worker, writable there without touching the
caller's copy, and no file is left behind however the call ends."""

from __future__ import annotations

import os

import numpy as np
import pytest

import nbfan
from nbfan.config import config
from nbfan.worker.shared import PREFIX, SHM_DIR

app = nbfan.App("test-shared-memory")


def arrived_through(a: np.ndarray) -> str:
    """What the array's memory is on the worker: an mmap (shared memory) or a received frame."""
    base = a
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return type(base).__name__


@app.function
def inspect(a: np.ndarray) -> tuple[str, float, bool]:
    total = float(a.sum())
    a[:] = -1  # the worker's copy is its own
    return arrived_through(a), total, bool(a.flags.writeable)


@app.function
def fail_on_large(a: np.ndarray) -> float:
    if a.nbytes > 1 << 20:
        raise ValueError("too large")
    return float(a.sum())


def our_files() -> list[str]:
    return [n for n in os.listdir(SHM_DIR) if n.startswith(f"{PREFIX}{os.getpid()}-")]


def test_map_and_remote_arrays_come_through_shared_memory_and_leave_no_file(client):
    arrays = [np.full(1 << 18, float(i)) for i in range(6)]  # 2 MiB each
    results = list(inspect.map(arrays))
    assert [r[0] for r in results] == ["mmap"] * 6
    assert [r[1] for r in results] == [float(i) * (1 << 18) for i in range(6)]
    assert all(r[2] for r in results)  # writable on the worker
    assert all((a == i).all() for i, a in enumerate(arrays))  # and the caller's arrays untouched
    assert inspect.remote(arrays[3])[:2] == ("mmap", 3.0 * (1 << 18))
    assert our_files() == []


def test_failed_and_abandoned_maps_leave_no_shared_file(client):
    arrays = [np.ones(1 << 16), np.ones(1 << 18)] + [np.ones(1 << 18) for _ in range(10)]
    with pytest.raises(ValueError, match="too large"):
        list(fail_on_large.map(arrays))
    results = inspect.map([np.ones(1 << 18) for _ in range(10)])
    next(results)
    results.close()  # leaving early cancels the rest
    assert our_files() == []


def test_spawned_calls_and_the_switch_off_send_arrays_the_dask_way(client):
    a = np.ones(1 << 18)
    assert inspect.spawn(a).get(timeout=60)[0] != "mmap"  # a handle may outlive its caller
    config.shared_memory = False
    try:
        assert "mmap" not in [r[0] for r in inspect.map([a, a])]
    finally:
        config.shared_memory = True


@app.function
def keep_first(a: np.ndarray) -> float:
    """Keeps the first array it gets alive on its worker, and reads it again at every call."""
    from distributed import get_worker

    worker = get_worker()
    if not hasattr(worker, "nbfan_test_kept"):
        worker.nbfan_test_kept = a
    return float(worker.nbfan_test_kept[0])


def test_an_array_a_function_keeps_alive_is_never_overwritten_by_later_inputs(client):
    arrays = [np.full(1 << 18, float(i + 1)) for i in range(40)]
    firsts = list(keep_first.map(arrays))
    kept = client.run(lambda dask_worker: float(dask_worker.nbfan_test_kept[0]))
    assert len(set(firsts)) <= 2 and set(firsts) <= set(kept.values())  # each worker reads back its first
    client.run(lambda dask_worker: delattr(dask_worker, "nbfan_test_kept"))
    assert our_files() == []
