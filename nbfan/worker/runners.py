"""How one input of a function runs on a worker: in the worker's own thread (the fast path)
or in a child process (`isolated.py`: functions with secrets, an environment or a timeout,
and `%%remote` cells). Both give an outcome, (True, value) or (False, Failure), never raise
for the user's errors, and register the input so a cancel stops it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from nbfan.exception import ExecutionError, FunctionTimeoutError, InputCancellation
from nbfan.worker import isolated, output, stopping
from nbfan.worker.payload import Columns, Failure
from nbfan.worker.tracebacks import unpickle_function

Outcome = tuple[bool, Any]
Emit = Callable[[tuple[str, Any]], None]  # ("y", value) for each yield, then ("e", None) or ("f", Failure)

_FUNCTION_CACHE: OrderedDict[bytes, Callable[..., Any]] = OrderedDict()
_FUNCTION_CACHE_SIZE = 64
_cache_lock = threading.Lock()


def load_function(blob: bytes) -> Callable[..., Any]:
    """Unpickle a function once per worker process, however many tasks use it."""
    digest = isolated.digest_of(blob)
    with _cache_lock:
        cached = _FUNCTION_CACHE.get(digest)
        if cached is not None:
            _FUNCTION_CACHE.move_to_end(digest)
            return cached
    fn: Callable[..., Any] = unpickle_function(blob)
    with _cache_lock:
        _FUNCTION_CACHE[digest] = fn
        while len(_FUNCTION_CACHE) > _FUNCTION_CACHE_SIZE:
            _FUNCTION_CACHE.popitem(last=False)
    return fn


class InThread:
    """Runs inputs in the calling worker thread. The thread is registered once for the whole
    batch (a lock round trip per input cost more than a trivial input); a cancel raises
    InputCancellation into it at its next bytecode."""

    def __init__(self, fn_blob: bytes, call_id: str) -> None:
        self.fn = load_function(fn_blob)
        self.call_id = call_id

    def gatherer(self) -> Any:
        """For a `@batched` function: its gatherer, to hand it all of a task's inputs at once."""
        find = getattr(self.fn, "nbfan_gatherer", None)
        return find() if find is not None else None

    def call_gathered(self, gatherer: Any, inputs: Sequence[tuple[tuple[Any, ...], dict[str, Any]]]) -> list[Outcome]:
        """Every input of the task added to the batched function's lists at once, then each outcome."""
        slots = [gatherer.submit(args, kwargs) for args, kwargs in inputs]
        outcomes: list[Outcome] = []
        for slot in slots:
            gatherer.wait_for(slot)
            try:
                outcomes.append((True, slot.outcome()))
            except Exception as exc:
                outcomes.append((False, Failure.capture(exc)))
        return outcomes

    def registered(self) -> Any:
        return stopping.running(self.call_id, stopping.ThreadToken())

    def call_columns(self, batch: Columns) -> tuple[list[Any], Outcome | None]:
        """Run a batch's inputs in a tight loop (a map of a cheap function costs a fraction of a
        microsecond per input this way), up to the first that raises: (the results before it,
        its failed outcome or None). A function whose results are coroutines runs nothing here:
        ([], None), and its inputs take the per-input path (`call`)."""
        fn, kwargs = self.fn, batch.kwargs
        values: list[Any] = []
        append = values.append
        output.track_position(values.__len__)
        try:
            if len(batch.columns) == 1 and not kwargs:
                for x in batch.columns[0]:
                    append(fn(x))
            else:
                for args in zip(*batch.columns, strict=True):
                    append(fn(*args, **kwargs))
        except Exception as exc:
            if not (values and asyncio.iscoroutine(values[0])):
                return values, (False, Failure.capture(exc))
        if values and asyncio.iscoroutine(values[0]):  # created, never started: nothing ran
            for value in values:
                if asyncio.iscoroutine(value):
                    value.close()
            return [], None
        return values, None

    def call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Outcome:
        try:
            result = self.fn(*args, **kwargs)
            if asyncio.iscoroutine(result):  # `async def` functions run to completion here
                result = asyncio.run(result)
            return True, result
        except Exception as exc:
            return False, Failure.capture(exc)

    def generate(self, args: tuple[Any, ...], kwargs: dict[str, Any], emit: Emit) -> None:
        try:
            for value in self.fn(*args, **kwargs):
                emit(("y", value))
            emit(("e", None))
        except Exception as exc:
            emit(("f", Failure.capture(exc)))


