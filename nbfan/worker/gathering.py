"""Dynamic batching for `@batched` functions: inputs arriving on one worker process, from any
caller and any task, are gathered into lists of up to `max_batch_size`, waiting at most
`wait_ms` after the first, and the function runs once per list (as Modal does; how GPU
inference gets its throughput).

No extra thread runs user code: one of the waiting tasks' threads leads, runs a list, and
hands every input its own result. While an input waits to be gathered or for its result,
its task leaves the worker slot (`waiting_for_the_cluster`), so other tasks can start on the
worker and add their inputs to the same list; the leader takes a slot back to run it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from nbfan.exception import InvalidError
from nbfan.worker.waiting import waiting_for_the_cluster

Args = tuple[tuple[Any, ...], dict[str, Any]]
ListFunction = Callable[..., Any]  # takes one list per parameter, returns a list of outputs


class Slot:
    """One input waiting in a gatherer, then its outcome."""

    __slots__ = ("args", "arrived", "done", "error", "kwargs", "value")

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.args, self.kwargs = args, kwargs
        self.arrived = time.monotonic()
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class Gatherer:
    """The inputs of one `@batched` function (or bound method) in this process."""

    def __init__(self, fn: ListFunction, max_batch_size: int, wait_ms: int, name: str) -> None:
        self.fn, self.max_batch_size, self.wait = fn, max_batch_size, wait_ms / 1000
        self.name = name
        self.pending: list[Slot] = []
        self.leading = False
        self.changed = threading.Condition()
        self.sizes: list[int] = []  # the size of every list run (for tests and benchmarks)

    def submit(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Slot:
        slot = Slot(args, kwargs)
        with self.changed:
            self.pending.append(slot)
            self.changed.notify_all()
        return slot

    def call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """One input: gathered with others, its own output back."""
        slot = self.submit(args, kwargs)
        self.wait_for(slot)
        return slot.outcome()

    def wait_for(self, slot: Slot) -> None:
        """Return once `slot` has its outcome, leading lists (this one's or others') meanwhile."""
        while True:
            with waiting_for_the_cluster():
                batch = self._next_batch_or_done(slot)
            if batch is None:
                return
            self._run(batch)

    def _next_batch_or_done(self, slot: Slot) -> list[Slot] | None:
        """Wait (no slot held) until `slot` is done (None) or this thread leads a full or timed-out list."""
        with self.changed:
            while True:
                if slot.done:
                    return None
                if not self.leading and self.pending:
                    deadline = self.pending[0].arrived + self.wait
                    left = deadline - time.monotonic()
                    if len(self.pending) >= self.max_batch_size or left <= 0:
                        self.leading = True
                        batch = self.pending[: self.max_batch_size]
                        del self.pending[: len(batch)]
                        return batch
                    self.changed.wait(left)
                else:
                    self.changed.wait(0.5)

    def _run(self, batch: list[Slot]) -> None:
        try:
            outputs = self._outputs(batch)
            for slot, output in zip(batch, outputs, strict=True):
                slot.value = output
        except Exception as exc:  # the whole list failed: every input of it gets the error
            for slot in batch:
                slot.error = exc
        with self.changed:
            for slot in batch:
                slot.done = True
            self.sizes.append(len(batch))
            self.leading = False
            self.changed.notify_all()

    def _outputs(self, batch: list[Slot]) -> list[Any]:
        n_args = len(batch[0].args)
        names = list(batch[0].kwargs)
        if any(len(s.args) != n_args or list(s.kwargs) != names for s in batch):
            raise InvalidError(f"@batched {self.name}: every call must pass the same arguments (positions and names)")
        columns = [[s.args[i] for s in batch] for i in range(n_args)]
        named = {name: [s.kwargs[name] for s in batch] for name in names}
        result = self.fn(*columns, **named)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        if not isinstance(result, (list, tuple)) or len(result) != len(batch):
            got = f"{len(result)} outputs" if isinstance(result, (list, tuple)) else f"a {type(result).__name__}"
            raise InvalidError(
                f"@batched {self.name} must return a list with one output per input: it got {len(batch)} inputs "
                f"and returned {got}"
            )
        return list(result)


_gatherers: dict[tuple[int, ...], Gatherer] = {}
_lock = threading.Lock()


def gatherer_for(key: tuple[int, ...], fn: ListFunction, max_batch_size: int, wait_ms: int, name: str) -> Gatherer:
    """The process's gatherer for a batched function (`key`: identity of it and its instance)."""
    with _lock:
        found = _gatherers.get(key)
        if found is None:
            found = _gatherers[key] = Gatherer(fn, max_batch_size, wait_ms, name)
        return found
