"""The map engine: lazily pump inputs into batch tasks, keep a bounded window in flight,
and hand results back in input order (or as they complete).

Memory stays bounded whatever the input length: at most `window` tasks are in flight and
at most `window` finished batches wait in the reorder buffer.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from distributed import Client, as_completed
from distributed.scheduler import KilledWorker

from ..aio import aio_method, in_thread
from ..cluster import get_client
from ..telemetry import hooks
from ..exception import InvalidError
from .batching import BatchSizer
from .inputs import check_first_input, check_kwargs, map_inputs, starmap_inputs
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
) -> Iterator[Any]:
    """Yield the result of every input. The generator's `finally` cancels what is left on the
    cluster, so breaking out, an error or KeyboardInterrupt never leaves work running."""
    client = get_client()
    plan = plan_call(function, client, stop_on_error=not return_exceptions)
    hooks.call_started(client, plan.call_id, function, label.rsplit(".", 1)[-1])
    if function.is_generator:
        yield from _run_flat_map(plan, inputs, return_exceptions, window_size(client), label)
        return
    window = window_size(client)
    sizer = BatchSizer()
    progress = Progress(label, plan.call_id)
    in_flight: dict[Any, Batch] = {}
    batch_inputs: dict[Any, list[Args]] = {}  # key -> its inputs, to re-run a killed batch one by one
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
                    progress.counts.total = next_index
                    hooks.call_total(client, plan.call_id, next_index)
                    break
                if next_index == 0:
                    check_first_input(function.raw_f, chunk[0], label)
                with gc_paused():
                    batch = plan.submit_batch(chunk, next_index)
                in_flight[batch.future.key] = batch
                batch_inputs[batch.future.key] = chunk
                completed.add(batch.future)
                next_index += len(chunk)
                progress.counts.running += len(chunk)
            if not in_flight:
                break
            future = watch.next_done(completed)
            batch = in_flight.pop(future.key)
            chunk = batch_inputs.pop(future.key)
            if future.status == "cancelled" and client.status != "running":
                raise watch.lost(f"the client is {client.status}; input {batch.start} and others had not finished")
            task_error = future.exception() if future.status == "error" else None
            if isinstance(task_error, KilledWorker) and batch.count > 1:
                # Workers died running this batch: run its inputs one per task, so only an input
                # that kills its worker fails, not its batch-mates.
                future.release()
                for offset, args in enumerate(chunk):
                    single = plan.submit_batch([args], batch.start + offset)
                    in_flight[single.future.key] = single
                    batch_inputs[single.future.key] = [args]
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
    except GeneratorExit:
        state = "cancelled"
        raise
    except KeyboardInterrupt:
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


# -- async iteration over the sync engine ----------------------------------------------------

_DONE = object()


async def iterate_in_thread(iterator: Iterator[Any], buffer: int = 1024) -> AsyncIterator[Any]:
    """Drive a blocking iterator from a worker thread and yield its items to the event loop.

    Leaving the `async for` early stops the thread and closes the iterator (which cancels the
    map's remaining inputs)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    room = threading.Semaphore(buffer)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in iterator:
                while not room.acquire(timeout=0.1):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                loop.call_soon_threadsafe(queue.put_nowait, (True, item))
            loop.call_soon_threadsafe(queue.put_nowait, (True, _DONE))
        except BaseException as exc:
            loop.call_soon_threadsafe(queue.put_nowait, (False, exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="nbfan-aio-map", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = await queue.get()
            if not ok:
                raise item
            if item is _DONE:
                return
            room.release()
            yield item
    finally:
        stop.set()


def _sync_inputs_from_async(aiterable: Any, loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    """Read an async iterable from the engine's thread, one item at a time, on the caller's loop."""
    aiterator = aiterable.__aiter__()
    while True:
        try:
            yield asyncio.run_coroutine_threadsafe(aiterator.__anext__(), loop).result()
        except StopAsyncIteration:
            return


def _as_sync_iterables(iterables: tuple[Any, ...]) -> tuple[Any, ...]:
    loop = asyncio.get_running_loop()
    return tuple(
        _sync_inputs_from_async(it, loop) if hasattr(it, "__aiter__") and not hasattr(it, "__iter__") else it
        for it in iterables
    )


# -- the Function methods ---------------------------------------------------------------------


def _map(
    self: "Function[Any, Any]",
    *iterables: Any,
    kwargs: dict[str, Any] | None = None,
    order_outputs: bool = True,
    return_exceptions: bool = False,
) -> Iterator[Any]:
    """Run the function over the inputs in parallel (zip semantics), results in input order
    (or completion order with `order_outputs=False`). Lazy: work starts when you iterate.
    Generator functions are flat-mapped: every yield of every input, as produced."""
    inputs = map_inputs(iterables, check_kwargs(kwargs, "map"), "map")
    return run_map(self, inputs, order_outputs=order_outputs, return_exceptions=return_exceptions, label=f"{self.name}.map")


async def _map_aio(
    self: "Function[Any, Any]",
    *iterables: Any,
    kwargs: dict[str, Any] | None = None,
    order_outputs: bool = True,
    return_exceptions: bool = False,
) -> AsyncIterator[Any]:
    sync_iterables = _as_sync_iterables(iterables)
    await in_thread(get_client)
    inputs = map_inputs(sync_iterables, check_kwargs(kwargs, "map"), "map")
    results = run_map(self, inputs, order_outputs=order_outputs, return_exceptions=return_exceptions, label=f"{self.name}.map")
    async for value in iterate_in_thread(results):
        yield value


def _starmap(
    self: "Function[Any, Any]",
    iterable: Any,
    *,
    kwargs: dict[str, Any] | None = None,
    order_outputs: bool = True,
    return_exceptions: bool = False,
) -> Iterator[Any]:
    """Like map, but each input is a tuple of positional arguments: f.starmap([(1, 2), (3, 4)])."""
    inputs = starmap_inputs(iterable, check_kwargs(kwargs, "starmap"))
    return run_map(self, inputs, order_outputs=order_outputs, return_exceptions=return_exceptions, label=f"{self.name}.starmap")


async def _starmap_aio(
    self: "Function[Any, Any]",
    iterable: Any,
    *,
    kwargs: dict[str, Any] | None = None,
    order_outputs: bool = True,
    return_exceptions: bool = False,
) -> AsyncIterator[Any]:
    (sync_iterable,) = _as_sync_iterables((iterable,))
    await in_thread(get_client)
    inputs = starmap_inputs(sync_iterable, check_kwargs(kwargs, "starmap"))
    results = run_map(self, inputs, order_outputs=order_outputs, return_exceptions=return_exceptions, label=f"{self.name}.starmap")
    async for value in iterate_in_thread(results):
        yield value


def _for_each(
    self: "Function[Any, Any]", *iterables: Any, kwargs: dict[str, Any] | None = None, ignore_exceptions: bool = False
) -> None:
    """Run the function over the inputs for its side effects; block until all are done."""
    inputs = map_inputs(iterables, check_kwargs(kwargs, "for_each"), "for_each")
    for _ in run_map(self, inputs, order_outputs=False, return_exceptions=ignore_exceptions, label=f"{self.name}.for_each"):
        pass


async def _for_each_aio(
    self: "Function[Any, Any]", *iterables: Any, kwargs: dict[str, Any] | None = None, ignore_exceptions: bool = False
) -> None:
    async for _ in _map_aio(self, *iterables, kwargs=kwargs, order_outputs=False, return_exceptions=ignore_exceptions):
        pass


def _spawn_map(self: "Function[Any, Any]", *iterables: Any, kwargs: dict[str, Any] | None = None) -> Any:
    """Start the map on the cluster and return at once; it goes on after this process exits."""
    from .spawn_map import spawn_map

    return spawn_map(self, map_inputs(iterables, check_kwargs(kwargs, "spawn_map"), "spawn_map"))


async def _spawn_map_aio(self: "Function[Any, Any]", *iterables: Any, kwargs: dict[str, Any] | None = None) -> Any:
    sync_iterables = _as_sync_iterables(iterables)
    return await in_thread(_spawn_map, self, *sync_iterables, kwargs=kwargs)


map_method: aio_method[Any] = aio_method(_map, _map_aio)
starmap_method: aio_method[Any] = aio_method(_starmap, _starmap_aio)
for_each_method: aio_method[Any] = aio_method(_for_each, _for_each_aio)
spawn_map_method: aio_method[Any] = aio_method(_spawn_map, _spawn_map_aio)


