"""What type checkers see of the map family's methods (`f.map`, `f.starmap`, `f.for_each`,
`f.spawn_map`, `f.remote_gen`), whose `.aio` twins take async iterables or are async
iterators: at run time each is a descriptor pairing a blocking call with its twin
(`engine/aio.py`), as every other method is (`AioMethod` types those: `f.remote(1)` is a
`float` when `f` returns one and `f.remote("x")` is a type error). (The
decorators' types, which know `Function`, are in `decorators.py`: a Function's methods come
first, the things that make Functions after.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

if TYPE_CHECKING:
    from nbfan.engine.spawn_map import MapCall

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class RemoteGenMethod(Protocol[P, R_co]):
    """`f.remote_gen(...)`: a generator function's yields, streamed."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Iterator[R_co]: ...
    def aio(self, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[R_co]: ...


class MapMethod(Protocol[R_co]):
    """`f.map(xs, ys, ...)`: the results (a generator function's yields, flat), lazily."""

    def __call__(
        self, *iterables: Iterable[Any], kwargs: dict[str, Any] | None = None, order_outputs: bool = True,
        return_exceptions: bool = False,
    ) -> Iterator[R_co]: ...
    def aio(
        self, *iterables: Iterable[Any] | AsyncIterator[Any], kwargs: dict[str, Any] | None = None,
        order_outputs: bool = True, return_exceptions: bool = False,
    ) -> AsyncIterator[R_co]: ...


class StarmapMethod(Protocol[R_co]):
    """`f.starmap([(1, 2), (3, 4)])`: each tuple is one call's positional arguments."""

    def __call__(
        self, iterable: Iterable[tuple[Any, ...] | list[Any]], *, kwargs: dict[str, Any] | None = None,
        order_outputs: bool = True, return_exceptions: bool = False,
    ) -> Iterator[R_co]: ...
    def aio(
        self, iterable: Iterable[tuple[Any, ...] | list[Any]] | AsyncIterator[tuple[Any, ...] | list[Any]], *,
        kwargs: dict[str, Any] | None = None, order_outputs: bool = True, return_exceptions: bool = False,
    ) -> AsyncIterator[R_co]: ...


class ForEachMethod(Protocol):
    """`f.for_each(xs)`: run for side effects, wait for all."""

    def __call__(
        self, *iterables: Iterable[Any], kwargs: dict[str, Any] | None = None, ignore_exceptions: bool = False
    ) -> None: ...
    async def aio(
        self, *iterables: Iterable[Any] | AsyncIterator[Any], kwargs: dict[str, Any] | None = None,
        ignore_exceptions: bool = False,
    ) -> None: ...


class SpawnMapMethod(Protocol[R]):
    """`f.spawn_map(xs)`: a MapCall of the results, at once."""

    def __call__(self, *iterables: Iterable[Any], kwargs: dict[str, Any] | None = None) -> MapCall[R]: ...
    async def aio(
        self, *iterables: Iterable[Any] | AsyncIterator[Any], kwargs: dict[str, Any] | None = None
    ) -> MapCall[R]: ...
