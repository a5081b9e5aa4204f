"""The single-call API (.local / .remote / .spawn / .remote_gen and .aio) on a real cluster."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import numpy as np
import pytest
from remote_tb import assert_reads_like_local

import nbfan
from nbfan.exception import FunctionTimeoutError, InvalidError, RemoteError, SerializationError

app = nbfan.App("test-remote")


@app.function
def array_total(a: np.ndarray) -> float:
    return float(a.sum())


def test_a_spawned_call_gets_its_array_as_it_was_when_spawned(client):
    frame = np.ones(1 << 18)  # 2 MiB: travels beside the batch, out of band
    calls = []
    for value in range(5):  # one buffer refilled between calls, as a video reader does
        frame[:] = value
        calls.append(array_total.spawn(frame))
    assert [call.get(timeout=60) for call in calls] == [float(v * frame.size) for v in range(5)]
    assert array_total.remote(frame) == 4.0 * frame.size


@app.function
def square(x: int) -> int:
    return x * x


@app.function()
def where() -> int:
    return os.getpid()


class CustomError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@app.function
def fail(code: int) -> None:
    raise CustomError("it broke", code)


class Unpicklable(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()  # an attribute that cannot be pickled


@app.function
def fail_unpicklable() -> None:
    raise Unpicklable("cannot travel")


@app.function
def return_lock():
    return threading.Lock()


@app.function(timeout=0.5)
def sleepy(seconds: float) -> str:
    for _ in range(int(seconds * 20)):  # short sleeps: stoppable between them
        time.sleep(0.05)
    return "woke"


@app.function(timeout=1)
def busy_loop() -> None:
    while True:
        pass


@app.generator
def count(n: int):
    yield from range(n)


@app.function
def slow_count(n: int):
    for i in range(n):
        time.sleep(0.3)
        yield i, time.time()


def test_local_runs_in_this_process(client):
    assert where.local() == os.getpid()
    assert square(4) == 16


def test_remote_runs_on_a_worker(client):
    assert square.remote(7) == 49
    assert where.remote() != os.getpid()


def test_remote_reraises_original_type_with_attributes_and_remote_traceback(client):
    with pytest.raises(CustomError) as info:
        fail.remote(42)
    assert info.value.code == 42
    assert_reads_like_local(info.value, "fail.remote(42)", "in fail", 'raise CustomError("it broke", code)')
    assert 'raise CustomError("it broke", code)' in info.value.remote_traceback


def _explode(value: int) -> None:
    ratio = 1 / value
    raise ValueError(f"helper saw {ratio}")


@app.function
def calls_a_helper(value: int) -> None:
    _explode(value)


def test_remote_traceback_shows_helper_frames_with_source_lines(client):
    with pytest.raises(ValueError) as info:
        calls_a_helper.remote(4)
    text = assert_reads_like_local(
        info.value, "calls_a_helper.remote(4)", "in calls_a_helper", "_explode(value)", "in _explode",
        'raise ValueError(f"helper saw {ratio}")',
    )
    assert f'File "{__file__}"' in text  # the test file itself, with its real line numbers
    with pytest.raises(ValueError) as again:
        calls_a_helper.spawn(4).get()
    assert_reads_like_local(again.value, "calls_a_helper.spawn(4).get()", "_explode(value)")


def test_async_remote_traceback_reads_like_local(client):
    async def main() -> None:
        await calls_a_helper.remote.aio(2)

    with pytest.raises(ValueError) as info:
        asyncio.run(main())
    assert_reads_like_local(info.value, "await calls_a_helper.remote.aio(2)", "_explode(value)")


def test_unpicklable_exception_arrives_as_remote_error(client):
    with pytest.raises(RemoteError) as info:
        fail_unpicklable.remote()
    assert "Unpicklable" in info.value.type_name
    assert info.value.message == "cannot travel"
    assert "fail_unpicklable" in info.value.remote_traceback


def test_unpicklable_argument_names_the_argument(client):
    with pytest.raises(SerializationError, match=r"argument 1 \(lock") as info:
        square.remote(1, threading.Lock())
    assert "could not be serialized" in str(info.value)
    with pytest.raises(SerializationError, match="argument 'key'"):
        square.remote(1, key=threading.Lock())


def test_unpicklable_result_is_a_clear_error(client):
    with pytest.raises(SerializationError, match="could not be serialized to send it back"):
        return_lock.remote()


def test_spawn_get_cancel_and_from_id(client):
    call = square.spawn(9)
    assert isinstance(call.object_id, str) and call.object_id
    assert call.get() == 81
    again = nbfan.FunctionCall.from_id(call.object_id)
    assert again.get() == 81


def test_get_timeout_raises_builtin_timeout_while_running(client):
    call = sleepy.with_options(timeout=30).spawn(2)
    with pytest.raises(TimeoutError):
        call.get(timeout=0.1)
    assert call.get(timeout=30) == "woke"


def test_from_id_of_unknown_call_is_not_found(client):
    with pytest.raises(nbfan.exception.NotFoundError, match="no call"):
        nbfan.FunctionCall.from_id("0123456789abcdef0123")


def test_gather_in_argument_order_and_first_error_cancels_rest(client):
    calls = [square.spawn(i) for i in range(5)]
    assert nbfan.FunctionCall.gather(*calls) == [0, 1, 4, 9, 16]
    slow = sleepy.with_options(timeout=60).spawn(30)
    with pytest.raises(CustomError):
        nbfan.FunctionCall.gather(slow, fail.spawn(1))
    from waiting import wait_until

    wait_until(slow.done, timeout=20, what="the slow call to be cancelled")  # not left running for 30 s


def test_timeout_raises_at_deadline_and_frees_the_worker(client):
    start = time.monotonic()
    with pytest.raises(FunctionTimeoutError, match="timeout of 0.5s"):
        sleepy.remote(5)
    assert time.monotonic() - start < 4
    # a pure-Python busy loop is really stopped: both workers serve new calls at once
    with pytest.raises(FunctionTimeoutError):
        busy_loop.remote()
    assert sorted(square.map(range(4))) == [0, 1, 4, 9]


def test_retries_rerun_with_backoff_then_raise_final_failure(client, tmp_path):
    marker = tmp_path / "attempts"

    @app.function(retries=nbfan.Retries(2, initial_delay=0.05, backoff_coefficient=1.0))
    def flaky(path: str) -> int:
        with open(path, "a") as f:
            f.write("x")
        n = len(open(path).read())
        if n < 3:
            raise RuntimeError(f"attempt {n}")
        return n

    assert flaky.remote(str(marker)) == 3
    marker.unlink()

    @app.function(retries=1)
    def always(path: str) -> None:
        with open(path, "a") as f:
            f.write("x")
        raise RuntimeError("still broken")

    with pytest.raises(RuntimeError, match="still broken"):
        always.remote(str(marker))
    assert marker.read_text() == "xx"


def test_remote_on_generator_names_remote_gen(client):
    with pytest.raises(InvalidError, match="remote_gen"):
        count.remote(3)
    with pytest.raises(InvalidError, match="remote_gen"):
        count.spawn(3)


def test_remote_gen_streams_as_produced(client):
    assert list(count.remote_gen(5)) == [0, 1, 2, 3, 4]
    arrivals = []
    for i, produced_at in slow_count.remote_gen(3):
        arrivals.append(time.time() - produced_at)
    # each item arrives while the generator is still running, not all at the end
    assert len(arrivals) == 3 and max(arrivals) < 0.3 + 0.25


def test_sync_calls_work_inside_a_running_event_loop(client):
    async def cell():
        return square.remote(5), list(square.map([1, 2]))

    assert asyncio.run(cell()) == (25, [1, 4])


def test_aio_twins(client):
    async def main():
        a = await square.remote.aio(3)
        call = await square.spawn.aio(4)
        b = await call.get.aio()
        items = [x async for x in count.remote_gen.aio(3)]
        return a, b, items

    assert asyncio.run(main()) == (9, 16, [0, 1, 2])


def test_every_handle_and_object_method_has_a_working_aio_twin(client, tmp_path, monkeypatch):
    monkeypatch.setenv("NBFAN_VOLUME_ROOT", str(tmp_path))

    async def main():
        call = await square.spawn.aio(5)
        again = await nbfan.FunctionCall.from_id.aio(call.object_id)
        assert await again.get.aio() == 25 and await nbfan.FunctionCall.gather.aio(call, again) == [25, 25]
        assert await call.logs.aio() == [] and await call.failures.aio() == []
        slow = await sleepy.with_options(timeout=60).spawn.aio(30)
        await slow.cancel.aio()
        job = square.spawn_map(range(6))
        attached = await nbfan.MapCall.from_id.aio(job.object_id)
        assert [x async for x in attached.iter.aio()] == [x * x for x in range(6)]
        assert (await attached.progress.aio()).done == 6 and await attached.get.aio() == [x * x for x in range(6)]
        assert await attached.failures.aio() == []
        d = await nbfan.Dict.from_name.aio("aio-twins", create_if_missing=True)
        await d.put.aio("k", 1)
        assert await d.get.aio("k") == 1
        await nbfan.Dict.delete.aio("aio-twins")
        vol = await nbfan.Volume.from_name.aio("aio-twins", create_if_missing=True)
        (vol.path / "f.txt").write_bytes(b"hello")
        assert [e.path for e in await vol.listdir.aio("/")] == ["f.txt"]
        assert b"".join([chunk async for chunk in vol.read_file.aio("f.txt")]) == b"hello"
        await vol.remove_file.aio("f.txt")
        assert await nbfan.Volume.names.aio() == ["aio-twins"]
        return slow

    slow = asyncio.run(main())
    from waiting import wait_until

    wait_until(slow.done, timeout=20, what="the cancelled call to end")


def test_notebook_style_function_from_main_travels_by_value(client):
    from tests.conftest import run_py

    address = client.scheduler.address
    code = f"""
