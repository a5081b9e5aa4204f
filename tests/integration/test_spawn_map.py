""".spawn_map and MapCall on real clusters: detached maps that outlive their caller, re-attach
by id, cancel, and resume after the coordinator's worker is killed."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from waiting import no_input_running_on_workers, nothing_running, stays, wait_until

import nbfan
from nbfan.engine.map_loop import window_size
from nbfan.exception import InputCancellation, InvalidError, NotFoundError
from nbfan.keys import coordinator_key
from tests.conftest import run_py

app = nbfan.App("test-spawn-map")


@app.function
def square(x: int) -> int:
    return x * x


@app.function
def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"input {x} is bad")
    return x


@app.function
def logged(path: str, x: int, seconds: float = 0.2) -> int:
    """Appends its input to `path` when it starts: how the tests count executions."""
    with open(path, "a") as f:
        f.write(f"{x}\n")
    time.sleep(seconds)
    return x * 10


@app.generator
def gen(n: int):
    yield n


@app.function
def scaled(a: np.ndarray) -> np.ndarray:
    return a * 2.0


def ran(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def test_spawn_map_returns_a_handle_and_collects_in_input_order(client):
    call = square.spawn_map(range(2000))
    assert isinstance(call, nbfan.MapCall) and call.object_id
    assert call.get(timeout=60) == [x * x for x in range(2000)]
    progress = call.progress()
    assert (progress.done, progress.failed, progress.total, progress.state) == (2000, 0, 2000, "done")
    assert list(call) == [x * x for x in range(2000)]  # iteration, read again
    assert square.spawn_map([]).get() == []


def test_failures_do_not_stop_a_spawned_map(client):
    call = fail_on.spawn_map(range(20), kwargs={"bad": 4})
    with pytest.raises(ValueError, match="input 4 is bad") as info:
        call.get(timeout=60)
    assert info.value.input_index == 4
    results = call.get(return_exceptions=True)
    assert isinstance(results[4], ValueError)
    assert [r for i, r in enumerate(results) if i != 4] == [x for x in range(20) if x != 4]
    assert call.progress().failed == 1 and call.progress().done == 19


def test_the_handle_answers_as_modals_function_call(client):
    """Modal 1.5's handle of a spawn_map: num_inputs(), get(index=), iter(start=, end=) over any
    range (starting inside a stored batch too), FunctionCall.from_id of the map's id, gather."""
    call = square.spawn_map(range(500))
    assert call.num_inputs() == 500
    assert call.get(index=321) == 321 * 321
    assert list(call.iter(start=7, end=12)) == [x * x for x in range(7, 12)]
    assert list(call.iter(start=499)) == [499 * 499] and list(call.iter(start=500)) == []
    with pytest.raises(nbfan.exception.InvalidError, match="0 <= start <= end <= 500"):
        list(call.iter(start=3, end=501))
    again = nbfan.FunctionCall.from_id(call.object_id)  # Modal's spawn_map returns a FunctionCall
    assert isinstance(again, nbfan.MapCall) and again.get(index=2) == 4
    one = square.spawn(6)
    assert one.num_inputs() == 1 and list(one.iter()) == [36] and one.get(index=0) == 36
    with pytest.raises(nbfan.exception.InvalidError, match="one input"):
        one.get(index=1)
    gathered = nbfan.FunctionCall.gather(one, square.spawn_map(range(3)))
    assert gathered == [36, [0, 1, 4]]
    (node,) = call.get_call_graph()
    assert (node.call_id, node.function_name, node.state, node.children) == (call.object_id, "square", "done", [])
    assert call.done()


def test_reattach_by_id_and_unknown_id(client):
    call = square.spawn_map(range(10))
    again = nbfan.MapCall.from_id(call.object_id)
    assert again.total == 10
    assert again.get(timeout=60) == [x * x for x in range(10)]
    with pytest.raises(NotFoundError, match="no spawned map"):
        nbfan.MapCall.from_id("0123456789abcdef0123")


def test_async_twins_of_the_handle(client):
    import asyncio

    async def main():
        call = await square.spawn_map.aio(range(6))
        streamed = [x async for x in call]
        progress = await call.progress.aio()
        return streamed, await call.get.aio(timeout=60), progress

    streamed, got, progress = asyncio.run(main())
    assert streamed == got == [x * x for x in range(6)]
    assert progress.state == "done" and progress.done == 6


def test_collected_results_are_released_from_the_scheduler(client, monkeypatch):
    from nbfan.scheduler import mapstore

    # the session cluster's scheduler runs in this process: shorten its keep-time for the test
    monkeypatch.setattr(mapstore, "KEEP_AFTER_COLLECT", 0.0)
    kept = square.spawn_map(range(3))  # finished but never read: kept
    collected = square.spawn_map(range(3))
    assert collected.get(timeout=60) == [0, 1, 4]
    wait_until(lambda: kept.progress().state == "done", what="the unread map to finish")
    time.sleep(0.01)
    square.spawn_map([])  # any new map trims the store
    with pytest.raises(NotFoundError, match="released"):
        nbfan.MapCall.from_id(collected.object_id)
    assert kept.get(timeout=60) == [0, 1, 4]


