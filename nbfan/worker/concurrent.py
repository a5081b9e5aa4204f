"""A task's inputs run at once, up to `TaskSpec.concurrent_inputs` of them: `@nbfan.concurrent`
functions (Modal's `@modal.concurrent(max_inputs=N)`), for inputs that mostly wait.

An `async def` function's inputs run as coroutines in one event loop (a semaphore keeps N in
flight); a plain function's in N threads of the task's own. Each input's outcome lands in its
slot; a cancel of the call stops the threads (each is registered, as the task's own thread is)
and the inputs not started yet. Output: each input has a capture of its own (per thread, or
per coroutine: asyncio gives each its own context), so its lines carry its own index."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from nbfan.exception import InputCancellation
from nbfan.worker import stopping
from nbfan.worker.payload import Failure

Outcome = tuple[bool, Any]
Args = tuple[tuple[Any, ...], dict[str, Any]]
Capture = Callable[[int], contextlib.AbstractContextManager[Any]]  # an input's own output capture, by position


def run_concurrently(fn: Callable[..., Any], inputs: Sequence[Args], limit: int, call_id: str,
                     cancelled: Callable[[], bool], capture: Capture, retries: Any = None,
                     note_retry: Callable[[], None] = lambda: None) -> list[Outcome]:
    """Every input's outcome, in input order, running up to `limit` at once; a failed input is
    tried again as the call's `retries` (an nbfan.Retries) say."""
    if inspect.iscoroutinefunction(fn):
        return asyncio.run(_in_one_loop(fn, inputs, limit, cancelled, capture, retries, note_retry))
    return _in_threads(fn, inputs, limit, call_id, cancelled, capture, retries, note_retry)


def _again(retries: Any, attempt: int, cancelled: Callable[[], bool]) -> bool:
    return retries is not None and attempt < retries.max_retries and not cancelled()


@contextlib.contextmanager
def no_capture(_position: int) -> Iterator[None]:
    """For tasks whose output is not captured."""
    yield


def _skipped() -> Outcome:
    return False, Failure.capture(InputCancellation("not run: the call was cancelled"))


async def _in_one_loop(fn: Callable[..., Any], inputs: Sequence[Args], limit: int, cancelled: Callable[[], bool],
                       capture: Capture, retries: Any, note_retry: Callable[[], None]) -> list[Outcome]:
    room = asyncio.Semaphore(limit)

    async def one(position: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Outcome:
        async with room:
            if cancelled():
                return _skipped()
            with capture(position):  # this coroutine's context: its own lines
                attempt = 0
                while True:
                    try:
                        return True, await fn(*args, **kwargs)
                    except Exception as exc:
                        if not _again(retries, attempt, cancelled):
                            return False, Failure.capture(exc)
                    note_retry()
                    await asyncio.sleep(retries.delay(attempt))
                    attempt += 1

    return list(await asyncio.gather(*(one(i, args, kwargs) for i, (args, kwargs) in enumerate(inputs))))


def _in_threads(fn: Callable[..., Any], inputs: Sequence[Args], limit: int, call_id: str, cancelled: Callable[[], bool],
                capture: Capture, retries: Any, note_retry: Callable[[], None]) -> list[Outcome]:
    base = contextvars.copy_context()  # the task's call context, for every thread

    def one(position: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Outcome:
        if cancelled():
            return _skipped()
        with capture(position):
            attempt = 0
            while True:
                try:
                    with stopping.running(call_id, stopping.ThreadToken()):
                        return True, fn(*args, **kwargs)
                except InputCancellation:  # a cancel stopped this thread
                    return _skipped()
                except Exception as exc:
                    if not _again(retries, attempt, cancelled):
                        return False, Failure.capture(exc)
                note_retry()
                time.sleep(retries.delay(attempt))
                attempt += 1

    with ThreadPoolExecutor(max_workers=min(limit, len(inputs)) or 1, thread_name_prefix="nbfan-concurrent") as pool:
        futures = [pool.submit(base.copy().run, one, i, args, kwargs) for i, (args, kwargs) in enumerate(inputs)]
        return [future.result() for future in futures]
