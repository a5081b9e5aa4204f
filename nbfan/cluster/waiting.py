"""Waiting inside a task without holding its worker slot.

A function that calls other functions (`g.remote()`, `g.map()`, `FunctionCall.get()` inside
`f`) waits for tasks of the same cluster. If it kept its worker thread while waiting, a cluster
whose every slot runs such a parent would have no slot left for the children: a deadlock. So
while it waits, the task leaves the worker's thread pool (Dask's `secede`) and comes back
after (`rejoin`), as `distributed.worker_client` does. Outside a task this does nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from nbfan import compat

_state = threading.local()  # depth of nested waits in this thread; only the outermost secedes


@contextlib.contextmanager
def waiting_for_the_cluster() -> Iterator[None]:
    """Leave the worker slot (if this thread holds one) while the block waits."""
    depth = getattr(_state, "depth", 0)
    seceded = False
    if depth == 0:
        seceded = _secede()
    _state.depth = depth + 1
    thread = threading.get_ident()
    try:
        yield
    finally:
        _state.depth = depth
        if seceded and threading.get_ident() == thread:  # a generator closed elsewhere must not rejoin here
            from distributed import rejoin

            rejoin()


def _secede() -> bool:
    """Secede when this thread runs a task of a worker's thread pool; False otherwise (the
    caller's own process, or a thread the task started itself, e.g. a timeout guard)."""
    from distributed import get_worker, secede

    try:
        get_worker()
    except ValueError:
        return False
    if not compat.holds_worker_slot():
        return False
    secede()
    return True
