"""Waiting inside a task without holding its worker slot.

A function that calls other functions (`g.remote()`, `g.map()`, `FunctionCall.get()` inside
`f`) waits for tasks of the same cluster. If it kept its worker thread while waiting, a cluster
whose every slot runs such a parent would have no slot left for the children: a deadlock. So
while it waits, the task leaves the worker's thread pool (Dask's `secede`) and comes back
after (`rejoin`), as `distributed.worker_client` does. Outside a task this does nothing.

While it waits, a cancel of its call does not raise into the thread (the exception could land
inside Dask's secede/rejoin): the calls it waits for are cancelled with it, so the wait ends
by itself, and the cancel is raised once it has (see `task.cancellation_deferred`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from nbfan import compat
from nbfan.worker.stopping import cancellation_deferred

_state = threading.local()  # depth of nested waits in this thread; only the outermost secedes


@contextlib.contextmanager
def waiting_for_the_cluster() -> Iterator[None]:
    """Leave the worker slot (if this thread holds one) while the block waits."""
    depth = getattr(_state, "depth", 0)
    if depth > 0:  # an outer wait of this thread already left the slot
        yield
        return
    thread = threading.get_ident()
    _state.depth = 1
    try:
        from nbfan.worker.context import current_lineage

        with cancellation_deferred(current_lineage()):
            seceded = secede_slot()
            try:
                yield
            finally:
                if seceded and threading.get_ident() == thread:  # a generator closed elsewhere must not rejoin here
                    _rejoin()
    finally:
        _state.depth = 0


def _rejoin() -> None:
    from nbfan.worker import child

    if child.in_child():
        child.tell_worker("rejoin")
        return
    from distributed import rejoin

    rejoin()


def secede_slot() -> bool:
    """Secede when this thread runs a task of a worker's thread pool (or, in an isolated
    child process, have the worker thread waiting for it secede); False otherwise (the
    caller's own process, or a thread the task started itself)."""
    from distributed import get_worker, secede

    from nbfan.worker import child

    if child.in_child():
        child.tell_worker("secede")
        return True

    try:
        get_worker()
    except ValueError:
        return False
    if not compat.holds_worker_slot():
        return False
    secede()
    return True
