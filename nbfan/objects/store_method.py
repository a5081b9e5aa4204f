"""Methods of Dicts and Queues written once, run blocking or async.

A method is written as a generator that yields the store requests it needs, `(action,
arguments, waits)`, and receives each reply; it returns the method's result. `store_method`
drives it with blocking requests for `q.get(...)` and with awaited ones for
`await q.get.aio(...)`, which hold no thread while the store answers (a thousand coroutines
can wait on one queue). `waits`: the request may block for long (a `get` waiting for an
item), so a blocking call made inside a task leaves its worker slot meanwhile.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Generator
from typing import Any, Concatenate, ParamSpec, TypeVar

from nbfan.engine.aio import aio_method
from nbfan.worker.waiting import waiting_for_the_cluster

T = TypeVar("T")
P = ParamSpec("P")
Request = tuple[str, dict[str, Any], bool]
Steps = Generator[Request, dict[str, Any], T]


def store_method(steps: Callable[Concatenate[Any, P], Steps[T]]) -> aio_method[P, T]:
    """A method with an async twin under `.aio`, from the generator that says what it asks."""

    @functools.wraps(steps)
    def blocking(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> T:
        plan = steps(self, *args, **kwargs)
        reply: Any = None
        while True:
            try:
                action, arguments, waits = plan.send(reply)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            with waiting_for_the_cluster() if waits else contextlib.nullcontext():
                reply = self._call(action, **arguments)

    @functools.wraps(steps)
    async def awaited(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> T:
        plan = steps(self, *args, **kwargs)
        reply: Any = None
        while True:
            try:
                action, arguments, _waits = plan.send(reply)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            reply = await self._call_async(action, **arguments)

    return aio_method(blocking, awaited)
