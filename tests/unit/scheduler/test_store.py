"""The scheduler's store of Dicts and Queues, driven directly (no cluster): each action
atomic, each reply a dict, a missing name said so."""

from __future__ import annotations

import asyncio

from nbfan.scheduler.store import Store


def test_dict_actions() -> None:
    store = Store()
    assert store.dict_op("d", "get", key=b"k") == {"ok": False, "missing": True}
    assert store.dict_op("d", "create") == {"ok": True, "created": True}
    assert store.dict_op("d", "put", key=b"k", value=b"v")["written"]
    assert not store.dict_op("d", "put", key=b"k", value=b"w", skip_if_exists=True)["written"]
    assert store.dict_op("d", "get", key=b"k") == {"ok": True, "found": True, "value": b"v"}
    store.dict_op("d", "update", items=[(b"a", b"1"), (b"b", b"2")])
    assert store.dict_op("d", "len")["len"] == 3 and store.dict_op("d", "contains", key=b"a")["found"]
    assert store.dict_op("d", "pop", key=b"a")["value"] == b"1"
    assert sorted(k for k, _ in store.dict_op("d", "items")["items"]) == [b"b", b"k"]
    store.dict_op("d", "clear")
    assert store.dict_op("d", "len")["len"] == 0
    assert store.dict_op("", "list")["names"] == ["d"]
    assert "unknown dict action" in store.dict_op("d", "explode")["error"]


def test_queue_get_waits_for_a_put_and_each_item_goes_to_one_getter() -> None:
    async def main() -> list[object]:
        store = Store()
        await store.queue_op(name="q", action="create")
        getters = [asyncio.ensure_future(store.queue_op(name="q", action="get", timeout=5)) for _ in range(2)]
        await asyncio.sleep(0.01)
        await store.queue_op(name="q", action="put", values=[b"a", b"b"])
        got = await asyncio.gather(*getters)
        empty = await store.queue_op(name="q", action="get", block=False)
        return [sorted(v for g in got for v in g["values"]), empty]

    values, empty = asyncio.run(main())
    assert values == [b"a", b"b"] and empty == {"ok": True, "values": []}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_dict_entry_expires_seven_days_after_its_last_read_or_write() -> None:
    from nbfan.scheduler.store import DICT_ENTRY_TTL, DICT_SWEEP_INTERVAL

    store, clock = Store(), Clock()
    store.clock = clock
    store.dict_op("d", "create")
    store.dict_op("d", "update", items=[(b"read", b"1"), (b"idle", b"2"), (b"written", b"3")])
    clock.now += DICT_ENTRY_TTL - 10
    store.dict_op("d", "get", key=b"read")
    store.dict_op("d", "put", key=b"written", value=b"4")
    clock.now += 10  # "idle" is now 7 days unused; the others were used 10 s ago
    store.expire()
    assert sorted(k for k, _ in store.dict_op("d", "items")["items"]) == [b"read", b"written"]
    clock.now += DICT_ENTRY_TTL - 1  # items() counted as a use of every entry
    store.expire()
    assert store.dict_op("d", "len")["len"] == 2
    clock.now += 1 + DICT_SWEEP_INTERVAL
    store.expire()
    assert store.dict_op("d", "len")["len"] == 0
    assert store.dict_op("d", "get", key=b"read")["found"] is False


def test_a_queue_partition_is_cleared_its_ttl_after_the_last_put() -> None:
    from nbfan.scheduler.store import QUEUE_PARTITION_TTL

    store, clock = Store(), Clock()
    store.clock = clock

    async def main() -> None:
        await store.queue_op(name="q", action="create")
        await store.queue_op(name="q", action="put", values=[b"a"])  # the default: 24 h
        await store.queue_op(name="q", action="put", partition="short", values=[b"s"], partition_ttl=10)
        clock.now += 9
        await store.queue_op(name="q", action="put", partition="short", values=[b"t"], partition_ttl=10)
        clock.now += 9  # 18 s after the first put, 9 after the last
        store.expire()
        assert (await store.queue_op(name="q", action="len", partition="short"))["len"] == 2
        clock.now += 1
        store.expire()
        assert (await store.queue_op(name="q", action="len", partition="short"))["len"] == 0
        assert (await store.queue_op(name="q", action="len"))["len"] == 1
        clock.now += QUEUE_PARTITION_TTL
        store.expire()
        assert (await store.queue_op(name="q", action="len", total=True))["len"] == 0

    asyncio.run(main())
