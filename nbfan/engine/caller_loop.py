"""The caller's side of the map loop: `.map` / `.starmap` / `.for_each` (values in input order,
or as they complete; generator functions flat-mapped) and `.remote_gen` (one generator's
yields). Results go to the caller's iteration, with progress and telemetry on the way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from nbfan.cluster import get_client
from nbfan.engine import call_events
from nbfan.engine.inputs import check_first_input
from nbfan.engine.map_loop import Finished, MapLoop, Yielded, note_failed_input, slots_for
from nbfan.engine.plan import plan_call
from nbfan.engine.progress import Progress
from nbfan.engine.sources import IteratorSource
from nbfan.engine.target import CallTarget
from nbfan.worker.outcomes import ok_values
from nbfan.worker.payload import Args
from nbfan.worker.waiting import waiting_for_the_cluster


def run_map(
    function: CallTarget,
    inputs: Iterator[Args],
    *,
    order_outputs: bool = True,
    return_exceptions: bool = False,
    label: str = "map",
    total: int | None = None,
) -> Iterator[Any]:
    """Yield the result of every input (every yield of every input, for generator functions).
    Leaving early (break, an error, KeyboardInterrupt) cancels what is left on the cluster.
    `total`: the number of inputs when known up front (sized inputs), for progress and ETA."""
    client = get_client()
    # inputs are not copied at submit, as with raw Dask: arrays given to a map must not be
    # changed in place before their results arrive
    plan = plan_call(function, client, stop_on_error=not return_exceptions, snapshot_inputs=False, share_buffers=True)
    call_events.call_started(client, plan.call_id, function, label.rsplit(".", 1)[-1])
    source = IteratorSource(inputs, lambda first: check_first_input(function.raw_f, first, label), total=total)
    stream = f"nbfan-stream-{plan.call_id}" if function.is_generator else None
    progress = Progress(label, plan.call_id)
    if total is not None:
        progress.counts.total = total
        call_events.call_total(client, plan.call_id, total)

    def submitted(batch: Any) -> None:
        progress.counts.running += batch.count

    def exhausted(count: int) -> None:  # now the total is known (unsized inputs), or confirmed
        if count != total:
            progress.counts.total = count
            call_events.call_total(client, plan.call_id, count)

    slots = slots_for(client, plan.resources, function.options.concurrency_limit)
    loop = MapLoop(plan, source, window=max(4, 3 * slots), slots=slots, ordered=order_outputs, stream=stream,
                   on_submit=submitted, on_exhausted=exhausted)
    yield from _deliver(loop, progress, return_exceptions=return_exceptions, note_inputs=True)


def stream_one(function: CallTarget, args: Args) -> Iterator[Any]:
    """`.remote_gen`: one generator input's yields, as they are produced."""
    client = get_client()
    plan = plan_call(function, client, share_buffers=True)
    call_events.call_started(client, plan.call_id, function, "remote_gen")  # ahead of the task: it cannot be lost
    call_events.call_total(client, plan.call_id, 1)
    progress = Progress(f"{function.name}.remote_gen", plan.call_id)
    progress.counts.total = progress.counts.running = 1
    loop = MapLoop(plan, IteratorSource(iter([args])), window=1, stream=f"nbfan-stream-{plan.call_id}")
    yield from _deliver(loop, progress, return_exceptions=False, note_inputs=False)


def _deliver(loop: MapLoop, progress: Progress, *, return_exceptions: bool, note_inputs: bool) -> Iterator[Any]:
    """Run the loop to the end, turning its events into values (or raised failures), and say
    how the call ended to telemetry and progress, however it ends."""
    plan = loop.plan
    state = "failed"
    try:
        with waiting_for_the_cluster():  # inside a task: leave the worker slot to the children
            for event in loop.events():
                if isinstance(event, Yielded):
                    yield event.value
                    continue
                yield from _values(event, progress, return_exceptions, note_inputs)
        state = "done"
    except (GeneratorExit, KeyboardInterrupt):
        state = "cancelled"
        raise
    finally:
        loop.close(cancel=bool(loop.in_flight) or state != "done")
        call_events.call_ended(plan.client, plan.call_id, state)
        progress.close(state)


def _values(finished: Finished, progress: Progress, return_exceptions: bool, note_inputs: bool) -> Iterator[Any]:
    """A finished batch's values; its first failure raised, or each in its slot."""
    batch = finished.batch
    counts = progress.counts
    counts.running -= batch.count
    if finished.known is None:
        values = ok_values(finished.outcomes)
        if values is not None:  # every input succeeded: the common case, no per-input work
            counts.done += batch.count
            progress.tick()
            yield from values
            return
    for offset, (ok, value) in enumerate(finished.outcomes):
        if ok:
            counts.done += 1
            if not finished.stream_end:  # a generator input's end carries no value
                yield value
            continue
        counts.failed += 1
        exc = value if isinstance(value, BaseException) else value.to_exception()
        if note_inputs:
            exc = note_failed_input(exc, batch.start + offset)
        progress.tick()
        if not return_exceptions:
            raise exc
        yield exc
    progress.tick()