import nbfan
nbfan.connect({address!r})
app = nbfan.App("main")
OFFSET = 100
def helper(x):
    return x + OFFSET
@app.function
def f(x):
    return helper(x) * 2
print(f.remote(1))
"""
    result = run_py(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "202"


@app.function
def text_of(size: int) -> str:
    return "x" * size


@app.function
def result_of(call: nbfan.FunctionCall) -> int:
    return call.get(timeout=60)


def _count_fetches(dask_scheduler=None) -> None:
    """Count the scheduler's `gather` requests: how a client fetches results from workers."""
    original = dask_scheduler.handlers["gather"]

    async def counted(keys, serializers=None):
        dask_scheduler.nbfan_test_fetches += 1
        return await original(keys=keys, serializers=serializers)

    dask_scheduler.nbfan_test_fetches = 0
    dask_scheduler.nbfan_test_original_gather = original
    dask_scheduler.handlers["gather"] = counted


def _fetches(dask_scheduler=None) -> int:
    dask_scheduler.handlers["gather"] = dask_scheduler.nbfan_test_original_gather
    return dask_scheduler.nbfan_test_fetches


def test_small_results_come_pushed_with_no_fetch_and_the_scheduler_keeps_none(client):
    from nbfan.keys import EVENT_TOPIC, result_topic
    from nbfan.worker.push import PUSH_MAX_BYTES

    client.run_on_scheduler(_count_fetches)
    try:
        assert square.remote(3) == 9
        assert square.spawn(4).get(timeout=60) == 16
        assert asyncio.run(square.remote.aio(5)) == 25
        with pytest.raises(CustomError):
            fail.remote(2)  # a failure is pushed too (and telemetry hears of it)
        pushed_only = client.run_on_scheduler(_fetches)
        client.run_on_scheduler(_count_fetches)
        assert len(text_of.remote(PUSH_MAX_BYTES * 2)) == PUSH_MAX_BYTES * 2  # too large: fetched
    finally:
        fetched = client.run_on_scheduler(_fetches)
    assert pushed_only == 0
    assert fetched == 1
    # forwarded, then dropped: Dask would keep the last 100,000 of each topic
    assert client.get_events(result_topic(client.id)) == ()
    assert client.get_events(EVENT_TOPIC) == ()


@app.function
def spawn_square(x: int) -> nbfan.FunctionCall:
    return square.spawn(x)


@app.function
def spawn_squares(n: int) -> nbfan.MapCall:
    return square.spawn_map(range(n))


def test_handles_travel_into_calls_and_back_as_results(client):
    call = square.spawn(7)
    assert result_of.remote(call) == 49  # a handle given to another call re-attaches on its worker
    assert call.get(timeout=60) == 49
    assert spawn_square.remote(6).get(timeout=60) == 36  # spawned on a worker, collected here
    assert spawn_squares.remote(4).get(timeout=60) == [0, 1, 4, 9]