class InChild:
    """Runs inputs in a child process with the function's environment; a deadline or a cancel
    kills it, and the input returns only once that process is gone."""

    def __init__(self, fn_blob: bytes, call_id: str, lineage: tuple[str, ...], env: dict[str, str],
                 timeout: float | None, name: str = "the function") -> None:
        self.fn_blob = fn_blob
        self.digest = isolated.digest_of(fn_blob)
        self.call_id = call_id
        self.lineage = lineage
        self.env = env
        self.timeout = timeout
        self.name = name

    def registered(self) -> Any:
        return contextlib.nullcontext()  # each input registers its own child

    def call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Outcome:
        box: list[Outcome] = []

        def on_event(event: tuple[Any, ...]) -> bool:
            if event[0] in ("ok", "fail"):
                box.append((event[0] == "ok", event[1]))
                return True
            return False

        failure = self._run("call", args, kwargs, on_event)
        return box[0] if not failure else (False, failure)

    def generate(self, args: tuple[Any, ...], kwargs: dict[str, Any], emit: Emit) -> None:
        def on_event(event: tuple[Any, ...]) -> bool:
            if event[0] == "y":
                emit(("y", event[1]))
                return False
            if event[0] in ("end", "fail"):
                emit(("e", None) if event[0] == "end" else ("f", event[1]))
                return True
            return False

        failure = self._run("gen", args, kwargs, on_event)
        if failure is not None:
            emit(("f", failure))

    def _run(
        self, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any],
        on_event: Callable[[tuple[Any, ...]], bool],
    ) -> Failure | None:
        """Run one input; a Failure when it was stopped (deadline, cancel) or its process died."""
        child = isolated.acquire(self.digest, self.env)
        blob = None if child.loaded == self.digest else self.fn_blob
        request = ("run", kind, self.digest, blob, args, kwargs, self.lineage, output.for_child())
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        relay = _Relay()
        try:
            with stopping.running(self.call_id, child, self.lineage):
                done = isolated.exchange(child, request, deadline, lambda e: not relay.handle(e) and on_event(e))
        except InputCancellation:  # cancelled while the child was being made: it ran nothing
            isolated.release(child)
            return Failure.capture(InputCancellation("the call was cancelled"))
        relay.finish()
        child.loaded = self.digest
        if done is not None:
            isolated.release(child)
            return None
        if stopping.any_cancelled(self.lineage):
            return Failure.capture(InputCancellation("the call was cancelled"))
        if deadline is not None and time.monotonic() >= deadline:
            return Failure.capture(FunctionTimeoutError(
                f"{self.name} ran past its timeout of {self.timeout:g}s and was stopped"
            ))
        return Failure.capture(ExecutionError(
            f"the process running {self.name} on the worker died during the input (a crash: a segfault, "
            f"os._exit, or the out-of-memory killer). The worker itself is fine and runs the next input."
        ))


class _Relay:
    """What a child asks the worker to do for it while an input runs."""

    def __init__(self) -> None:
        self.queues: dict[str, Any] = {}
        self.seceded = False

    def handle(self, event: tuple[Any, ...]) -> bool:
        kind = event[0]
        if kind == "put":
            self._queue(event[1]).put(event[2])
        elif kind == "output":
            output.relay(event[1])
        elif kind == "secede" and not self.seceded:
            from nbfan.worker.waiting import secede_slot

            self.seceded = secede_slot()
        elif kind == "rejoin" and self.seceded:
            self.finish()
        else:
            return False
        return True

    def finish(self) -> None:
        if self.seceded:
            from distributed import rejoin

            rejoin()
            self.seceded = False

    def _queue(self, name: str) -> Any:
        if name not in self.queues:
            from distributed import Queue, get_client

            self.queues[name] = Queue(name, client=get_client())
        return self.queues[name]
