"""The task that runs a `spawn_map` on the cluster, with no client left to drive it.

It runs on a worker, secedes from the worker's thread pool (it only waits), submits batch
tasks through the worker's client with a bounded window, and stores each finished batch on the
scheduler (`mapstore`). Dask reruns it if its worker dies; the rerun skips what was stored, so
at most the in-flight window is redone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

from distributed import wait
from distributed.client import FuturesCancelledError
from distributed.scheduler import KilledWorker

from ..exception import ExecutionError, InputCancellation
from ..telemetry import hooks
from .batching import BatchSizer
from .gcpause import gc_paused
from .outcomes import count_failed
from .payload import Failure, dumps_outcomes, loads
from .submit import Batch, CallPlan, cancel_call, describe_task_error
from .task import TaskSpec

logger = logging.getLogger("nbfan")

POLL_SECONDS = 1.0  # how often an idle coordinator checks whether its map was cancelled


def pending_ranges(stored: list[tuple[int, int]], total: int) -> list[tuple[int, int]]:
    """The [start, end) input ranges not covered by stored batches, in input order."""
    gaps: list[tuple[int, int]] = []
    position = 0
    for start, count in sorted(stored):
        if start > position:
            gaps.append((position, start))
        position = max(position, start + count)
    if position < total:
        gaps.append((position, total))
    return gaps


def _next_batches(gaps: list[tuple[int, int]], sizer: BatchSizer) -> Iterator[tuple[int, int]]:
    """(start, count) of each batch to submit; sizes follow the sizer as it learns."""
    for start, end in gaps:
        while start < end:
            count = min(sizer.next_size(), end - start)
            yield start, count
            start += count


def _failed_outcomes(exc: BaseException, count: int) -> bytes:
    failure = Failure.capture(exc)
    return dumps_outcomes([(False, failure)] * count)


def coordinate(map_id: str, fn_blob: bytes, spec: TaskSpec, resources: dict[str, float] | None, window: int) -> str:
    """Task body of a spawn_map's coordinator. Returns the map's final state."""
    from distributed import get_client, secede

    client = get_client()
    secede()  # waiting on batches must not hold one of the worker's task slots

    def rpc(op: str, **kwargs: Any) -> Any:
        return client.sync(getattr(client.scheduler, f"nbfan_map_{op}"), **kwargs)

    claim = rpc("claim", map_id=map_id)
    if claim["state"] != "running":
        return claim["state"]
    epoch = claim["epoch"]
    try:
        with gc_paused():
            inputs = loads(claim["inputs"])
        state = _drive(client, rpc, map_id, epoch, inputs, claim, fn_blob, spec, resources, window)
    except BaseException as exc:
        logger.exception("nbfan: the coordinator of map %s failed", map_id)
        rpc("fail", map_id=map_id, epoch=epoch, error=f"the map's coordinator failed: {type(exc).__name__}: {exc}")
        raise
    if state in ("done", "failed"):
        hooks.call_ended(client, map_id, state)
    return state


def _drive(
    client: Any,
    rpc: Any,
    map_id: str,
    epoch: int,
    inputs: list[Any],
    claim: dict[str, Any],
    fn_blob: bytes,
    spec: TaskSpec,
    resources: dict[str, float] | None,
    window: int,
) -> str:
    plan = CallPlan(client=client, call_id=map_id, fn_blob=fn_blob, spec=spec, resources=resources)
    sizer = BatchSizer()
    upcoming = _next_batches(pending_ranges([tuple(s) for s in claim["stored"]], claim["total"]), sizer)
    in_flight: dict[Any, Batch] = {}
    exhausted = False
    failed_any = claim["failed"] > 0
    last_check = time.monotonic()
    state = "running"
    try:
        while True:
            while not exhausted and len(in_flight) < window:
                nxt = next(upcoming, None)
                if nxt is None:
                    exhausted = True
                    break
                start, count = nxt
                batch = plan.submit_batch(inputs[start : start + count], start)
                in_flight[batch.future.key] = batch
            if not in_flight:
                break
            futures = [b.future for b in in_flight.values()]
            try:
                finished = wait(futures, timeout=POLL_SECONDS, return_when="FIRST_COMPLETED").done
            except (TimeoutError, asyncio.TimeoutError):  # one class since Python 3.11
                finished = set()
            except FuturesCancelledError:  # cancelled on the cluster: by .cancel(), or Dask gave up
                finished = {f for f in futures if f.status != "pending"}
                last_check = 0.0
            if not finished or time.monotonic() - last_check > POLL_SECONDS:
                last_check = time.monotonic()
                state = rpc("progress", map_id=map_id)["state"]
                if state != "running":
                    return state
            for future in finished:
                batch = in_flight.pop(future.key)
                if batch.count > 1 and future.status == "error" and isinstance(future.exception(), KilledWorker):
                    # workers died running this batch: rerun its inputs one per task, so only an
                    # input that kills its worker fails, not its batch-mates
                    future.release()
                    for index in range(batch.start, batch.start + batch.count):
                        single = plan.submit_batch(inputs[index : index + 1], index)
                        in_flight[single.future.key] = single
                    continue
                blob = _outcomes_blob(future, batch)
                future.release()
                elapsed, outcomes = loads(blob)
                failed = count_failed(outcomes)
                failed_any = failed_any or failed > 0
                sizer.observe(batch.count, elapsed, batch.payload_bytes)
                state = rpc(
                    "store", map_id=map_id, epoch=epoch, start=batch.start, count=batch.count,
                    outcomes=blob, done=batch.count - failed, failed=failed,
                )
                if state not in ("running", "done"):  # done: that was the last batch
                    return state
        state = rpc("finish", map_id=map_id, epoch=epoch)
        if state != "done":
            return state
        return "failed" if failed_any else "done"
    finally:
        if in_flight:
            futures = [b.future for b in in_flight.values()]
            if state == "superseded":  # a newer coordinator runs this map: only drop our tasks
                client.cancel(futures)
            else:  # cancelled, or the coordinator itself failed: stop the running inputs too
                cancel_call(client, map_id, futures)


def _outcomes_blob(future: Any, batch: Batch) -> bytes:
    """The batch's outcomes blob; a task Dask gave up on becomes a failure of each of its inputs."""
    try:
        return future.result()
    except BaseException as exc:
        error = describe_task_error(exc, batch.start, batch.count)
        if isinstance(error, InputCancellation):
            error = ExecutionError(f"{error}: its task was cancelled on the cluster")
        return _failed_outcomes(error, batch.count)
