"""The map engine: lazily pump inputs into batch tasks, keep a bounded window in flight,
and hand results back in input order (or as they complete).

Memory stays bounded whatever the input length: at most `window` tasks are in flight and
at most `window` finished batches wait in the reorder buffer.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from distributed import Client, as_completed
from distributed.scheduler import KilledWorker

from ..cluster import get_client
from ..telemetry import hooks
from .batching import BatchSizer
from .inputs import check_first_input
from .gcpause import gc_paused
from .outcomes import ok_values
from .payload import Args
from .progress import Progress
from .submit import Batch, CallPlan, cancel_call, describe_task_error, plan_call
from .watchdog import SchedulerWatch

if TYPE_CHECKING:
    from ..function import Function


def window_size(client: Client) -> int:
    """Tasks in flight: enough to keep every worker thread busy while results travel."""
    try:
        threads = sum(client.nthreads().values())
    except Exception:
        threads = 1
    return max(4, 3 * threads)


def _note_failed_input(exc: BaseException, index: int) -> BaseException:
    note = f"nbfan: raised by input {index} of the map"
    if note not in getattr(exc, "__notes__", []):
        if hasattr(exc, "add_note"):
            exc.add_note(note)
        else:
            exc.__notes__ = [*getattr(exc, "__notes__", []), note]  # type: ignore[attr-defined]
    try:
        exc.input_index = index  # type: ignore[attr-defined]
    except Exception:
        pass
    return exc


def run_map(
    function: "Function[Any, Any]",
    inputs: Iterator[Args],
    *,
    order_outputs: bool = True,
    return_exceptions: bool = False,
    label: str = "map",
    total: int | None = None,
) -> Iterator[Any]:
    """Yield the result of every input. The generator's `finally` cancels what is left on the
    cluster, so breaking out, an error or KeyboardInterrupt never leaves work running.
    `total`: the number of inputs when known up front (sized inputs), for progress and ETA."""
    client = get_client()
    plan = plan_call(function, client, stop_on_error=not return_exceptions)
    hooks.call_started(client, plan.call_id, function, label.rsplit(".", 1)[-1])
    if function.is_generator:
        yield from _run_flat_map(plan, inputs, return_exceptions, window_size(client), label)
        return
    window = window_size(client)
    sizer = BatchSizer()
    progress = Progress(label, plan.call_id)
    if total is not None:
        progress.counts.total = total
        hooks.call_total(client, plan.call_id, total)
    in_flight: dict[Any, Batch] = {}
    ready: dict[int, list[Any]] = {}  # start -> values, waiting for their turn (ordered output)
    completed = as_completed(loop=client.loop)
    watch = SchedulerWatch(client)  # a scheduler that is gone raises instead of hanging
    next_index = 0  # next input index to submit
    next_out = 0  # next input index to yield (ordered output)
    exhausted = False
    state = "failed"
    try:
        while True:
            while not exhausted and len(in_flight) + len(ready) < window:
                with gc_paused():  # the pump's many small tuples would set off costly collections
                    chunk = list(itertools.islice(inputs, sizer.next_size()))
                if not chunk:
                    exhausted = True
                    if total != next_index:
                        progress.counts.total = next_index
                        hooks.call_total(client, plan.call_id, next_index)
                    break
                if next_index == 0:
                    check_first_input(function.raw_f, chunk[0], label)
                with gc_paused():
                    batch = plan.submit_batch(chunk, next_index)
                in_flight[batch.future.key] = batch
                completed.add(batch.future)
                next_index += len(chunk)
                progress.counts.running += len(chunk)
            if not in_flight:
                break
            future = watch.next_done(completed)
            batch = in_flight.pop(future.key)
            if future.status == "cancelled" and client.status != "running":
                raise watch.lost(f"the client is {client.status}; input {batch.start} and others had not finished")
            task_error = future.exception() if future.status == "error" else None
            if isinstance(task_error, KilledWorker) and batch.count > 1:
                # Workers died running this batch: run its inputs one per task, so only an input
                # that kills its worker fails, not its batch-mates.
                future.release()
                for offset, args in enumerate(batch.inputs):
                    single = plan.submit_batch([args], batch.start + offset)
                    in_flight[single.future.key] = single
                    completed.add(single.future)
                continue
            if task_error is not None:
                # the task itself failed (its worker died, no worker can run it...): every input
                # of it gets the error (raised, or in its slot with return_exceptions)
                error = describe_task_error(task_error, batch.start, batch.count)
                elapsed, outcomes = 0.0, [(False, error)] * batch.count
            else:
                elapsed, outcomes = watch.outcomes(future, batch.start, batch.count)
                sizer.observe(batch.count, elapsed, batch.payload_bytes)
            future.release()
            values = ok_values(outcomes)
            if values is not None:  # every input succeeded: the common case, no per-input work
                progress.counts.done += batch.count
            else:
                values = []
                for offset, (ok, value) in enumerate(outcomes):
                    if ok:
                        progress.counts.done += 1
                        values.append(value)
                        continue
                    progress.counts.failed += 1
                    failure = value if isinstance(value, BaseException) else value.to_exception()
                    exc = _note_failed_input(failure, batch.start + offset)
                    if not return_exceptions:
                        raise exc
                    values.append(exc)
            progress.counts.running -= batch.count
            progress.tick()
            if not order_outputs:
                yield from values
                continue
            ready[batch.start] = values
            while next_out in ready:
                values = ready.pop(next_out)
                next_out += len(values)
                yield from values
        state = "done"
    except (GeneratorExit, KeyboardInterrupt):
        state = "cancelled"
        raise
    finally:
        if (in_flight or state != "done") and not watch.gone:
            cancel_call(client, plan.call_id, [b.future for b in in_flight.values()])
        hooks.call_ended(client, plan.call_id, state)
        progress.close(state)


def _run_flat_map(plan: CallPlan, inputs: Iterator[Args], return_exceptions: bool, window: int, label: str) -> Iterator[Any]:
    """Generator functions: every yield of every input, as produced (out of order)."""
    from distributed import Queue

    from .stream import iter_queue_events

    queue_name = f"nbfan-stream-{plan.call_id}"
    queue = Queue(queue_name, client=plan.client)
    progress = Progress(label, plan.call_id)
    in_flight: dict[int, Batch] = {}  # input index -> its task (one input per task)
    # One reader for the whole map: a poll may return the events of several inputs, and
    # leaving the reader between polls would drop them (and hang waiting for their ends).
    events = iter_queue_events(queue, in_flight)
    next_index = 0
    exhausted = False
    state = "failed"
    try:
        while True:
            while not exhausted and len(in_flight) < window:
                chunk = list(itertools.islice(inputs, 1))
                if not chunk:
                    exhausted = True
                    progress.counts.total = next_index
                    hooks.call_total(plan.client, plan.call_id, next_index)
                    break
                in_flight[next_index] = plan.submit_generator(chunk, next_index, queue_name)
                next_index += 1
                progress.counts.running += 1
            if not in_flight:
                break
            for kind, index, payload in events:
                if kind == "y":
                    yield payload
                    continue
                batch = in_flight.pop(index, None)
                if batch is not None:
                    batch.future.release()
                progress.counts.running -= 1
                if kind == "e":
                    progress.counts.done += 1
                else:
                    progress.counts.failed += 1
                    exc = _note_failed_input(payload.to_exception(), index)
                    if not return_exceptions:
                        raise exc
                    yield exc
                progress.tick()
                break  # refill the window
        state = "done"
    except (GeneratorExit, KeyboardInterrupt):
        state = "cancelled"
        raise
    except OSError as exc:  # the stream's queue lives on the scheduler
        if plan.client.status == "running":
            raise
        raise SchedulerWatch(plan.client).lost(f"the client is {plan.client.status}; {type(exc).__name__}: {exc}") from None
    finally:
        if in_flight or state != "done":
            cancel_call(plan.client, plan.call_id, [b.future for b in in_flight.values()])
        if plan.client.status == "running":  # else the queue went with the scheduler
            try:
                queue.close()
            except Exception:
                pass
        hooks.call_ended(plan.client, plan.call_id, state)
        progress.close(state)
