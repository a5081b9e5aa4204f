"""`nbfan.Queue`: a named FIFO queue shared by callers and functions on the cluster.

Items live on the scheduler (`nbfan/scheduler/store.py`); `get` blocks there (not by polling), and each
item goes to exactly one getter however many compete. Values are cloudpickled. Partitions
(`partition="key"`) are separate FIFOs inside one queue, as in Modal.
"""

from __future__ import annotations

import queue as _queue
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import cloudpickle

from nbfan.engine.aio import iter_twin
from nbfan.exception import InvalidError
from nbfan.objects.store_method import Steps, store_method
from nbfan.objects.stored_object import NamedObject, StoreKind
from nbfan.scheduler.store import QUEUE_OP

#: The items' type (`q: nbfan.Queue[Job] = nbfan.Queue.from_name(...)`); unnamed, unchecked as in Modal.
if TYPE_CHECKING:  # the default is for type checkers only (see nbfan/objects/dict.py)
    from typing_extensions import TypeVar as DefaultedTypeVar

    V = DefaultedTypeVar("V", default=Any)
else:
    V = TypeVar("V")
V_co = TypeVar("V_co", covariant=True)


def _check_partition(partition: str | None) -> str | None:
    if partition is not None and (not isinstance(partition, str) or not partition or len(partition) > 64):
        raise InvalidError(f"invalid partition {partition!r}: give a non-empty string of at most 64 characters")
    return partition


def _check_timeout(timeout: float | None) -> float | None:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0):
        raise InvalidError(f"invalid timeout={timeout!r}: give seconds >= 0, or None to wait forever")
    return timeout


def _check_ttl(partition_ttl: float | None) -> float | None:
    if partition_ttl is not None and (isinstance(partition_ttl, bool) or not isinstance(partition_ttl, (int, float))
                                      or partition_ttl <= 0):
        raise InvalidError(f"invalid partition_ttl={partition_ttl!r}: give seconds > 0 (the default is 24 hours)")
    return partition_ttl


def _take(n: int, block: bool, timeout: float | None, partition: str | None) -> Steps[list[V]]:
    """Up to `n` items; a blocking take may wait long (see store_method's `waits`)."""
    timeout, partition = _check_timeout(timeout), _check_partition(partition)
    reply = yield "get", {"n": n, "block": block, "timeout": timeout, "partition": partition}, block
    return [cloudpickle.loads(b) for b in reply["values"]]


_KIND = StoreKind("Queue", QUEUE_OP, {"action": "len"})
PEEK_ITEMS = 100  # items an iterate reads per request


class Queue(NamedObject, Generic[V]):
    """A distributed FIFO: `Queue.from_name("jobs", create_if_missing=True)` or
    `with Queue.ephemeral() as q:`. `get` raises `queue.Empty` when nothing arrives in time."""

    kind = _KIND

    @store_method
    def put(self, v: V, block: bool = True, timeout: float | None = None, *, partition: str | None = None,
            partition_ttl: float | None = None) -> Steps[None]:
        """Add one item (the queue is unbounded: `block`/`timeout` are accepted for Modal's signature).
        The partition is cleared `partition_ttl` seconds (24 h by default) after its last put."""
        yield "put", {"values": [cloudpickle.dumps(v, protocol=5)], "partition": _check_partition(partition),
                      "partition_ttl": _check_ttl(partition_ttl)}, False

    @store_method
    def put_many(self, vs: Iterable[V], block: bool = True, timeout: float | None = None, *,
                 partition: str | None = None, partition_ttl: float | None = None) -> Steps[None]:
        """Add many items in order, in one step (`partition_ttl` as in `put`)."""
        partition, partition_ttl = _check_partition(partition), _check_ttl(partition_ttl)
        blobs = [cloudpickle.dumps(v, protocol=5) for v in vs]
        yield "put", {"values": blobs, "partition": partition, "partition_ttl": partition_ttl}, False

    @store_method
    def get(self, block: bool = True, timeout: float | None = None, *, partition: str | None = None) -> Steps[V]:
        """The oldest item, removed. Waits up to `timeout` seconds (forever with None) when
        `block`; raises `queue.Empty` when there is none."""
        values: list[V] = yield from _take(1, block, timeout, partition)
        if not values:
            raise _queue.Empty(
                f"Queue {self.name!r} is empty" + (f" after waiting {timeout:g}s" if block and timeout else "")
            )
        return values[0]

    @store_method
    def get_many(self, n_values: int, block: bool = True, timeout: float | None = None, *,
                 partition: str | None = None) -> Steps[list[V]]:
        """Up to `n_values` items: waits (as `get`) for the first, then takes what is there.
        An empty list when none arrived in time."""
        if isinstance(n_values, bool) or not isinstance(n_values, int) or n_values < 1:
            raise InvalidError(f"get_many(n_values={n_values!r}): give an int >= 1")
        return (yield from _take(n_values, block, timeout, partition))

    @store_method
    def len(self, *, partition: str | None = None, total: bool = False) -> Steps[int]:
        """Items waiting (in `partition`, or in all partitions with `total=True`)."""
        reply = yield "len", {"partition": _check_partition(partition), "total": total}, False
        return int(reply["len"])

    @store_method
    def clear(self, *, partition: str | None = None, all: bool = False) -> Steps[None]:
        """Drop the items of `partition` (or of every partition with `all=True`)."""
        yield "clear", {"partition": _check_partition(partition), "total": all}, False

    @store_method
    def _peek(self, cursor: int, wait: float, partition: str | None) -> Steps[tuple[list[V], int]]:
        """The items from `cursor` on (read, not taken: up to PEEK_ITEMS), and the cursor after them."""
        partition = _check_partition(partition)
        reply = yield "peek", {"cursor": cursor, "n": PEEK_ITEMS, "block": wait > 0, "timeout": wait,
                               "partition": partition}, wait > 0
        return [cloudpickle.loads(b) for b in reply["values"]], int(reply["cursor"])

    async def _iterate_aio(self, *, partition: str | None = None, item_poll_timeout: float = 0.0) -> AsyncIterator[V]:
        cursor = 0
        while True:
            values, cursor = await self._peek.aio(cursor, item_poll_timeout, partition)
            if not values:
                return
            for value in values:
                yield value

    @iter_twin(aio=_iterate_aio)
    def iterate(self, *, partition: str | None = None, item_poll_timeout: float = 0.0) -> Iterator[V]:
        """Every item of the partition, oldest first, left in the queue (as Modal's `iterate`:
        read, not taken); waits up to `item_poll_timeout` seconds for a next one, then ends."""
        cursor = 0
        while True:
            values, cursor = self._peek(cursor, item_poll_timeout, partition)
            if not values:
                return
            yield from values

    def __len__(self) -> int:
        return self.len()
