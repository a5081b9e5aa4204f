"""The `.map` family as Function methods (`f.map`, `f.starmap`, `f.for_each`, `f.spawn_map`),
each with its `.aio` twin: argument checks here, the work in engine.run_map / spawn_map."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from nbfan.engine.aio import aio_method, connected, in_thread, iterate_in_thread, user_iterator
from nbfan.engine.caller_loop import run_map
from nbfan.engine.inputs import as_sync_iterables, check_kwargs, map_inputs, sized_total, starmap_inputs

if TYPE_CHECKING:
    from nbfan.engine.target import CallTarget


def _map(
    self: CallTarget,
    *iterables: Any,
    kwargs: dict[str, Any] | None = None,
    order_outputs: bool = True,
    return_exceptions: bool = False,
) -> Iterator[Any]:
    """Run the function over the inputs in parallel (zip semantics), results in input order
    (or completion order with `order_outputs=False`). Lazy: work starts when you iterate.
    Generator functions are flat-mapped: every yield of every input, as produced."""
    inputs = map_inputs(iterables, check_kwargs(kwargs, "map"), "map")
    return user_iterator(run_map(
        self, inputs, order_outputs=order_outputs, return_exceptions=return_exceptions, label=f"{self.name}.map",
        total=sized_total(iterables),
    ))


async def _map_aio(
    self: CallTarget,
    *iterables: Any,
    kwargs: dict[str, Any] | None = None,
    order_outputs: bool = True,
    return_exceptions: bool = False,
) -> AsyncIterator[Any]:
    sync_iterables = as_sync_iterables(iterables)
    await connected()
    inputs = map_inputs(sync_iterables, check_kwargs(kwargs, "map"), "map")
    async for value in _results_in_thread(self, inputs, order_outputs, return_exceptions, "map"):
        yield value


def _starmap(
    self: CallTarget, iterable: Any, *, kwargs: dict[str, Any] | None = None, order_outputs: bool = True,
    return_exceptions: bool = False,
) -> Iterator[Any]:
    """Like map, but each input is a tuple of positional arguments: f.starmap([(1, 2), (3, 4)])."""
    inputs = starmap_inputs(iterable, check_kwargs(kwargs, "starmap"))
    return user_iterator(run_map(
        self, inputs, order_outputs=order_outputs, return_exceptions=return_exceptions, label=f"{self.name}.starmap",
        total=sized_total((iterable,)),
    ))


async def _starmap_aio(
    self: CallTarget, iterable: Any, *, kwargs: dict[str, Any] | None = None, order_outputs: bool = True,
    return_exceptions: bool = False,
) -> AsyncIterator[Any]:
    (sync_iterable,) = as_sync_iterables((iterable,))
    await connected()
    inputs = starmap_inputs(sync_iterable, check_kwargs(kwargs, "starmap"))
    async for value in _results_in_thread(self, inputs, order_outputs, return_exceptions, "starmap"):
        yield value


def _results_in_thread(
    function: CallTarget, inputs: Any, order_outputs: bool, return_exceptions: bool, method: str
) -> AsyncIterator[Any]:
    """A map's results for an `async for`: the map loop runs in a thread of its own."""
    results = run_map(
        function, inputs, order_outputs=order_outputs, return_exceptions=return_exceptions,
        label=f"{function.name}.{method}",
    )
    return iterate_in_thread(results)


def _for_each(
    self: CallTarget, *iterables: Any, kwargs: dict[str, Any] | None = None, ignore_exceptions: bool = False
) -> None:
    """Run the function over the inputs for its side effects; block until all are done."""
    inputs = map_inputs(iterables, check_kwargs(kwargs, "for_each"), "for_each")
    results = run_map(
        self, inputs, order_outputs=False, return_exceptions=ignore_exceptions, label=f"{self.name}.for_each",
        total=sized_total(iterables),
    )
    for _ in results:
        pass


async def _for_each_aio(
    self: CallTarget, *iterables: Any, kwargs: dict[str, Any] | None = None, ignore_exceptions: bool = False
) -> None:
    async for _ in _map_aio(self, *iterables, kwargs=kwargs, order_outputs=False, return_exceptions=ignore_exceptions):
        pass


def _spawn_map(self: CallTarget, *iterables: Any, kwargs: dict[str, Any] | None = None) -> Any:
    """Start the map on the cluster and return at once; it goes on after this process exits."""
    from nbfan.engine.spawn_map import spawn_map

    return spawn_map(self, map_inputs(iterables, check_kwargs(kwargs, "spawn_map"), "spawn_map"))


async def _spawn_map_aio(self: CallTarget, *iterables: Any, kwargs: dict[str, Any] | None = None) -> Any:
    sync_iterables = as_sync_iterables(iterables)
    return await in_thread(_spawn_map, self, *sync_iterables, kwargs=kwargs)


map_method: aio_method[..., Any] = aio_method(_map, _map_aio)
starmap_method: aio_method[..., Any] = aio_method(_starmap, _starmap_aio)
for_each_method: aio_method[..., Any] = aio_method(_for_each, _for_each_aio)
spawn_map_method: aio_method[..., Any] = aio_method(_spawn_map, _spawn_map_aio)


