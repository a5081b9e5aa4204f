"""The `@app.cls` instances a worker process keeps between inputs, and their retirement: their
`@exit` methods run when an instance has been idle for its `scaledown_window` (Modal's default:
60 s; the next input builds it again, running `@enter`), and when the process ends (worker
shutdown, scale-down). Also the deadline on `@enter` (`startup_timeout`)."""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from nbfan.exception import FunctionTimeoutError
from nbfan.worker.stopping import set_async_exc

logger = logging.getLogger("nbfan")

DEFAULT_IDLE_SECONDS = 60.0  # Modal's scaledown_window default
SWEEP_SECONDS = 1.0


class Kept:
    """One kept instance: its exit methods, how long it may idle, and whether an input uses it."""

    def __init__(self, exits: list[Callable[[], Any]], idle_seconds: float, forget: Callable[[], None]) -> None:
        self.exits = exits
        self.idle_seconds = idle_seconds
        self.forget = forget  # drops the owner's reference: the next input builds a new instance
        self.in_use = 0
        self.last_used = time.monotonic()

    def retire(self) -> None:
        self.forget()
        for exit_method in self.exits:
            try:
                exit_method()
            except Exception:
                logger.exception("nbfan: an @exit method raised while its instance was retired")


_kept: dict[int, Kept] = {}
_lock = threading.Lock()
_sweeper: threading.Thread | None = None


def keep(owner: Any, exits: list[Callable[[], Any]], idle_seconds: float | None,
         forget: Callable[[], None]) -> None:
    """Register `owner`'s instance (built just now) for retirement."""
    global _sweeper
    with _lock:
        _kept[id(owner)] = Kept(exits, DEFAULT_IDLE_SECONDS if idle_seconds is None else idle_seconds, forget)
        if _sweeper is None:
            _sweeper = threading.Thread(target=_sweep_forever, name="nbfan-instances", daemon=True)
            _sweeper.start()


@contextlib.contextmanager
def using(owner: Any) -> Iterator[None]:
    """Around an input that uses `owner`'s instance: it is not retired meanwhile."""
    with _lock:
        kept = _kept.get(id(owner))
        if kept is not None:
            kept.in_use += 1
    try:
        yield
    finally:
        if kept is not None:
            with _lock:
                kept.in_use -= 1
                kept.last_used = time.monotonic()


def retire_idle(now: float | None = None) -> int:
    """Retire the instances idle past their window; how many."""
    now = time.monotonic() if now is None else now
    with _lock:
        idle = [key for key, kept in _kept.items() if not kept.in_use and now - kept.last_used >= kept.idle_seconds]
        retired = [_kept.pop(key) for key in idle]
    for kept in retired:
        kept.retire()
    return len(retired)


@atexit.register
def retire_all() -> None:
    """The process ends (the worker shuts down): every kept instance's `@exit` methods run."""
    with _lock:
        retired = list(_kept.values())
        _kept.clear()
    for kept in retired:
        kept.retire()


def _sweep_forever() -> None:
    while True:
        time.sleep(SWEEP_SECONDS)
        retire_idle()


@contextlib.contextmanager
def deadline(seconds: float | None, what: str) -> Iterator[None]:
    """Raise FunctionTimeoutError into this thread if the block runs past `seconds` (at its
    next bytecode: a single long C call is not interrupted)."""
    if seconds is None:
        yield
        return
    thread = threading.current_thread()
    fired = threading.Event()

    def stop() -> None:
        fired.set()
        set_async_exc(thread, FunctionTimeoutError)

    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()
    try:
        yield
    except FunctionTimeoutError:
        if fired.is_set():
            raise FunctionTimeoutError(f"{what} ran past its startup_timeout of {seconds:g}s") from None
        raise
    finally:
        timer.cancel()
        if fired.is_set():
            set_async_exc(thread, None)  # one that fired just as the block ended must not land later
