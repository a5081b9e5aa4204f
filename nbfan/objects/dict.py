"""`nbfan.Dict`: a named key-value store every caller and every function on the cluster shares.

Contents live on the scheduler (`nbfan/scheduler/store.py`), so each operation is atomic under concurrent
writers. Keys and values are cloudpickled; keys compare by their pickled form (str, int, bytes,
tuples of those... behave as expected; don't use floats that equal ints, like 1.0 and 1, as
different-looking keys for the same entry).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import cloudpickle

from nbfan.exception import InvalidError
from nbfan.objects.store_method import Steps, store_method
from nbfan.objects.stored_object import NamedObject, StoreKind
from nbfan.scheduler.store import DICT_OP


class _Missing:
    """The default of `pop`: no default, raise KeyError."""


_MISSING = _Missing()
#: Key and value types (`d: nbfan.Dict[str, int] = nbfan.Dict.from_name(...)`); unnamed, they
#: are unchecked, as in Modal. The defaults are for type checkers only: workers of a stock Dask
#: cluster (nbfan shipped to them) may lack typing_extensions, and typing's TypeVar takes a
#: default from Python 3.13 on.
if TYPE_CHECKING:
    from typing_extensions import TypeVar as DefaultedTypeVar

    K = DefaultedTypeVar("K", default=Any)
    V = DefaultedTypeVar("V", default=Any)
else:
    K = TypeVar("K")
    V = TypeVar("V")


def _key(key: object) -> bytes:
    try:
        return cast(bytes, cloudpickle.dumps(key, protocol=5))
    except Exception as exc:
        raise InvalidError(f"Dict key {key!r} cannot be serialized: {exc}") from exc


def _value(value: object) -> bytes:
    try:
        return cast(bytes, cloudpickle.dumps(value, protocol=5))
    except Exception as exc:
        raise InvalidError(f"Dict value of type {type(value).__name__} cannot be serialized: {exc}") from exc


def _items_list_steps(_dict: Dict[K, V]) -> Steps[list[tuple[K, V]]]:
    reply = yield "items", {}, False
    return [(cloudpickle.loads(k), cloudpickle.loads(v)) for k, v in reply["items"]]


_KIND = StoreKind("Dict", DICT_OP, {"action": "contains", "key": b""})


class Dict(NamedObject, Generic[K, V]):
    """A distributed dict: `Dict.from_name("cache", create_if_missing=True)` or
    `with Dict.ephemeral() as d:`. Pass it to functions (or use it as a global in them)."""

    kind = _KIND

    @store_method
    def get(self, key: K, default: V | None = None) -> Steps[V | None]:
        """The value for `key`, or `default` when absent."""
        reply = yield "get", {"key": _key(key)}, False
        return cloudpickle.loads(reply["value"]) if reply["found"] else default

    @store_method
    def put(self, key: K, value: V, *, skip_if_exists: bool = False) -> Steps[bool]:
        """Set `key`; with `skip_if_exists`, only if absent (atomic). True when written."""
        reply = yield "put", {"key": _key(key), "value": _value(value), "skip_if_exists": skip_if_exists}, False
        return bool(reply["written"])

    @store_method
    def pop(self, key: K, default: V | _Missing = _MISSING) -> Steps[V]:
        """Remove `key` and return its value; KeyError when absent (unless `default` is given)."""
        reply = yield "pop", {"key": _key(key)}, False
        if reply["found"]:
            return cast(V, cloudpickle.loads(reply["value"]))
        if isinstance(default, _Missing):
            raise KeyError(key)
        return default

    @store_method
    def update(self, other: Mapping[K, V] | None = None, /, **kwargs: V) -> Steps[None]:
        """Set many keys in one atomic step."""
        pairs = [*(other or {}).items(), *kwargs.items()]  # later ones win, as in dict.update
        yield "update", {"items": [(_key(k), _value(v)) for k, v in pairs]}, False

    @store_method
    def contains(self, key: K) -> Steps[bool]:
        """Whether `key` is present."""
        reply = yield "contains", {"key": _key(key)}, False
        return bool(reply["found"])

    @store_method
    def len(self) -> Steps[int]:
        """How many keys there are."""
        reply = yield "len", {}, False
        return int(reply["len"])

    @store_method
    def clear(self) -> Steps[None]:
        """Remove every key."""
        yield "clear", {}, False

    @store_method
    def keys(self) -> Steps[Iterator[K]]:
        """The keys (a snapshot taken when called)."""
        items = yield from _items_list_steps(self)
        return iter([k for k, _ in items])

    @store_method
    def values(self) -> Steps[Iterator[V]]:
        """The values (a snapshot taken when called)."""
        items = yield from _items_list_steps(self)
        return iter([v for _, v in items])

    @store_method
    def items(self) -> Steps[Iterator[tuple[K, V]]]:
        """The (key, value) pairs (a snapshot taken when called)."""
        items = yield from _items_list_steps(self)
        return iter(items)

    def __getitem__(self, key: K) -> V:
        reply = self._call("get", key=_key(key))
        if not reply["found"]:
            raise KeyError(key)
        return cast(V, cloudpickle.loads(reply["value"]))

    def __setitem__(self, key: K, value: V) -> None:
        self.put(key, value)

    def __delitem__(self, key: K) -> None:
        self.pop(key)

    def __contains__(self, key: object) -> bool:
        return self.contains(cast(K, key))

    def __len__(self) -> int:
        return self.len()

    def __iter__(self) -> Iterator[K]:
        return self.keys()
