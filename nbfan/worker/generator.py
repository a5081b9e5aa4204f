"""The task body of generator functions: every yield of every input of the batch is pushed to
a Dask `Queue` in chunks (every 50 ms or 512 items), so a stream costs one scheduler round trip
per chunk, not per item. Events are ("y", input index, value), ("e", input index, None) when an
input's generator ends and ("f", input index, Failure) when it raised."""

from __future__ import annotations

import functools
import time
from typing import Any, cast

import cloudpickle
from distributed import Queue

from nbfan.exception import InputCancellation, SerializationError
from nbfan.worker import output
from nbfan.worker.payload import Failure, Payload, loads
from nbfan.worker.task import TaskSpec, call_cancelled, call_context, runner_for

FLUSH_SECONDS = 0.05
FLUSH_ITEMS = 512


def _dump_events(events: list[tuple[str, int, Any]]) -> bytes:
    try:
        return cast(bytes, cloudpickle.dumps(events, protocol=5))
    except Exception:
        safe: list[tuple[str, int, Any]] = []
        for kind, index, payload in events:
            try:
                cloudpickle.dumps(payload, protocol=5)
                safe.append((kind, index, payload))
            except Exception as exc:
                err = SerializationError(
                    f"input {index} yielded a {type(payload).__qualname__}, which could not be serialized to send it "
                    f"back ({type(exc).__name__}: {exc}). Yield picklable values."
                )
                safe.append(("f", index, Failure.capture(err)))
        return cast(bytes, cloudpickle.dumps(safe, protocol=5))


def run_generator(fn_blob: bytes, inputs: Payload, spec: TaskSpec, queue_name: str, first_index: int) -> int:
    """Task body for generator functions: stream every yield of every input of the batch."""
    from distributed import get_client

    with call_context(spec), output.capture(spec.call_id, spec.output_to, spec.capture_output, first_index):
        runner = runner_for(fn_blob, spec)
        stream = _Stream(Queue(queue_name, client=get_client()))
        running = [0]  # the offset of the input running now, for its output lines
        output.track_position(lambda: running[0])
        with runner.registered():
            for offset, (args, kwargs) in enumerate(loads(inputs)):
                if call_cancelled(spec):
                    break
                running[0] = offset
                index = first_index + offset
                runner.generate(args, kwargs, functools.partial(stream.add_event, index))
                if stream.failed and spec.stop_on_error:
                    break
        stream.flush()
    if stream.failures and spec.capture_output:  # for `nbfan logs --failed` (indices are the call's)
        output.report_failures(spec.call_id, 0, stream.failures, 1)
    return stream.produced


class _Stream:
    """Events pushed to the queue in chunks: every FLUSH_SECONDS or FLUSH_ITEMS events, and at
    once when an input fails."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.pending: list[tuple[str, int, Any]] = []
        self.last_flush = time.monotonic()
        self.produced = 0
        self.failed = False
        self.failures: dict[int, Failure] = {}  # input index -> how it failed

    def add(self, event: tuple[str, int, Any]) -> None:
        self.pending.append(event)
        self.produced += event[0] == "y"
        self.failed = self.failed or event[0] == "f"
        if event[0] == "f" and isinstance(event[2], Failure) and event[2].exc_type is not InputCancellation:
            self.failures[event[1]] = event[2]
        if event[0] == "f" or len(self.pending) >= FLUSH_ITEMS or time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            self.flush()

    def add_event(self, index: int, event: tuple[str, Any]) -> None:
        """An event of input `index` from a runner: ("y", value), ("e", None) or ("f", Failure)."""
        self.add((event[0], index, event[1]))

    def flush(self) -> None:
        if self.pending:
            self.queue.put(_dump_events(self.pending))
            self.pending = []
        self.last_flush = time.monotonic()
