"""Every blocking method gets an async twin under `.aio` (`await f.remote.aio(x)`)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

from distributed import Future

from nbfan.worker.tracebacks import hide_nbfan_frames

T = TypeVar("T")
P = ParamSpec("P")
F = TypeVar("F", bound=Callable[..., Any])


def user_facing(fn: F) -> F:
    """Mark a function users call: an nbfan error or a remote failure it raises reaches them
    without nbfan's own frames (see worker/tracebacks.py). Works on plain functions,
    coroutine functions and (async) generator functions."""
    if inspect.isasyncgenfunction(fn):
        return functools.wraps(fn)(lambda *args, **kwargs: user_async_iterator(fn(*args, **kwargs)))  # type: ignore[return-value]
    if inspect.isgeneratorfunction(fn):
        return functools.wraps(fn)(lambda *args, **kwargs: user_iterator(fn(*args, **kwargs)))  # type: ignore[return-value]
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def coro_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except BaseException as exc:
                hide_nbfan_frames(exc)
                raise

        return coro_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            hide_nbfan_frames(exc)
            raise

    return wrapper  # type: ignore[return-value]


def user_iterator(iterator: Iterator[T]) -> Iterator[T]:
    """Iterate `iterator` as users do: failures arrive without nbfan's frames."""
    try:
        yield from iterator
    except BaseException as exc:
        hide_nbfan_frames(exc)
        raise


async def user_async_iterator(iterator: AsyncIterator[T]) -> AsyncIterator[T]:
    """`user_iterator` for async iterators."""
    try:
        async for item in iterator:
            yield item
    except BaseException as exc:
        hide_nbfan_frames(exc)
        raise



class BoundAio(Generic[P, T]):
    # A method of an object with its async twin: `obj.m(...)` blocks, `await obj.m.aio(...)` does not.
    __slots__ = ("__doc__", "__name__", "__wrapped__", "_sync", "aio")

    def __init__(self, sync: Callable[P, T], aio: Callable[P, Any]) -> None:
        self._sync = sync
        self.aio: Callable[P, Coroutine[Any, Any, T]] = user_facing(aio)
        self.__doc__ = sync.__doc__
        self.__name__ = getattr(sync, "__name__", "method")
        self.__wrapped__ = sync

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return self._sync(*args, **kwargs)
        except BaseException as exc:  # the user's call line leads straight to the cause
            hide_nbfan_frames(exc)
            raise

    def __repr__(self) -> str:
        return f"<nbfan method {self.__name__} (async twin: .aio)>"


class aio_method(Generic[P, T]):
    """Descriptor pairing a blocking method with its async twin: `obj.m(...)`, `await obj.m.aio(...)`.
    Type checkers see the blocking method's parameters (after `self`) and result on both."""

    def __init__(self, sync: Callable[Concatenate[Any, P], T], aio: Callable[..., Any]) -> None:
        self._sync = sync
        self._aio = aio
        functools.update_wrapper(self, sync)  # type: ignore[arg-type]

    def __set_name__(self, owner: type, name: str) -> None:
        self.__name__ = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> aio_method[P, T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> BoundAio[P, T]: ...

    def __get__(self, obj: object, owner: type | None = None) -> aio_method[P, T] | BoundAio[P, T]:
        if obj is None:
            return self
        return BoundAio(self._sync.__get__(obj, owner), self._aio.__get__(obj, owner))


async def wait_future(future: Future[Any]) -> None:
    """Wait for a Dask future from an asyncio loop without holding a thread."""
    if future.done():
        return
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not waiter.done():
            waiter.set_result(None)

    def wake(_: Any) -> None:
        loop.call_soon_threadsafe(settle)

    future.add_done_callback(wake)
    await waiter


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking step off the event loop in a thread of its own: never in the loop's
    shared default executor, which a few long waits would fill, leaving every other `.aio`
    call of the program queued behind them (a deadlock when those are what the waits need)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if done.cancelled():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def run() -> None:
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=run, name="nbfan-aio", daemon=True).start()
    return await done


async def connected() -> None:
    """Make sure this process is connected before an async call, without blocking the loop
    (the first use may connect, or start the embedded cluster); free once connected."""
    from nbfan.cluster import get_client, get_client_now

    if get_client_now() is None:
        await in_thread(get_client)


_DONE = object()


async def iterate_in_thread(iterator: Iterator[Any], buffer: int = 1024) -> AsyncIterator[Any]:
    """Drive a blocking iterator from a worker thread and yield its items to the event loop.

    Leaving the `async for` early stops the thread and closes the iterator (which cancels the
    map's remaining inputs)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    room = threading.Semaphore(buffer)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in iterator:
                while not room.acquire(timeout=0.1):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                loop.call_soon_threadsafe(queue.put_nowait, (True, item))
            loop.call_soon_threadsafe(queue.put_nowait, (True, _DONE))
        except BaseException as exc:
            loop.call_soon_threadsafe(queue.put_nowait, (False, exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="nbfan-aio-map", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = await queue.get()
            if not ok:
                raise item
            if item is _DONE:
                return
            room.release()
            yield item
    finally:
        stop.set()


# -- what type checkers see of such pairs (the Function ones: api/signatures.py) ----------------

R_co = TypeVar("R_co", covariant=True)


class GetMethod(Protocol[R_co]):
    """`call.get(timeout=None)` and `await call.get.aio(...)`."""

    def __call__(self, timeout: float | None = None) -> R_co: ...
    async def aio(self, timeout: float | None = None) -> R_co: ...


class MapGetMethod(Protocol[T]):
    """`map_call.get(return_exceptions=False, timeout=None)`: every result, in input order."""

    def __call__(self, *, return_exceptions: bool = False, timeout: float | None = None) -> list[T]: ...
    async def aio(self, *, return_exceptions: bool = False, timeout: float | None = None) -> list[T]: ...


class CancelMethod(Protocol):
    """`call.cancel()` and `await call.cancel.aio()`."""

    def __call__(self) -> None: ...
    async def aio(self) -> None: ...
