""".map / .starmap / .for_each and their .aio twins, on a real two-worker cluster."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from pathlib import Path

import pytest
from overlap import max_overlap
from remote_tb import assert_reads_like_local

import nbfan
from nbfan.exception import InvalidError

app = nbfan.App("test-map")


@app.function
def square(x: int) -> int:
    return x * x


@app.function
def add(a: int, b: int, c: int = 0) -> int:
    return a + b + c


@app.function
def none_for_odd(x: int) -> int | None:
    return None if x % 2 else x


@app.function
def slow_first(x: int) -> int:
    time.sleep(2.0 if x == 0 else 0.01)
    return x


@app.function
def reverse_sleep(x: int) -> int:
    time.sleep(0.02 * (10 - x))
    return x


@app.function
def logged(path: str, x: int, fail_at: int = -1, seconds: float = 0.1) -> int:
    """Appends its input to `path` when it starts: how the tests see what ran on the cluster."""
    with open(path, "a") as f:
        f.write(f"{x}\n")
    time.sleep(seconds)
    if x == fail_at:
        raise KeyError(f"bad input {x}")
    return x


@app.function
def timed_sleep(seconds: float) -> tuple[float, float]:
    """Sleeps `seconds`; returns when it started and ended (to measure how many ran at once)."""
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


@app.function
def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"input {x} is bad")
    return x


@app.function
def chunks(n: int):
    for i in range(n):
        yield (n, i)


def ran(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def settled_count(path: Path, quiet: float = 1.5, limit: float = 20) -> int:
    """Lines in `path` once it stopped growing for `quiet` seconds (bounded by `limit`)."""
    deadline = time.monotonic() + limit
    last = len(ran(path))
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = len(ran(path))
        if now == last:
            return now
        last = now
    raise AssertionError(f"{path} kept growing for {limit}s: the map was not stopped")


def test_results_in_input_order_even_when_later_inputs_finish_first(client):
    assert list(reverse_sleep.map(range(10))) == list(range(10))
    assert list(square.map(range(1000))) == [x * x for x in range(1000)]


def test_zip_stops_at_shortest_and_kwargs_reach_every_call(client):
    assert list(add.map([1, 2, 3], [10, 20])) == [11, 22]
    assert list(add.map(iter([1, 2]), (x for x in itertools.count()), kwargs={"c": 100})) == [101, 103]


def test_none_results_keep_their_slots(client):
    assert list(none_for_odd.map(range(6))) == [0, None, 2, None, 4, None]


def test_empty_input_finishes_at_once(client):
    assert list(square.map([])) == []
    assert list(square.map(iter(()), order_outputs=False)) == []


def test_order_outputs_false_yields_in_completion_order(client):
    results = list(slow_first.map(range(6), order_outputs=False))
    assert sorted(results) == list(range(6))
    assert results[0] != 0  # the slow input did not hold back the others (ordered output starts with it)


def test_generator_function_is_a_flat_map(client):
    results = list(chunks.map([1, 2, 3]))
    assert sorted(results) == [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]


def test_first_failure_raises_original_type_with_input_index(client):
    with pytest.raises(ValueError, match="input 3 is bad") as info:
        list(fail_on.map(range(10), kwargs={"bad": 3}))
    assert info.value.input_index == 3
    notes = "\n".join(info.value.__notes__)
    assert "input 3 of the map" in notes
    assert_reads_like_local(info.value, 'list(fail_on.map(range(10), kwargs={"bad": 3}))', "in fail_on",
                            'raise ValueError(f"input {x} is bad")')


def test_return_exceptions_puts_the_exception_in_its_slot(client):
    results = list(fail_on.map(range(5), kwargs={"bad": 2}, return_exceptions=True))
    assert results[:2] == [0, 1] and results[3:] == [3, 4]
    assert isinstance(results[2], ValueError) and results[2].input_index == 2


def test_failure_cancels_the_remaining_inputs(client, tmp_path):
    log = tmp_path / "ran"
    with pytest.raises(KeyError):
        list(logged.map(itertools.repeat(str(log), 300), range(300), kwargs={"fail_at": 3}))
    count = settled_count(log)
    assert count < 60, f"{count} inputs ran after the failure"
    assert len(ran(log)) == count  # and nothing new started since


def test_input_iterator_error_reaches_the_caller_and_stops_the_map(client, tmp_path):
    log = tmp_path / "ran"

    def inputs():
        yield from range(5)
        raise RuntimeError("the input source broke")

    with pytest.raises(RuntimeError, match="the input source broke"):
        list(logged.map(itertools.repeat(str(log)), inputs()))
    assert settled_count(log) <= 5


def test_inputs_are_consumed_lazily(client):
    pulled = 0

    def endless():
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield i

    results = square.map(endless())
    assert next(results) == 0
    first_pulled = pulled
    results.close()
    assert first_pulled < 1000, f"{first_pulled} inputs were read ahead for the first result"


def test_a_result_fetched_as_its_map_is_left_is_not_reported_lost(client, caplog):
    """A map's results are fetched as each task ends; leaving the map cancels its tasks, so a
    fetch that reaches the scheduler after the cancel fails there, and the scheduler (in the
    user's process for the embedded cluster) logs "Couldn't gather keys" as an ERROR: moot for a
    call this process cancelled, so it is dropped; any other failed fetch is still reported."""
    from nbfan.api.queries import calls_snapshot

    results = square.map(range(100))
    assert next(results) == 0
    call_id = next(c["call_id"] for c in calls_snapshot(client)["calls"] if c["function"] == "square"
                   and c["state"] == "running")
    results.close()  # cancels the call's tasks

    def fetch(call: str) -> dict:
        return client.sync(client.scheduler.gather, keys=[f"nbfan-{call}-99-1"])

    assert fetch(call_id)["status"] == "error"  # the key is gone: a late fetch of the cancelled call
    assert "Couldn't gather keys" not in caplog.text
    assert fetch("0" * 20)["status"] == "error"  # a call nobody cancelled: reported as ever
    assert "Couldn't gather keys" in caplog.text


def test_break_cancels_the_remaining_inputs(client, tmp_path):
    log = tmp_path / "ran"
    for value in logged.map(itertools.repeat(str(log), 200), range(200), kwargs={"seconds": 0.2}):
        assert value == 0
        break
    count = settled_count(log)
    assert count < 40, f"{count} of 200 inputs ran after the loop was left"


def test_slow_inputs_after_a_map_of_trivial_ones_still_run_side_by_side(client):
    """A function's next map starts from the batch size its last map learnt; slower inputs this
    time must still spread over the slots, not run one by one in one task."""
    list(timed_sleep.map([0.0] * 2000))
    runs = list(timed_sleep.map([0.3] * 4))
    assert max_overlap(runs) == 2  # the two-worker cluster's two slots


def test_starmap_and_for_each(client, tmp_path):
    assert list(add.starmap([(1, 2), (3, 4)], kwargs={"c": 1})) == [4, 8]
    with pytest.raises(InvalidError, match="tuple of arguments"):
        list(add.starmap([1, 2]))
    log = tmp_path / "ran"
    assert logged.for_each(itertools.repeat(str(log), 8), range(8), kwargs={"seconds": 0}) is None
    assert sorted(ran(log)) == list(range(8))
    with pytest.raises(KeyError):
        logged.for_each([str(log)] * 3, range(3), kwargs={"fail_at": 1, "seconds": 0})
    logged.for_each([str(log)] * 3, range(3), kwargs={"fail_at": 1, "seconds": 0}, ignore_exceptions=True)


def test_bad_arguments_are_clear_errors(client):
    with pytest.raises(InvalidError, match="at least one iterable"):
        square.map()
    with pytest.raises(InvalidError, match="not iterable"):
        square.map(5)
    with pytest.raises(InvalidError, match="kwargs"):
        square.map([1], kwargs=[1])


def test_aio_forms_accept_async_input_iterables(client, tmp_path):
    log = tmp_path / "ran"

    async def numbers(n):
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    async def main():
        mapped = [x async for x in square.map.aio(numbers(5))]
        zipped = [x async for x in add.map.aio(numbers(3), [10, 20, 30, 40])]
        unordered = sorted([x async for x in square.map.aio(numbers(4), order_outputs=False)])
        starred = [x async for x in add.starmap.aio([(1, 1), (2, 2)])]
        await logged.for_each.aio(itertools.repeat(str(log), 3), numbers(3), kwargs={"seconds": 0})
        call = await square.spawn_map.aio(numbers(4))
        spawned = await call.get.aio(timeout=60)
        return mapped, zipped, unordered, starred, spawned

    mapped, zipped, unordered, starred, spawned = asyncio.run(main())
    assert mapped == [0, 1, 4, 9, 16]
    assert zipped == [10, 21, 32]
    assert unordered == [0, 1, 4, 9]
    assert starred == [2, 4]
    assert sorted(ran(log)) == [0, 1, 2]
    assert spawned == [0, 1, 4, 9]


def test_leaving_async_for_early_cancels_the_rest(client, tmp_path):
    log = tmp_path / "ran"

    async def main():
        async for value in logged.map.aio(itertools.repeat(str(log), 200), range(200), kwargs={"seconds": 0.2}):
            return value

    assert asyncio.run(main()) == 0
    assert settled_count(log) < 40


def test_ctrl_c_cancels_the_remaining_inputs(local_cluster, tmp_path):
    import signal
    import subprocess
    import sys

    from tests.conftest import REPO

    log = tmp_path / "ran"
    code = f"""
import time
import nbfan
app = nbfan.App("interrupted")
@app.function
def logged(x):
    with open({str(log)!r}, "a") as f:
        f.write(f"{{x}}\\n")
    time.sleep(0.2)
    return x
try:
    for _ in logged.map(range(300)):
        pass
except KeyboardInterrupt:
    print("interrupted", flush=True)
    time.sleep(30)  # stay connected: only nbfan's cancel can stop the inputs now
"""
    env = {**os.environ, "NBFAN_SCHEDULER": local_cluster.scheduler_address, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(ran(log)) < 4:
            assert proc.poll() is None and time.monotonic() < deadline, "the map did not start"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        assert proc.stdout.readline().strip() == "interrupted"
        assert settled_count(log) < 40
        assert proc.poll() is None  # the caller is still connected: the cancel came from nbfan
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_progress_knows_the_total_up_front_for_sized_inputs(client):
    """Lists and ranges give progress (and the panel's ETA) their total from the start;
    a generator's total is known only once it is exhausted."""
    from nbfan import config
    from nbfan.engine import progress as progress_module

    seen: dict[str, list] = {"sized": [], "lazy": []}
    current = {"name": "sized"}

    class Sink:
        def update(self, counts):
            seen[current["name"]].append((counts.total, counts.done))

        def close(self, counts, state):
            seen[current["name"]].append((counts.total, counts.done))

    @app.function
    def slowish(x):
        time.sleep(0.05)
        return x

    old = config.progress
    config.progress = True
    progress_module.set_progress_factory(lambda label, call_id: Sink())
    try:
        assert list(slowish.map(range(20))) == list(range(20))
        current["name"] = "lazy"
        assert list(slowish.map(x for x in range(20))) == list(range(20))
    finally:
        progress_module.set_progress_factory(None)
        config.progress = old
    assert seen["sized"] and all(total == 20 for total, _ in seen["sized"])
    assert seen["lazy"][-1] == (20, 20)