def test_large_inputs_and_results_stay_on_the_workers_not_the_scheduler(client, local_cluster, monkeypatch):
    from nbfan.scheduler import mapstore

    monkeypatch.setattr(mapstore, "KEEP_AFTER_COLLECT", 0.0)
    store = local_cluster.scheduler.plugins["nbfan"].maps  # the session cluster's scheduler is in this process
    arrays = [np.full(2**17, float(i)) for i in range(24)]  # 24 MiB of inputs: over INLINE_INPUT_BYTES
    call = scaled.spawn_map(arrays)
    record = store.records[call.object_id]
    assert record.inputs is None and record.chunks  # only the chunks' keys are on the scheduler
    chunk_keys = [key for _start, _count, key in record.chunks]
    results = nbfan.MapCall.from_id(call.object_id).get(timeout=120)
    assert all(np.array_equal(r, a * 2.0) for r, a in zip(results, arrays, strict=True))
    held = [batch.key for batch in record.batches.values()]
    assert record.state == "done" and any(held)  # batches of 1 MiB results and more are held by key
    assert all(batch.blob is None for batch in record.batches.values() if batch.key)
    tasks = local_cluster.scheduler.tasks
    wait_until(lambda: not any(key in tasks for key in chunk_keys), what="the input chunks to be released")
    square.spawn_map([])  # a new map trims the store: the collected map's results go
    wait_until(lambda: not any(key in tasks for key in held if key), what="the held results to be released")


def test_bad_calls_fail_early(client):
    with pytest.raises(InvalidError, match="generator function"):
        gen.spawn_map([1])

    def broken() -> Iterator[int]:
        yield 1
        raise RuntimeError("input source broke")

    with pytest.raises(RuntimeError, match="input source broke"):
        square.spawn_map(broken())


def test_cancel_stops_the_map_on_the_cluster(client, tmp_path):
    log = tmp_path / "ran"
    call = logged.spawn_map([str(log)] * 200, range(200))
    wait_until(lambda: len(ran(log)) >= 3, what="the map to start")
    call.cancel()
    assert call.progress().state == "cancelled"
    nothing_running(client, call.object_id)
    no_input_running_on_workers(client, [call.object_id])  # the inputs running at the cancel were stopped
    assert stays(lambda: len(ran(log))) < 40  # and nothing new starts
    with pytest.raises(InputCancellation):
        call.get(timeout=30)
    results = call.get(return_exceptions=True)
    assert len(results) == 200 and isinstance(results[-1], InputCancellation)


def test_spawn_map_survives_its_callers_exit(local_cluster, client, tmp_path):
    log = tmp_path / "ran"
    code = f"""
import os, time
import nbfan
app = nbfan.App("detached")
@app.function
def logged(path, x, seconds):
    with open(path, "a") as f:
        f.write(f"{{x}}\\n")
    time.sleep(seconds)
    return x * 10
call = logged.spawn_map([{str(log)!r}] * 30, range(30), kwargs={{"seconds": 0.1}})
print(call.object_id, flush=True)
os._exit(0)  # a hard exit right after spawn_map: nothing gets flushed on the way out
"""
    result = run_py(code, env={"NBFAN_SCHEDULER": local_cluster.scheduler_address}, timeout=60)
    assert result.returncode == 0, result.stderr
    object_id = result.stdout.split()[-1]
    assert len(ran(log)) < 30  # the caller was gone before the map finished
    call = nbfan.MapCall.from_id(object_id)
    assert call.get(timeout=60) == [x * 10 for x in range(30)]
    assert sorted(ran(log)) == list(range(30))


def test_embedded_cluster_warns_that_the_work_dies_with_the_process(tmp_path):
    code = """
import warnings
import nbfan
app = nbfan.App("embedded")
@app.function
def square(x):
    return x * x
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    call = square.spawn_map(range(5))
print(nbfan.cluster.current_connection().source)
print([str(w.message) for w in caught])
print(call.get(timeout=60))
"""
    result = run_py(code, env={"NBFAN_HOME": str(tmp_path)}, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-3] == "embedded"
    assert "dies when this process exits" in lines[-2]
    assert lines[-1] == "[0, 1, 4, 9, 16]"


@pytest.fixture
def own_cluster() -> Iterator[object]:
    """A cluster of its own: this test kills one of its workers."""
    from nbfan.cluster.local import start_local_cluster

    cluster = start_local_cluster(2, gpus=[])
    client = nbfan.connect(cluster)
    yield client
    nbfan.disconnect()
    cluster.close()


def test_coordinator_restarts_after_its_worker_is_killed(own_cluster, tmp_path):
    client = own_cluster
    log = tmp_path / "ran"
    total = 40
    window = window_size(client)  # the coordinator's window: the most that may be redone
    call = logged.spawn_map([str(log)] * total, range(total), kwargs={"seconds": 0.25})
    wait_until(lambda: call.progress().done >= 6, what="some batches to be stored")
    key = coordinator_key(call.object_id)
    worker = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.tasks[key].processing_on.address)
    pid = client.run(os.getpid, workers=[worker])[worker]
    os.kill(pid, signal.SIGKILL)

    assert call.get(timeout=120) == [x * 10 for x in range(total)]
    assert call.progress().restarts >= 1
    executions = ran(log)
    assert sorted(set(executions)) == list(range(total))
    duplicates = len(executions) - total
    assert duplicates <= window, f"{duplicates} inputs ran twice: more than the in-flight window"
