"""`nbfan.Dict` / `nbfan.Queue`: shared by the caller and functions at once, atomic under
concurrent writers on several workers."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import uuid

import pytest

import nbfan
from nbfan.exception import InvalidError, NotFoundError

app = nbfan.App("test-dict-queue")


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@app.function
def claim(d: nbfan.Dict, i: int) -> tuple[str, bool, bool]:
    """Every input writes its own key and races for two shared ones."""
    from distributed import get_worker

    d[f"k{i}"] = i
    won = d.put("winner", i, skip_if_exists=True)
    took = d.pop("token", None) is not None
    return get_worker().address, won, took


def test_dict_from_caller(client):
    d = nbfan.Dict.from_name(fresh("dict"), create_if_missing=True)
    d["a"] = {"nested": [1, 2]}
    d.put(("tuple", 1), 3.5)
    assert d["a"] == {"nested": [1, 2]} and d.get(("tuple", 1)) == 3.5
    assert d.get("missing") is None and d.get("missing", 7) == 7
    assert "a" in d and d.contains("a") and "zz" not in d
    assert d.put("a", "other", skip_if_exists=True) is False and d["a"] == {"nested": [1, 2]}
    d.update({"b": 2}, c=3)
    assert d.len() == len(d) == 4
    assert sorted(map(str, d.keys())) == ["('tuple', 1)", "a", "b", "c"]
    assert dict(d.items()) == {"a": {"nested": [1, 2]}, ("tuple", 1): 3.5, "b": 2, "c": 3}
    assert d.pop("b") == 2
    del d["c"]
    with pytest.raises(KeyError):
        d["c"]
    with pytest.raises(KeyError):
        d.pop("c")
    d.clear()
    assert d.len() == 0 and list(d.values()) == []


def test_dict_concurrent_writers_on_several_workers(client):
    d = nbfan.Dict.from_name(fresh("race"), create_if_missing=True)
    d["token"] = "only-one"
    n = 60
    results = list(claim.map([d] * n, range(n)))
    assert sum(won for _, won, _ in results) == 1  # put(skip_if_exists) is atomic
    assert sum(took for _, _, took in results) == 1  # so is pop
    assert d.get("winner") in range(n)
    assert {d[f"k{i}"] for i in range(n)} == set(range(n))
    assert len(d) == n + 1
    assert len({worker for worker, _, _ in results}) == 2  # both workers wrote


def test_dict_names_and_lifetimes(client):
    name = fresh("named")
    with pytest.raises(NotFoundError, match="create_if_missing=True"):
        nbfan.Dict.from_name(name)
    nbfan.Dict.from_name(name, create_if_missing=True)["x"] = 1
    assert nbfan.Dict.from_name(name)["x"] == 1  # the same contents, looked up again
    nbfan.Dict.delete(name)
    with pytest.raises(NotFoundError):
        nbfan.Dict.from_name(name)
    with nbfan.Dict.ephemeral() as eph:
        eph["k"] = "v"
        assert eph["k"] == "v"
    with pytest.raises(NotFoundError, match="no longer exists"):
        eph["k"]
    with pytest.raises(InvalidError, match="invalid Dict name"):
        nbfan.Dict.from_name("../x", create_if_missing=True)


@app.function
def drain(q: nbfan.Queue, results: nbfan.Queue) -> int:
    """Take items until the queue stays empty; report each item taken."""
    taken = 0
    while True:
        try:
            item = q.get(timeout=1.0)
        except queue.Empty:
            return taken
        results.put(item)
        taken += 1


@app.function
def produce(q: nbfan.Queue, start: int, count: int) -> None:
    q.put_many(range(start, start + count))


@app.function
def put_later(q: nbfan.Queue, value: str, delay: float) -> None:
    time.sleep(delay)
    q.put(value)


def test_queue_from_caller():
    with nbfan.Queue.ephemeral() as q:
        q.put(1)
        q.put_many([2, 3, 4])
        assert q.len() == 4 and len(q) == 4
        assert q.get() == 1 and q.get_many(2) == [2, 3]
        assert q.get_many(10, block=False) == [4]
        with pytest.raises(queue.Empty):
            q.get(block=False)
        with pytest.raises(queue.Empty):
            q.get(timeout=0.2)
        assert q.get_many(3, timeout=0.1) == []
        q.put("p", partition="left")
        assert q.len() == 0 and q.len(partition="left") == 1 and q.len(total=True) == 1
        assert q.get(partition="left") == "p"
        q.put_many(range(5))
        assert list(q.iterate()) == [0, 1, 2, 3, 4]  # read in place, as Modal's iterate
        assert q.len() == 5 and q.get() == 0  # still there
        q.put_many(range(5, 205))

        async def collect() -> list[int]:
            return [x async for x in q.iterate.aio()]

        assert asyncio.run(collect()) == list(range(1, 205))  # more than one read's worth
        q.get_many(100)  # taken meanwhile by a consumer: an iteration goes on from the rest
        seen = []
        for x in q.iterate():
            seen.append(x)
            if x == 150:
                q.get_many(20)  # 101..120 were already read: the iteration goes on at 151
        assert seen == list(range(101, 205))
        q.clear()
        assert q.len() == 0
        with pytest.raises(InvalidError, match="timeout"):
            q.get(timeout=-1)


def test_a_partition_is_cleared_its_ttl_after_the_last_put(client):
    from waiting import wait_until

    with nbfan.Queue.ephemeral() as q:
        q.put("kept")  # the default partition lives 24 h
        q.put_many(["a", "b"], partition="short", partition_ttl=1)
        assert q.len(partition="short") == 2
        wait_until(lambda: q.len(partition="short") == 0, timeout=30, what="the 1 s partition to be cleared")
        assert q.len() == 1 and q.get() == "kept"
        for bad in (0, -1, "1h", True):
            with pytest.raises(InvalidError, match="partition_ttl"):
                q.put(1, partition="short", partition_ttl=bad)


def test_queue_concurrent_producers_and_consumers(client):
    with nbfan.Queue.ephemeral() as jobs, nbfan.Queue.ephemeral() as done:
        list(produce.starmap([(jobs, i * 50, 50) for i in range(4)]))  # 4 producers on the workers
        assert jobs.len() == 200
        taken = list(drain.map([jobs, jobs], [done, done]))  # 2 competing consumers
        assert sum(taken) == 200
        items = done.get_many(1000, block=False)
        assert sorted(items) == list(range(200))  # each item went to exactly one consumer


def test_blocking_get_wakes_when_a_worker_puts(client):
    with nbfan.Queue.ephemeral() as q:
        call = put_later.spawn(q, "hello", 0.5)
        assert q.get(timeout=60) == "hello"
        call.get(timeout=60)


def test_queue_names_and_deletion_wakes_blocked_getters(client):
    name = fresh("queue")
    with pytest.raises(NotFoundError, match="create_if_missing=True"):
        nbfan.Queue.from_name(name)
    q = nbfan.Queue.from_name(name, create_if_missing=True)
    errors: list[BaseException] = []

    def blocked_get() -> None:
        try:
            q.get(timeout=60)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=blocked_get)
    thread.start()
    time.sleep(0.3)
    nbfan.Queue.delete(name)
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], NotFoundError)


WAITERS = 200


def test_two_hundred_async_waiters_hold_no_thread_each(client):
    """Modal programs gather many `await q.get.aio()` at once: each must wait on the event loop,
    not in a thread of a small default executor (2 threads here, as on a small machine)."""
    from concurrent.futures import ThreadPoolExecutor

    async def scenario(q: nbfan.Queue, d: nbfan.Dict) -> tuple[list[int], int, int, list[int]]:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=2))
        await q.len.aio()  # connected, plugin installed: what follows is the waiting itself
        threads_before = threading.active_count()
        getters = [asyncio.ensure_future(q.get.aio(timeout=60)) for _ in range(WAITERS)]
        await asyncio.sleep(0)  # every getter has started and sent its request
        threads_while_waiting = threading.active_count()
        await q.put_many.aio(range(WAITERS))
        got = sorted(await asyncio.gather(*getters))
        await asyncio.gather(*(d.put.aio(i, i * i) for i in range(WAITERS)))
        squares = await asyncio.gather(*(d.get.aio(i) for i in range(WAITERS)))
        return got, threads_before, threads_while_waiting, squares

    with nbfan.Queue.ephemeral() as q, nbfan.Dict.ephemeral() as d:
        got, before, waiting, squares = asyncio.run(scenario(q, d))
    assert got == list(range(WAITERS))  # every waiter got exactly one item
    assert squares == [i * i for i in range(WAITERS)]
    assert waiting <= before + 2, (before, waiting)


@app.function
async def gather_from_queue(q: nbfan.Queue, n: int) -> list[int]:
    return sorted(await asyncio.gather(*(q.get.aio(timeout=60) for _ in range(n))))


def test_async_waiters_inside_a_function(client):
    with app.run(), nbfan.Queue.ephemeral() as q:
        call = gather_from_queue.spawn(q, 50)
        q.put_many(range(50))
        assert call.get(timeout=60) == list(range(50))
