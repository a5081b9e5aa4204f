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
