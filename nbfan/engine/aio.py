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



R_co = TypeVar("R_co", covariant=True)


class AioMethod(Protocol[P, R_co]):
    """What type checkers see of every method with an async twin: `obj.m(...)` blocks and
    returns the result; `await obj.m.aio(...)` returns the same without blocking the event loop.
    (The map family, whose twins are async iterators, has its own: api/signatures.py.)"""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
    async def aio(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...


class AioIterMethod(Protocol[P, R_co]):
    """`AioMethod` of a method that returns an iterator: `for x in obj.m(...)` blocks at each
    item; `async for x in obj.m.aio(...)` does not."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Iterator[R_co]: ...
    def aio(self, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[R_co]: ...


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


def off_the_loop(blocking: Callable[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
    """The default async twin: the blocking body, run in a thread of its own (`in_thread`), so
    the caller's event loop goes on meanwhile."""

    async def twin(*args: P.args, **kwargs: P.kwargs) -> T:
        return await in_thread(blocking, *args, **kwargs)

    return twin


class _MethodWithTwin:
    """What the method descriptors below share: the blocking method, the async twin written for
    it (None: a default one is made as it is bound), and the attribute name it was given."""

    def __init__(self, sync: Callable[..., Any], aio: Callable[..., Any] | None = None) -> None:
        self._sync = sync
        self._aio = aio
        functools.update_wrapper(self, sync)  # type: ignore[arg-type]

    def __set_name__(self, owner: type, name: str) -> None:
        self.__name__ = name

    def _bind(self, obj: object, owner: type | None, default_twin: Callable[[Any], Any]) -> BoundAio[..., Any]:
        sync = self._sync.__get__(obj, owner)
        return BoundAio(sync, default_twin(sync) if self._aio is None else self._aio.__get__(obj, owner))


class aio_method(_MethodWithTwin, Generic[P, T]):
    """A method with its async twin: `obj.m(...)` blocks, `await obj.m.aio(...)` does not. The
    twin is `aio` (a native coroutine function, where it matters: it holds no thread while it
    waits) or, by default, the blocking body run off the loop (`off_the_loop`). Made by
    `twin`; type checkers see `AioMethod` with the blocking method's parameters and result."""

    def __init__(self, sync: Callable[Concatenate[Any, P], T], aio: Callable[..., Any] | None = None) -> None:
        super().__init__(sync, aio)

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> aio_method[P, T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> AioMethod[P, T]: ...

    def __get__(self, obj: object, owner: type | None = None) -> aio_method[P, T] | AioMethod[P, T]:
        return self if obj is None else self._bind(obj, owner, off_the_loop)


def items_off_the_loop(blocking: Callable[P, Iterator[T]]) -> Callable[P, AsyncIterator[T]]:
    """The default async twin of a method that returns an iterator: its items, produced in a
    thread of its own (`iterate_in_thread`)."""

    def twin(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
        return iterate_in_thread(blocking(*args, **kwargs))

    return twin


class aio_iter_method(_MethodWithTwin, Generic[P, T]):
    """`aio_method` of a method that returns an iterator: `.aio` is an async iterator (`aio`, an
    async generator function, or by default the blocking iterator driven off the loop)."""

    def __init__(self, sync: Callable[Concatenate[Any, P], Iterator[T]], aio: Callable[..., Any] | None = None) -> None:
        super().__init__(sync, aio)

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> aio_iter_method[P, T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> AioIterMethod[P, T]: ...

    def __get__(self, obj: object, owner: type | None = None) -> aio_iter_method[P, T] | AioIterMethod[P, T]:
        return self if obj is None else self._bind(obj, owner, items_off_the_loop)  # type: ignore[return-value]


class static_aio_method(Generic[P, T]):
    """`aio_method` for a static method: `Cls.m(...)` and `await Cls.m.aio(...)`."""

    def __init__(self, sync: Callable[P, T], aio: Callable[..., Any] | None = None) -> None:
        self._bound = BoundAio(sync, off_the_loop(sync) if aio is None else aio)
        functools.update_wrapper(self, sync)  # type: ignore[arg-type]

    def __get__(self, obj: object, owner: type | None = None) -> AioMethod[P, T]:
        return self._bound


class class_aio_method(_MethodWithTwin):
    """`aio_method` for a class method: `Cls.m(...)` and `await Cls.m.aio(...)`, bound to the
    class it is called on. (Type checkers cannot bind a class method's `type[Self]` through a
    descriptor: classes declare such methods' types for them, without `.aio`.)"""

    def __get__(self, obj: object, owner: type | None = None) -> BoundAio[..., Any]:
        cls = owner if owner is not None else type(obj)
        sync = functools.partial(self._sync, cls)
        functools.update_wrapper(sync, self._sync)
        return BoundAio(sync, off_the_loop(sync) if self._aio is None else functools.partial(self._aio, cls))


@overload
def twin(blocking: Callable[Concatenate[Any, P], T], /) -> aio_method[P, T]: ...
@overload
def twin(*, aio: Callable[..., Any]) -> Callable[[Callable[Concatenate[Any, P], T]], aio_method[P, T]]: ...


def twin(blocking: Any = None, /, *, aio: Callable[..., Any] | None = None) -> Any:
    """Give a method its async twin under `.aio`: `@twin` (the blocking body, run off the
    loop) or `@twin(aio=native)` (a coroutine function with the same parameters)."""
    if blocking is not None:
        return aio_method(blocking)
    return lambda blocking: aio_method(blocking, aio)


@overload
def iter_twin(blocking: Callable[Concatenate[Any, P], Iterator[T]], /) -> aio_iter_method[P, T]: ...
@overload
def iter_twin(*, aio: Callable[..., Any]) -> Callable[[Callable[Concatenate[Any, P], Iterator[T]]],
                                                      aio_iter_method[P, T]]: ...


def iter_twin(blocking: Any = None, /, *, aio: Callable[..., Any] | None = None) -> Any:
    """`twin` for a method that returns an iterator: `.aio` is an async iterator."""
    if blocking is not None:
        return aio_iter_method(blocking)
    return lambda blocking: aio_iter_method(blocking, aio)


def static_twin(blocking: Callable[P, T], /) -> static_aio_method[P, T]:
    """`twin` for a static method (the function itself, not `staticmethod(...)`)."""
    return static_aio_method(blocking)


def class_twin(blocking: Callable[..., Any], /) -> class_aio_method:
    """`twin` for a class method (the function itself, not `classmethod(...)`)."""
    return class_aio_method(blocking)


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
