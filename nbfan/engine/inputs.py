"""Turning `.map(*iterables, kwargs=...)` / `.starmap(tuples)` into a lazy stream of (args, kwargs)."""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping
from typing import Any

from nbfan.exception import InvalidError
from nbfan.worker.payload import Args


def _check_iterable(value: Any, what: str, method: str) -> Iterator[Any]:
    if isinstance(value, AsyncIterable) and not isinstance(value, Iterable):
        raise InvalidError(
            f"{what} of .{method}() is an async iterable; use `.{method}.aio(...)` for async inputs, "
            f"or pass a list or a plain generator"
        )
    if isinstance(value, (str, bytes)):
        raise InvalidError(
            f"{what} of .{method}() is a {type(value).__name__}: it would map over its characters. "
            f"Wrap it in a list: .{method}([{value!r:.20}])"
        )
    try:
        return iter(value)
    except TypeError:
        raise InvalidError(
            f"{what} of .{method}() is a {type(value).__name__}, which is not iterable: pass a list, range, "
            f"or generator of inputs (one iterable per positional parameter)"
        ) from None


def check_kwargs(kwargs: Any, method: str) -> dict[str, Any]:
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise InvalidError(f"kwargs= of .{method}() must be a dict of keyword arguments, got {type(kwargs).__name__}")
    return dict(kwargs)


def sized_total(iterables: tuple[Any, ...]) -> int | None:
    """How many inputs zip(*iterables) yields, when every iterable knows its length."""
    try:
        return min(len(it) for it in iterables) if iterables else None
    except TypeError:
        return None


def map_inputs(iterables: tuple[Any, ...], kwargs: dict[str, Any], method: str = "map") -> Iterator[Args]:
    """zip(*iterables) as (args, kwargs) pairs, lazily; stops at the shortest iterable."""
    if not iterables:
        raise InvalidError(f".{method}() needs at least one iterable of inputs, e.g. f.{method}(range(10))")
    iterators = [_check_iterable(it, f"argument {i}", method) for i, it in enumerate(iterables)]
    # zip semantics (stops at the shortest), all in C: no Python frame per input
    return zip(zip(*iterators, strict=False), itertools.repeat(kwargs), strict=False)


def check_first_input(fn: Any, args: Args, label: str) -> None:
    """Bind the first input to the function's signature here, so a map with the wrong number of
    iterables (or starmap tuples of the wrong length) fails before anything runs, with a hint."""
    try:
        # not follow_wrapped: a decorator's (*args, **kwargs) wrapper may take other arguments than
        # the function it wraps, and its real signature accepts anything
        signature = inspect.signature(fn, follow_wrapped=False)
    except (TypeError, ValueError):  # builtins and some callables have no signature: let them run
        return
    try:
        signature.bind(*args[0], **args[1])
    except TypeError as exc:
        method = label.rsplit(".", 1)[-1]
        if method == "starmap":
            hint = "each tuple holds the positional arguments of one call, e.g. f.starmap([(1, 2), (3, 4)]) for f(x, y)"
        else:
            hint = (
                f"give .{method}() one iterable per positional parameter (zipped), e.g. f.{method}(xs, ys) for "
                f"f(x, y), and arguments that stay the same through kwargs={{...}}"
            )
        name = getattr(fn, "__name__", "function")
        raise InvalidError(f"{label}: input 0 does not fit {name}{signature}: {exc}. {hint}") from None


def starmap_inputs(iterable: Any, kwargs: dict[str, Any]) -> Iterator[Args]:
    """Each item of `iterable` is a tuple of positional arguments."""
    iterator = _check_iterable(iterable, "the argument", "starmap")

    def generate() -> Iterator[Args]:
        for index, item in enumerate(iterator):
            if isinstance(item, (str, bytes)) or not isinstance(item, Iterable):
                raise InvalidError(
                    f".starmap() input {index} is a {type(item).__name__}, not a tuple of arguments: "
                    f"starmap takes tuples, e.g. f.starmap([(1, 2), (3, 4)]); for one argument per call use .map()"
                )
            yield tuple(item), kwargs

    return generate()


def _sync_inputs_from_async(aiterable: Any, loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    """Read an async iterable from the engine's thread, one item at a time, on the caller's loop."""
    aiterator = aiterable.__aiter__()
    while True:
        try:
            yield asyncio.run_coroutine_threadsafe(aiterator.__anext__(), loop).result()
        except StopAsyncIteration:
            return


def as_sync_iterables(iterables: tuple[Any, ...]) -> tuple[Any, ...]:
    loop = asyncio.get_running_loop()
    return tuple(
        _sync_inputs_from_async(it, loop) if hasattr(it, "__aiter__") and not hasattr(it, "__iter__") else it
        for it in iterables
    )
