"""The code that runs on a worker: one Dask task runs a batch of inputs of one function.

Retries and timeouts are applied per input here, so a batch of many inputs behaves exactly
like that many separate calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import CoroutineType
from typing import Any

from nbfan.exception import FunctionTimeoutError, InputCancellation
from nbfan.worker import telemetry as _telemetry
from nbfan.worker.gcpause import gc_paused
from nbfan.worker.outcomes import Outcomes
from nbfan.worker.payload import Args, Failure, dumps_outcomes, loads
from nbfan.worker.retries import Retries
from nbfan.worker.tracebacks import unpickle_function

_FUNCTION_CACHE: OrderedDict[bytes, Callable[..., Any]] = OrderedDict()
_FUNCTION_CACHE_SIZE = 64
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class TaskSpec:
    """Per-call settings every task of the call carries (small; pickled with the task)."""

    call_id: str
    timeout: float | None = None
    retries: Retries | None = None
    stop_on_error: bool = True
    parents: tuple[str, ...] = ()  # the calls this call was made inside, outermost first
    env: dict[str, str] = field(default_factory=dict)
    volumes: dict[str, str] = field(default_factory=dict)  # mount path -> volume folder


# Threads running user code, by call id, so a cancelled call really stops on the workers:
# Dask's cancel only forgets a running task; its thread would go on holding the slot.
_running: dict[str, set[threading.Thread]] = {}
_cancelled: OrderedDict[str, None] = OrderedDict()
_running_lock = threading.Lock()


class _Running:
    """Context manager registering the current thread as running inputs of `call_id`."""

    def __init__(self, call_id: str, thread: threading.Thread | None = None) -> None:
        self.call_id = call_id
        self.thread = thread or threading.current_thread()

    def __enter__(self) -> _Running:
        with _running_lock:
            _running.setdefault(self.call_id, set()).add(self.thread)
        return self

    def __exit__(self, *exc: Any) -> None:
        with _running_lock:
            threads = _running.get(self.call_id)
            if threads is not None:
                threads.discard(self.thread)
                if not threads:
                    del _running[self.call_id]


def is_cancelled(call_id: str) -> bool:
    """Whether the call was cancelled on this worker."""
    return call_id in _cancelled


def call_cancelled(spec: TaskSpec) -> bool:
    """Whether the call, or a call it was made inside, was cancelled: a cancelled parent's
    children start no new input."""
    return spec.call_id in _cancelled or any(parent in _cancelled for parent in spec.parents)


async def cancel_running(*call_ids: str) -> int:
    """Run on each worker (`client.run`) when calls are cancelled: inputs of the calls not yet
    started are skipped, and running ones are stopped at their next Python bytecode (code
    blocked inside a C call stops when that call returns). Returns how many threads were hit.
    A coroutine, so `client.run(..., wait=False)` can fire it without waiting."""
    with _running_lock:
        for call_id in call_ids:
            _cancelled[call_id] = None
        while len(_cancelled) > 10_000:
            _cancelled.popitem(last=False)
        threads = [t for call_id in call_ids for t in _running.get(call_id, ())]
    for thread in threads:
        _async_raise(thread, InputCancellation)
    return len(threads)


def load_function(blob: bytes) -> Callable[..., Any]:
    """Unpickle a function once per worker process, however many tasks use it."""
    digest = hashlib.blake2b(blob, digest_size=16).digest()
    with _cache_lock:
        fn = _FUNCTION_CACHE.get(digest)
        if fn is not None:
            _FUNCTION_CACHE.move_to_end(digest)
            return fn
    fn = unpickle_function(blob)
    with _cache_lock:
        _FUNCTION_CACHE[digest] = fn
        while len(_FUNCTION_CACHE) > _FUNCTION_CACHE_SIZE:
            _FUNCTION_CACHE.popitem(last=False)
    return fn


@contextlib.contextmanager
def cancellation_deferred() -> Iterator[None]:
    """While nbfan itself waits inside an input (for calls made inside it), a cancel of the
    input's call is not raised into the thread at an arbitrary bytecode; it is raised when the
    wait ends (the calls waited for are cancelled too, so it ends soon)."""
    thread = threading.current_thread()
    with _running_lock:
        calls = [call_id for call_id, threads in _running.items() if thread in threads]
        for call_id in calls:
            _running[call_id].discard(thread)
    if calls and thread.ident is not None:  # one raised just before: withdrawn, raised below instead
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), None)
    try:
        yield
    finally:
        with _running_lock:
            for call_id in calls:
                _running.setdefault(call_id, set()).add(thread)
    if any(call_id in _cancelled for call_id in current_lineage()):
        raise InputCancellation("the call was cancelled")


def _async_raise(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    """Ask a runaway thread to stop: the exception is raised there at its next bytecode."""
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(exc_type))


def call_with_timeout(
    fn: Callable[..., Any], args: tuple, kwargs: dict, timeout: float | None, call_id: str = ""
) -> Any:
    """Run fn; past `timeout` seconds raise FunctionTimeoutError here, freeing the worker slot,
    and stop the user code at its next Python bytecode (code blocked in C stops when it returns)."""
    if timeout is None:
        with _Running(call_id):
            return fn(*args, **kwargs)
    box: dict[str, Any] = {}
    done = threading.Event()
    ctx = contextvars.copy_context()

    def target() -> None:
        try:
            box["value"] = ctx.run(fn, *args, **kwargs)
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=target, name="nbfan-timeout-guarded", daemon=True)
    with _Running(call_id, thread):
        thread.start()
        finished = done.wait(timeout)
    if not finished:
        _async_raise(thread, FunctionTimeoutError)
        name = getattr(fn, "__qualname__", "function")
        raise FunctionTimeoutError(f"{name} ran past its timeout of {timeout:g}s and was stopped")
    if "error" in box:
        raise box["error"]
    return box["value"]


def run_input(
    fn: Callable[..., Any], args: tuple, kwargs: dict, spec: TaskSpec, registered: bool = False
) -> tuple[bool, Any]:
    """One input with the call's retries: (True, result) or (False, Failure). `registered`:
    the caller already registered this thread as running the call (no timeout to enforce)."""
    attempt = 0
    while True:
        try:
            if registered:
                result = fn(*args, **kwargs)
            else:
                result = call_with_timeout(fn, args, kwargs, spec.timeout, spec.call_id)
            if isinstance(result, CoroutineType):  # `async def` functions run to completion here
                result = asyncio.run(result)
            return True, result
        except Exception as exc:
            if isinstance(exc, InputCancellation) or call_cancelled(spec):
                return False, Failure.capture(InputCancellation("the call was cancelled"))
            if spec.retries is None or attempt >= spec.retries.max_retries:
                return False, Failure.capture(exc)
            note_retry(spec.call_id)
            time.sleep(spec.retries.delay(attempt))
            attempt += 1


def note_retry(call_id: str) -> None:
    """Hook for telemetry: an input of `call_id` is being retried (reported with its batch)."""
    _telemetry.note_retry(call_id)


def _apply_env(env: dict[str, str]) -> None:
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


#: The call id of the input running in this thread (`nbfan.current_function_call_id()`).
CURRENT_CALL_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("nbfan_call_id", default=None)
#: The calls the running input was made inside, outermost first, then its own call.
CURRENT_LINEAGE: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("nbfan_lineage", default=())


def current_lineage() -> tuple[str, ...]:
    """Inside an input running on a worker: its call and the calls that one was made inside
    (calls made from here are their children); () elsewhere."""
    return CURRENT_LINEAGE.get()


@contextlib.contextmanager
def call_context(spec: TaskSpec) -> Iterator[None]:
    """While a task's inputs run: the call's secrets' environment and volume mounts are in
    place, and the current call and lineage are set (reset when the task ends)."""
    _apply_env(spec.env)
    if spec.volumes:
        from nbfan.worker.mounts import mount_volumes

        mount_volumes(spec.volumes)
    call_token = CURRENT_CALL_ID.set(spec.call_id)
    lineage_token = CURRENT_LINEAGE.set((*spec.parents, spec.call_id))
    try:
        yield
    finally:
        CURRENT_LINEAGE.reset(lineage_token)
        CURRENT_CALL_ID.reset(call_token)


def run_batch(fn_blob: bytes, inputs_blob: bytes, spec: TaskSpec) -> bytes:
    """The Dask task body: run every input of the batch, return all outcomes as one blob.

    With `stop_on_error`, the inputs after a failure are not run (they are cancelled)."""
    started = time.perf_counter()
    with call_context(spec):
        fn = load_function(fn_blob)
        with gc_paused():
            inputs = loads(inputs_blob)
        values, failures, n_failed, n_skipped = _run_inputs(fn, inputs, spec)
    _telemetry.report_batch(spec.call_id, n_failed, n_skipped, _telemetry.take_retries(spec.call_id))
    elapsed = time.perf_counter() - started
    with gc_paused():
        return dumps_outcomes(Outcomes(values, failures), elapsed)


def _run_inputs(
    fn: Callable[..., Any], inputs: list[Args], spec: TaskSpec
) -> tuple[list[Any], dict[int, Failure], int, int]:
    """(values, failures by position, inputs failed, inputs skipped) of a batch's inputs."""
    values: list[Any] = []  # input order; a failed input's slot holds None and its Failure is in `failures`
    failures: dict[int, Failure] = {}
    failed = False
    n_failed = n_skipped = 0
    # Without a timeout, register this thread once for the whole batch (not per input: that
    # lock round trip cost more than a trivial input); cancellation still finds it.
    registered = spec.timeout is None
    try:
        with _Running(spec.call_id) if registered else contextlib.nullcontext():
            for args, kwargs in inputs:
                if (failed and spec.stop_on_error) or call_cancelled(spec):
                    skipped = InputCancellation(
                        "not run: the call was cancelled or an earlier input of the batch failed"
                    )
                    failures[len(values)] = Failure.capture(skipped)
                    values.append(None)
                    n_skipped += 1
                    continue
                ok, value = run_input(fn, args, kwargs, spec, registered)
                if ok:
                    values.append(value)
                    continue
                failures[len(values)] = value
                values.append(None)
                if value.exc_type is InputCancellation:
                    n_skipped += 1
                else:
                    n_failed += 1
                failed = True
    except InputCancellation:  # the cancel landed between two inputs: the rest do not run
        cancelled = Failure.capture(InputCancellation("the call was cancelled"))
        n_skipped += len(inputs) - len(values)
        while len(values) < len(inputs):
            failures[len(values)] = cancelled
            values.append(None)
    return values, failures, n_failed, n_skipped


def iterate_generator(fn: Callable[..., Iterator[Any]], args: tuple, kwargs: dict) -> Iterator[Any]:
    """Iterate a user generator (kept apart so stream code can be tested without a cluster)."""
    yield from fn(*args, **kwargs)
