"""`nbfan.Dict`: a named key-value store every caller and every function on the cluster shares.

Contents live on the scheduler (`nbfan/store.py`), so each operation is atomic under concurrent
writers. Keys and values are cloudpickled; keys compare by their pickled form (str, int, bytes,
tuples of those... behave as expected; don't use floats that equal ints, like 1.0 and 1, as
different-looking keys for the same entry).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import cloudpickle

from nbfan.cluster import current_client
from nbfan.engine.aio import aio_method, in_thread
from nbfan.exception import InvalidError, NotFoundError
from nbfan.objects.names import check_name
from nbfan.scheduler.rpc import store_call
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


class Dict:
    """A distributed dict: `Dict.from_name("cache", create_if_missing=True)` or
    `with Dict.ephemeral() as d:`. Pass it to functions (or use it as a global in them)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<nbfan.Dict {self.name!r}>"

    def __reduce__(self) -> Any:
        return (Dict, (self.name,))

    # -- lookup ---------------------------------------------------------------------------

    @staticmethod
    def from_name(name: str, *, create_if_missing: bool = False, environment_name: str | None = None,
                  client: Any = None) -> Dict:
        """The named Dict of the cluster; NotFoundError (listing the existing ones) when it does
        not exist and `create_if_missing` is False."""
        check_name(name, "Dict")
        c = client or current_client()
        if create_if_missing:
            store_call(c, DICT_OP, name=name, action="create")
        elif store_call(c, DICT_OP, name=name, action="contains", key=b"").get("missing"):
            names = store_call(c, DICT_OP, name="", action="list")["names"]
            raise NotFoundError(
                f"no Dict named {name!r} on the cluster (existing: {', '.join(names) or 'none'}); "
                f"use Dict.from_name({name!r}, create_if_missing=True) to create it"
            )
        return Dict(name)

    @staticmethod
    @contextlib.contextmanager
    def ephemeral(client: Any = None) -> Iterator[Dict]:
        """A Dict that exists for the `with` block only."""
        c = client or current_client()
        name = f"ephemeral-{uuid.uuid4().hex[:16]}"
        store_call(c, DICT_OP, name=name, action="create")
        try:
            yield Dict(name)
        finally:
            store_call(c, DICT_OP, name=name, action="delete")

    @staticmethod
    def delete(name: str, *, client: Any = None) -> None:
        """Remove a named Dict and its contents."""
        check_name(name, "Dict")
        if not store_call(client or current_client(), DICT_OP, name=name, action="delete")["found"]:
            raise NotFoundError(f"no Dict named {name!r} on the cluster")

    # -- operations -----------------------------------------------------------------------

    def _call(self, action: str, **kwargs: Any) -> dict[str, Any]:
        reply = store_call(current_client(), DICT_OP, name=self.name, action=action, **kwargs)
        if reply.get("missing"):
            raise NotFoundError(
                f"Dict {self.name!r} no longer exists on the cluster (deleted, or the scheduler restarted)"
            )
        return reply

    def _get(self, key: Any, default: Any = None) -> Any:
        """The value for `key`, or `default` when absent."""
        reply = self._call("get", key=_key(key))
        return cloudpickle.loads(reply["value"]) if reply["found"] else default

    def _put(self, key: Any, value: Any, *, skip_if_exists: bool = False) -> bool:
        """Set `key`; with `skip_if_exists`, only if absent (atomic). True when written."""
        return bool(self._call("put", key=_key(key), value=_value(value), skip_if_exists=skip_if_exists)["written"])

    def _pop(self, key: Any, default: Any = _MISSING) -> Any:
        """Remove `key` and return its value; KeyError when absent (unless `default` is given)."""
        reply = self._call("pop", key=_key(key))
        if reply["found"]:
            return cloudpickle.loads(reply["value"])
        if default is _MISSING:
            raise KeyError(key)
        return default

    def _update(self, other: Mapping[Any, Any] | None = None, /, **kwargs: Any) -> None:
        """Set many keys in one atomic step."""
        pairs = {**dict(other or {}), **kwargs}
        self._call("update", items=[(_key(k), _value(v)) for k, v in pairs.items()])

    def _contains(self, key: Any) -> bool:
        return bool(self._call("contains", key=_key(key))["found"])

    def _len(self) -> int:
        return int(self._call("len")["len"])

    def _clear(self) -> None:
        self._call("clear")

    def _items_list(self) -> list[tuple[Any, Any]]:
        return [(cloudpickle.loads(k), cloudpickle.loads(v)) for k, v in self._call("items")["items"]]

    def _keys(self) -> Iterator[Any]:
        """The keys (a snapshot taken when called)."""
        return iter([k for k, _ in self._items_list()])

    def _values(self) -> Iterator[Any]:
        return iter([v for _, v in self._items_list()])

    def _items(self) -> Iterator[tuple[Any, Any]]:
        return iter(self._items_list())

    get = with_thread_aio(_get)
    put = with_thread_aio(_put)
    pop = with_thread_aio(_pop)
    update = with_thread_aio(_update)
    contains = with_thread_aio(_contains)
    len = with_thread_aio(_len)
    clear = with_thread_aio(_clear)
    keys = with_thread_aio(_keys)
    values = with_thread_aio(_values)
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
