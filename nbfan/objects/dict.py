"""`nbfan.Dict`: a named key-value store every caller and every function on the cluster shares.

Contents live on the scheduler (`nbfan/store.py`), so each operation is atomic under concurrent
writers. Keys and values are cloudpickled; keys compare by their pickled form (str, int, bytes,
tuples of those... behave as expected; don't use floats that equal ints, like 1.0 and 1, as
different-looking keys for the same entry).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import cloudpickle

from nbfan.engine.aio import aio_method, in_thread
from nbfan.exception import InvalidError
from nbfan.objects.named import NamedObject, StoreKind
from nbfan.scheduler.store import DICT_OP

_MISSING = object()


def _key(key: Any) -> bytes:
    try:
        return cloudpickle.dumps(key, protocol=5)
    except Exception as exc:
        raise InvalidError(f"Dict key {key!r} cannot be serialized: {exc}") from exc


def _value(value: Any) -> bytes:
    try:
        return cloudpickle.dumps(value, protocol=5)
    except Exception as exc:
        raise InvalidError(f"Dict value of type {type(value).__name__} cannot be serialized: {exc}") from exc


def with_thread_aio(sync: Any) -> aio_method[Any]:
    """A method with a `.aio` form that runs the blocking one in a thread (`await d.get.aio(k)`)."""
    async def run_in_thread(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await in_thread(sync, self, *args, **kwargs)

    return aio_method(sync, run_in_thread)


_KIND = StoreKind("Dict", DICT_OP, {"action": "contains", "key": b""})


class Dict(NamedObject):
    """A distributed dict: `Dict.from_name("cache", create_if_missing=True)` or
    `with Dict.ephemeral() as d:`. Pass it to functions (or use it as a global in them)."""

    kind = _KIND

    def _get(self, key: Any, default: Any = None) -> Any:
        """The value for `key`, or `default` when absent."""
        reply = self._call("get", key=_key(key))
        return cloudpickle.loads(reply["value"]) if reply["found"] else default
    get = with_thread_aio(_get)

    def _put(self, key: Any, value: Any, *, skip_if_exists: bool = False) -> bool:
        """Set `key`; with `skip_if_exists`, only if absent (atomic). True when written."""
        return bool(self._call("put", key=_key(key), value=_value(value), skip_if_exists=skip_if_exists)["written"])
    put = with_thread_aio(_put)

    def _pop(self, key: Any, default: Any = _MISSING) -> Any:
        """Remove `key` and return its value; KeyError when absent (unless `default` is given)."""
        reply = self._call("pop", key=_key(key))
        if reply["found"]:
            return cloudpickle.loads(reply["value"])
        if default is _MISSING:
            raise KeyError(key)
        return default
    pop = with_thread_aio(_pop)

    def _update(self, other: Mapping[Any, Any] | None = None, /, **kwargs: Any) -> None:
        """Set many keys in one atomic step."""
        pairs = {**dict(other or {}), **kwargs}
        self._call("update", items=[(_key(k), _value(v)) for k, v in pairs.items()])
    update = with_thread_aio(_update)

    def _contains(self, key: Any) -> bool:
        return bool(self._call("contains", key=_key(key))["found"])
    contains = with_thread_aio(_contains)

    def _len(self) -> int:
        return int(self._call("len")["len"])
    len = with_thread_aio(_len)

    def _clear(self) -> None:
        self._call("clear")
    clear = with_thread_aio(_clear)

    def _items_list(self) -> list[tuple[Any, Any]]:
        return [(cloudpickle.loads(k), cloudpickle.loads(v)) for k, v in self._call("items")["items"]]

    def _keys(self) -> Iterator[Any]:
        """The keys (a snapshot taken when called)."""
        return iter([k for k, _ in self._items_list()])
    keys = with_thread_aio(_keys)

    def _values(self) -> Iterator[Any]:
        return iter([v for _, v in self._items_list()])
    values = with_thread_aio(_values)

    def _items(self) -> Iterator[tuple[Any, Any]]:
        return iter(self._items_list())
    items = with_thread_aio(_items)

    def __getitem__(self, key: Any) -> Any:
        value = self._get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self._put(key, value)

    def __delitem__(self, key: Any) -> None:
        self._pop(key)

    def __contains__(self, key: Any) -> bool:
        return self._contains(key)

    def __len__(self) -> int:
        return self._len()

    def __iter__(self) -> Iterator[Any]:
        return self._keys()
