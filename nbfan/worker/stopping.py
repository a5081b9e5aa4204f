"""Stopping running inputs: what runs for which call on this worker, and cancelling it.

Dask's cancel only forgets a running task; its thread would go on holding the slot. So each
running input registers a token under its call id: a thread running it here (stopped by an
exception raised at its next Python bytecode) or the child process running it (killed).
Tokens are registered and stopped under one lock, and a thread's token clears any exception
still pending for it as it leaves, so a cancel can only ever hit the input it was meant for.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Protocol

from nbfan.exception import InputCancellation

CANCELLED_KEPT = 10_000  # cancelled call ids remembered per worker


class Stoppable(Protocol):
    def stop(self, exc_type: type[BaseException]) -> None: ...


class ThreadToken:
    """A thread of this process running inputs of a call."""

    def __init__(self, thread: threading.Thread | None = None) -> None:
        self.thread = thread or threading.current_thread()

    def stop(self, exc_type: type[BaseException]) -> None:
        set_async_exc(self.thread, exc_type)

    def withdraw(self) -> None:
        """Take back an exception sent to the thread and not yet raised there."""
        set_async_exc(self.thread, None)


def set_async_exc(thread: threading.Thread, exc_type: type[BaseException] | None) -> None:
    """Raise `exc_type` in `thread` at its next bytecode (None: take back one not raised yet)."""
    if thread.ident is not None:
        value = None if exc_type is None else ctypes.py_object(exc_type)
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), value)


_running: dict[str, set[Stoppable]] = {}
_cancelled: OrderedDict[str, None] = OrderedDict()
_lock = threading.Lock()


@contextlib.contextmanager
def running(call_id: str, token: Stoppable, lineage: tuple[str, ...] = ()) -> Iterator[Stoppable]:
    """While the block runs, a cancel of `call_id` stops `token`. A cancel of `call_id` (or of a
    call in `lineage`) that came before the registration raises InputCancellation here: starting
    a child can take seconds, and the cancel must not be lost in that window."""
    with _lock:
        if call_id in _cancelled or any(parent in _cancelled for parent in lineage):
            raise InputCancellation("the call was cancelled")
        _running.setdefault(call_id, set()).add(token)
    try:
        yield token
    finally:
        with _lock:
            tokens = _running.get(call_id)
            if tokens is not None:
                tokens.discard(token)
                if not tokens:
                    del _running[call_id]
            if isinstance(token, ThreadToken):
                token.withdraw()


def is_cancelled(call_id: str) -> bool:
    """Whether the call was cancelled on this worker."""
    return call_id in _cancelled


def any_cancelled(call_ids: tuple[str, ...]) -> bool:
    """Whether a call, or one it was made inside, was cancelled: its inputs start no more."""
    return any(call_id in _cancelled for call_id in call_ids)


async def cancel_running(*call_ids: str) -> int:
    """Run on each worker (`client.run`) when calls are cancelled: inputs of the calls not yet
    started are skipped; running ones are stopped (a child process is killed; a thread gets
    InputCancellation at its next bytecode). Returns how many were hit. A coroutine, so
    `client.run(..., wait=False)` can fire it without waiting."""
    with _lock:
        for call_id in call_ids:
            _cancelled[call_id] = None
        while len(_cancelled) > CANCELLED_KEPT:
            _cancelled.popitem(last=False)
        tokens = [t for call_id in call_ids for t in _running.get(call_id, ())]
        for token in tokens:
            token.stop(InputCancellation)
    return len(tokens)


@contextlib.contextmanager
def cancellation_deferred(lineage: tuple[str, ...]) -> Iterator[None]:
    """While nbfan itself waits inside an input (for calls made inside it), a cancel of the
    input's call is not raised into the thread at an arbitrary bytecode; it is raised when the
    wait ends (the calls waited for are cancelled too, so it ends soon)."""
    thread = threading.current_thread()
    with _lock:
        mine = [(call_id, t) for call_id, tokens in _running.items() for t in tokens
                if isinstance(t, ThreadToken) and t.thread is thread]
        for call_id, token in mine:
            _running[call_id].discard(token)
            token.withdraw()  # one sent just before: raised below instead
    try:
        yield
    finally:
        with _lock:
            for call_id, token in mine:
                _running.setdefault(call_id, set()).add(token)
    if any_cancelled(lineage):
        raise InputCancellation("the call was cancelled")


def snapshot() -> dict[str, int]:
    """How many inputs run per call here (diagnostics and tests)."""
    with _lock:
        return {call_id: len(tokens) for call_id, tokens in _running.items()}


