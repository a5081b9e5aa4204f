"""The task that runs a `spawn_map` on the cluster, with no client left to drive it.

It runs on a worker, secedes from the worker's thread pool (it only waits), and drives the one
map loop (`map_loop.MapLoop`) through the worker's client; where results go is the scheduler's
map store (`scheduler/mapstore.py`), one finished batch at a time (a large batch stays on the
workers: `map_data.py`). Dask reruns it if its worker dies; the rerun skips what was stored, so
at most the in-flight window is redone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, cast

from nbfan.engine import call_events
from nbfan.engine.map_data import INLINE_RESULT_BYTES, ChunkedInputs, scatter_result
from nbfan.engine.map_loop import Finished, MapLoop, StopMap
from nbfan.engine.plan import CallPlan
from nbfan.engine.sources import RangeSource, pending_ranges
from nbfan.exception import ExecutionError, InputCancellation
from nbfan.scheduler.rpc import request
from nbfan.worker.gcpause import gc_paused
from nbfan.worker.outcomes import count_failed
from nbfan.worker.payload import Failure, dumps_outcomes, loads
from nbfan.worker.task import TaskSpec

logger = logging.getLogger("nbfan")

POLL_SECONDS = 1.0  # how often an idle coordinator checks whether its map was cancelled

Rpc = Callable[..., Any]


def coordinate(map_id: str, fn_blob: bytes, spec: TaskSpec, resources: dict[str, float] | None, window: int) -> str:
    """Task body of a spawn_map's coordinator. Returns the map's final state."""
    from distributed import get_client, secede

    client = get_client()
    secede()  # waiting on batches must not hold one of the worker's task slots

    def rpc(op: str, **kwargs: Any) -> Any:
        return request(client, f"map.{op}", **kwargs)

    claim = rpc("claim", map_id=map_id)
    if claim["state"] != "running":
        return cast(str, claim["state"])
    epoch = claim["epoch"]
    try:
        if claim.get("chunks"):  # large inputs stay on the workers: read a chunk at a time
            inputs: Sequence[Any] = ChunkedInputs(client, claim["chunks"], claim["total"])
        else:
            with gc_paused():
                inputs = loads(claim["inputs"])
        state = _drive(client, rpc, map_id, epoch, inputs, claim, fn_blob, spec, resources, window)
    except BaseException as exc:
        logger.exception("nbfan: the coordinator of map %s failed", map_id)
        rpc("fail", map_id=map_id, epoch=epoch, error=f"the map's coordinator failed: {type(exc).__name__}: {exc}")
        raise
    if state in ("done", "failed"):
        call_events.call_ended(client, map_id, state)
    return state


def _drive(
    client: Any,
    rpc: Rpc,
    map_id: str,
    epoch: int,
    inputs: Sequence[Any],
    claim: dict[str, Any],
    fn_blob: bytes,
    spec: TaskSpec,
    resources: dict[str, float] | None,
    window: int,
) -> str:
    """Run the map's missing batches through the map loop, storing each as it finishes."""
    plan = CallPlan(client=client, call_id=map_id, fn_blob=fn_blob, spec=spec, resources=resources)
    source = RangeSource(inputs, pending_ranges([tuple(s) for s in claim["stored"]], claim["total"]))

    def still_running() -> None:  # a cancel (or a newer coordinator) ends the loop
        state = rpc("progress", map_id=map_id)["state"]
        if state != "running":
            raise StopMap(state)

    loop = MapLoop(plan, source, window=window, ordered=False, on_wait=still_running, wait_interval=POLL_SECONDS)
    failed_any = claim["failed"] > 0
    state = "running"
    try:
        for event in loop.events():
            assert isinstance(event, Finished)
            failed = count_failed(event.outcomes)
            failed_any = failed_any or failed > 0
            state = _store(client, rpc, map_id, epoch, event, failed)
            if state not in ("running", "done"):  # done: that was the last batch
                return state
        state = cast(str, rpc("finish", map_id=map_id, epoch=epoch))
        if state != "done":
            return state
        return "failed" if failed_any else "done"
    except StopMap as stop:
        state = stop.state
        return state
    finally:
        if loop.in_flight:  # superseded: a newer coordinator runs these inputs, only drop our tasks
            loop.close(cancel=state != "superseded")


def _store(client: Any, rpc: Rpc, map_id: str, epoch: int, finished: Finished, failed: int) -> str:
    """Keep one finished batch (on the scheduler, or on the workers when large); the map's
    state after it."""
    batch = finished.batch
    if finished.blob is not None and finished.blob.nbytes > INLINE_RESULT_BYTES:
        held = scatter_result(client, finished.blob)
        kept: str = rpc(
            "store", map_id=map_id, epoch=epoch, start=batch.start, count=batch.count, outcomes=None,
            done=batch.count - failed, failed=failed, key=held.key, nbytes=finished.blob.nbytes,
        )
        held.release()  # the map store holds it now (or refused it: a stale coordinator's)
        return kept
    if finished.blob is not None:
        blob = finished.blob.to_bytes()
    else:  # the task died: each of its inputs failed with what killed it
        assert finished.known is not None
        blob = _failed_blob(finished.known[0][1], batch.count)
    state: str = rpc(
        "store", map_id=map_id, epoch=epoch, start=batch.start, count=batch.count,
        outcomes=blob, done=batch.count - failed, failed=failed,
    )
    return state


def _failed_blob(exc: BaseException, count: int) -> bytes:
    """The outcomes blob of a batch whose task died: each input failed with `exc`."""
    if isinstance(exc, InputCancellation):
        exc = ExecutionError(f"{exc}: its task was cancelled on the cluster")
    return dumps_outcomes([(False, Failure.capture(exc))] * count).to_bytes()
