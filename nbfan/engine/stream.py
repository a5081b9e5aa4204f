"""Reading generator streams on the caller: the events worker tasks push to a Dask `Queue`
(see worker/generator.py), as they arrive, noticing tasks that died meanwhile."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from distributed import Queue

from nbfan.exception import ExecutionError
from nbfan.worker.payload import loads


def _raise_if_task_died(batches: Iterable[Any]) -> None:
    from nbfan.engine.plan import describe_task_error

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
    from nbfan.engine.watchdog import SchedulerWatch
    from nbfan.exception import ClusterConnectionError

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
