"""What Dicts and Queues share: a name on the cluster's store, looked up or created, made for
a `with` block only, deleted, and requests on it that say clearly when it is gone."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:
    from typing_extensions import Self  # not at run time: stock clusters' workers may lack it

from nbfan.cluster import get_client, get_client_now
from nbfan.engine.aio import class_twin
from nbfan.exception import NotFoundError
from nbfan.objects.name_rules import check_name
from nbfan.scheduler.rpc import store_call, store_call_async


class StoreKind:
    """One kind of named object in the scheduler's store ("Dict" under the "dict" request...).
    `probe`: a cheap request that answers `missing` when the name does not exist."""

    def __init__(self, kind: str, op: str, probe: dict[str, Any]) -> None:
        self.kind = kind
        self.op = op
        self.probe = probe

    def open(self, name: str, create_if_missing: bool, client: Any = None) -> str:
        """`name`, checked and existing (created when asked); NotFoundError listing the others."""
        check_name(name, self.kind)
        c = client or get_client()
        if create_if_missing:
            store_call(c, self.op, name=name, action="create")
        elif store_call(c, self.op, name=name, **self.probe).get("missing"):
            names = store_call(c, self.op, name="", action="list")["names"]
            raise NotFoundError(
                f"no {self.kind} named {name!r} on the cluster (existing: {', '.join(names) or 'none'}); "
                f"use {self.kind}.from_name({name!r}, create_if_missing=True) to create it"
            )
        return name

    @contextlib.contextmanager
    def ephemeral(self, client: Any = None) -> Iterator[str]:
        """A fresh name that exists for the `with` block only."""
        c = client or get_client()
        name = f"ephemeral-{uuid.uuid4().hex[:16]}"
        store_call(c, self.op, name=name, action="create")
        try:
            yield name
        finally:
            store_call(c, self.op, name=name, action="delete")

    def delete(self, name: str, client: Any = None) -> None:
        """Remove the name and its contents; NotFoundError when there is none."""
        check_name(name, self.kind)
        if not store_call(client or get_client(), self.op, name=name, action="delete")["found"]:
            raise NotFoundError(f"no {self.kind} named {name!r} on the cluster")

    def call(self, name: str, action: str, **kwargs: Any) -> dict[str, Any]:
        """One action on the named object; NotFoundError once it no longer exists."""
        return self._checked(name, store_call(get_client(), self.op, name=name, action=action, **kwargs))

    async def call_async(self, name: str, action: str, **kwargs: Any) -> dict[str, Any]:
        """`call` for coroutines: waits for the store without holding a thread."""
        client = get_client_now() or await asyncio.to_thread(get_client)  # connecting happens off the loop
        return self._checked(name, await store_call_async(client, self.op, name=name, action=action, **kwargs))

    def _checked(self, name: str, reply: dict[str, Any]) -> dict[str, Any]:
        if reply.get("missing"):
            raise NotFoundError(
                f"{self.kind} {name!r} no longer exists on the cluster (deleted, or the scheduler restarted)"
            )
        return reply


N = TypeVar("N", bound="NamedObject")


class NamedObject:
    """A Dict or a Queue: only its name travels (to functions, to other processes); its contents
    stay in the scheduler's store."""

    kind: ClassVar[StoreKind]

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<nbfan.{self.kind.kind} {self.name!r}>"

    def __reduce__(self) -> Any:
        return (type(self), (self.name,))

    if TYPE_CHECKING:  # type checkers cannot bind `type[Self]` through a descriptor: they see no `.aio`

        @classmethod
        def from_name(cls, name: str, *, create_if_missing: bool = False, environment_name: str | None = None,
                      client: Any = None) -> Self:
            """The named object of the cluster (below)."""

        @classmethod
        def delete(cls, name: str, *, client: Any = None) -> None:
            """Remove a named object (below)."""
    else:  # with their async twins: `await nbfan.Dict.from_name.aio(...)`

        @class_twin
        def from_name(cls, name, *, create_if_missing=False, environment_name=None, client=None):
            """The named object of the cluster; NotFoundError (listing the existing ones) when it
            does not exist and `create_if_missing` is False."""
            return cls(cls.kind.open(name, create_if_missing, client))

        @class_twin
        def delete(cls, name, *, client=None):
            """Remove a named object and its contents (a Queue's blocked getters raise NotFoundError)."""
            cls.kind.delete(name, client)

    @classmethod
    @contextlib.contextmanager
    def ephemeral(cls: type[N], client: Any = None) -> Iterator[N]:
        """An object that exists for the `with` block only."""
        with cls.kind.ephemeral(client) as name:
            yield cls(name)

    def _call(self, action: str, **kwargs: Any) -> dict[str, Any]:
        return self.kind.call(self.name, action, **kwargs)

    async def _call_async(self, action: str, **kwargs: Any) -> dict[str, Any]:
        return await self.kind.call_async(self.name, action, **kwargs)
