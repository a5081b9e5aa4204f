"""Streaming generator yields from workers to the caller while they are produced.

The task pushes its yields into a Dask `Queue` in chunks (every 50 ms or 512 items), so a
stream costs one scheduler round trip per chunk, not per item. Events are
("y", input_index, value), ("e", input_index, None) at the end of an input's generator and
("f", input_index, Failure) when it raised.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Iterator, Mapping

import cloudpickle
from distributed import Queue

from ..exception import ExecutionError, SerializationError
from .payload import Failure, loads
from .task import TaskSpec, iterate_generator, load_function, prepare_worker

FLUSH_SECONDS = 0.05
FLUSH_ITEMS = 512


def _dump_events(events: list[tuple[str, int, Any]]) -> bytes:
    try:
        return cloudpickle.dumps(events, protocol=5)
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
        return cloudpickle.dumps(safe, protocol=5)


def run_generator(fn_blob: bytes, inputs_blob: bytes, spec: TaskSpec, queue_name: str, first_index: int) -> int:
    """Task body for generator functions: stream every yield of every input of the batch."""
    from distributed import get_client

    prepare_worker(spec)
    fn = load_function(fn_blob)
    queue = Queue(queue_name, client=get_client())
    pending: list[tuple[str, int, Any]] = []
    last_flush = time.monotonic()
    produced = 0

    def flush() -> None:
        nonlocal pending, last_flush
        if pending:
            queue.put(_dump_events(pending))
            pending = []
        last_flush = time.monotonic()

    for offset, (args, kwargs) in enumerate(loads(inputs_blob)):
        index = first_index + offset
        try:
            for value in iterate_generator(fn, args, kwargs):
                pending.append(("y", index, value))
                produced += 1
                if len(pending) >= FLUSH_ITEMS or time.monotonic() - last_flush >= FLUSH_SECONDS:
                    flush()
            pending.append(("e", index, None))
        except Exception as exc:
            pending.append(("f", index, Failure.capture(exc)))
            if spec.stop_on_error:
                flush()
                break
    flush()
    return produced


def _raise_if_task_died(batches: Iterable[Any]) -> None:
    from .submit import describe_task_error

    for batch in batches:
        status = batch.future.status
        if status == "error":
            try:
                batch.future.result()
            except BaseException as exc:
                raise describe_task_error(exc, batch.start, batch.count) from None
        if status == "cancelled":
            raise ExecutionError(f"the generator task for input {batch.start} was cancelled on the cluster")


def _scheduler_lost_or(client: Any, exc: OSError) -> BaseException:
    """A ClusterConnectionError when the scheduler does not answer (a broken connection is
    often seen here before the client notices it), else the original error."""
    from ..exception import ClusterConnectionError
    from .watchdog import SchedulerWatch

    watch = SchedulerWatch(client, idle_before_ping=0.0)
    if client.status != "running":
        return watch.lost(f"the client is {client.status}; {type(exc).__name__}: {exc}")
    try:
        watch.check()
    except ClusterConnectionError as lost:
        return lost
    return exc


def iter_queue_events(queue: Queue, in_flight: Mapping[Any, Any]) -> Iterator[tuple[str, int, Any]]:
    """Stream events as they arrive; between arrivals, notice tasks that died (their worker
    was lost and Dask gave up) so the caller never waits forever.

    Polls with `get(batch=True)`, which returns at once: a `get(timeout=...)` that times out
    makes the scheduler log an error traceback every time."""
    idle = 0.005
    while True:
        try:
            blobs = queue.get(batch=True)
        except OSError as exc:  # the queue lives on the scheduler: is the scheduler gone?
            raise _scheduler_lost_or(queue.client, exc) from None
        if not blobs:
            _raise_if_task_died(list(in_flight.values()))
            time.sleep(idle)
            idle = min(idle * 2, 0.05)
            continue
        idle = 0.005
        for blob in blobs:
            yield from loads(blob)


def iter_events(queue: Queue, batches: Mapping[Any, Any], n_inputs: int) -> Iterator[tuple[str, int, Any]]:
    """Stream events until `n_inputs` inputs have ended."""
    ended = 0
    for event in iter_queue_events(queue, batches):
        if event[0] in ("e", "f"):
            ended += 1
        yield event
        if ended >= n_inputs:
            return
