"""Pause Python's cyclic garbage collector while nbfan builds or unpacks a batch.

A batch of 16k inputs is 16k small (args, kwargs) tuples that live until the batch is sent.
Allocating them triggers collections whose cost grows with everything alive in the process:
building 100k inputs took ~70 ms with the collector on and ~5 ms with it paused. Pausing only
defers the collector's work to when it is back on (right after the batch); the user's function
never runs while it is paused (an input generator may, for one batch).

The collector is process-wide, so it is paused only from the main thread (a notebook cell or
script building a batch), never from a worker thread: other threads of a worker run users'
functions, which must never run with the collector off.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    if not gc.isenabled() or threading.current_thread() is not threading.main_thread():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
