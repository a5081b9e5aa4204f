"""The one map loop. It serves the caller's `.map` (and `.remote_gen`), a spawn_map's
coordinator and generator streams alike; they differ only in where inputs come from (an
`InputSource`), how finished work is noticed (task results, or a generator stream's events) and
where results go (the consumer of `MapLoop.events()`).

What the loop does, once for all of them: pump inputs into batch tasks while fewer than
`window` are in flight, wait for the next finished one without hanging on a lost scheduler,
re-run a batch killed with its worker one input per task (so only an input that kills its
worker fails), turn a task that died into a failure of each of its inputs, hand batches back in
input order through a reorder buffer (or as they complete), and cancel whatever is left on the
cluster when it stops early. Memory stays bounded: at most `window` tasks in flight and at most
`window` finished batches waiting.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from distributed import Client, Future, as_completed
from distributed.client import FutureCancelledError
from distributed.scheduler import KilledWorker

from nbfan.engine import batching
from nbfan.engine.batching import BatchSizer
from nbfan.engine.placement import cluster_view
from nbfan.engine.plan import Batch, CallPlan, cancel_call, decode_outcomes, describe_task_error
from nbfan.engine.sources import InputSource
from nbfan.engine.stream import iter_queue_events
from nbfan.engine.watchdog import SchedulerWatch, wait_for_news
from nbfan.scheduler.caps import CAP_PREFIX
from nbfan.worker.gcpause import gc_paused
from nbfan.worker.payload import Args, Payload
from nbfan.worker.shared import release as release_shared
from nbfan.worker.shared import trim as trim_shared


def slots_for(client: Client, resources: dict[str, float] | None = None, limit: int | None = None) -> int:
    """The worker threads that can run a task asking `resources` at once: the threads of the
    workers whose resources fit it, each worker holding no more such tasks than its resources
    allow, and no more than the function's `limit` (its concurrency_limit) cluster-wide."""
    ask = {k: v for k, v in (resources or {}).items() if v > 0 and not k.startswith(CAP_PREFIX)}
    try:
        workers = cluster_view(client).workers
    except Exception:
        workers = ()
    slots = 0
    for worker in workers:
        if not worker.fits(ask):
            continue
        slots += min([worker.nthreads, *(int(worker.resources[k] // v) for k, v in ask.items())])
    if limit is not None:
        slots = min(slots, limit)
    return max(1, slots)


def window_size(client: Client, resources: dict[str, float] | None = None, limit: int | None = None) -> int:
    """Tasks in flight: enough to keep every slot that can run the function busy while
    results travel (three per slot)."""
    return max(4, 3 * slots_for(client, resources, limit))


def note_failed_input(exc: BaseException, index: int) -> BaseException:
    """Say which input of a map raised `exc` (a note, and `exc.input_index`)."""
    note = f"nbfan: raised by input {index} of the map"
    if note not in getattr(exc, "__notes__", []):
        if hasattr(exc, "add_note"):
            exc.add_note(note)
        else:  # Python 3.10
            exc.__notes__ = [*getattr(exc, "__notes__", []), note]
    try:
        exc.input_index = index  # type: ignore[attr-defined]
    except Exception:
        pass
    return exc


# -- what the loop hands back -------------------------------------------------------------------


@dataclass
class Finished:
    """A batch whose task ended. `outcomes` are its inputs' (ok, value or Failure/exception)
    pairs in input order: decoded from `blob`, the task's result, or `known` without one (a task
    that died: each input failed; a generator input's end, whose values were already Yielded)."""

    batch: Batch
    elapsed: float = 0.0
    blob: Payload | None = None
    known: Sequence[tuple[bool, Any]] | None = None
    stream_end: bool = False  # a generator input ended: its outcome carries no value
    _outcomes: Sequence[tuple[bool, Any]] | None = field(default=None, repr=False)

    @property
    def outcomes(self) -> Sequence[tuple[bool, Any]]:
        if self._outcomes is None:
            if self.known is not None:
                self._outcomes = self.known
            else:
                assert self.blob is not None
                self.elapsed, self._outcomes = decode_outcomes(self.blob)
        return self._outcomes


@dataclass
class Yielded:
    """One value a generator input yielded (generator streams only)."""

    index: int
    value: Any


class StopMap(Exception):
    """Raised by a consumer's `on_wait` to end the loop (a coordinator whose map was cancelled)."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


# -- the loop -----------------------------------------------------------------------------------


class MapLoop:
    """One call's tasks: fill the window from `source`, yield `Finished` batches (and `Yielded`
    values for generator streams); `close()` cancels what is still on the cluster.

    `slots`: the worker threads that can run the function (a third of the window unless
    given): the first round of tasks fills them all, and batches are sized for that width.
    Tasks go to Dask with a priority that falls as the call submits more of them (see
    `_priority`), so calls share the slots they compete for.

    `stream`: the name of the Dask Queue generator tasks push their events to (generator
    functions: one input per task, events instead of task results). `on_submit(batch)` and
    `on_exhausted(number of inputs)` report the pump's progress; `on_wait()` is called about
    every `wait_interval` seconds while nothing finishes (it may raise StopMap)."""

    def __init__(
        self,
        plan: CallPlan,
        source: InputSource,
        *,
        window: int,
        slots: int | None = None,
        ordered: bool = True,
        sizer: BatchSizer | None = None,
        stream: str | None = None,
        on_submit: Callable[[Batch], None] | None = None,
        on_exhausted: Callable[[int], None] | None = None,
        on_wait: Callable[[], None] | None = None,
        wait_interval: float = 1.0,
    ) -> None:
        self.plan = plan
        self.source = source
        self.window = window
        self.slots = max(1, slots if slots is not None else window // 3)
        self.ordered = ordered and stream is None
        self._function_key = hashlib.blake2b(plan.fn_blob, digest_size=16).digest()
        if sizer is None:
            sizer = BatchSizer(floor=plan.inputs_per_list, slots=self.slots)
            sizer.start(source.remaining())
            if source.remaining() is not None:  # sized inputs: an iterator's are read lazily, from one on
                sizer.resume(batching.recall(self._function_key))
        self.sizer = sizer
        self.stream = stream
        self.on_submit = on_submit
        self.on_exhausted = on_exhausted
        self.on_wait = on_wait
        self.wait_interval = wait_interval
        self.watch = SchedulerWatch(plan.client)
        self.in_flight: dict[Any, Batch] = {}  # task key -> batch
        self.ready: dict[int, Finished] = {}  # reorder buffer: batch start -> finished batch
        self.exhausted = False
        self._told_exhausted = False
        self.submitted = 0  # inputs submitted so far
        self.tasks_submitted = 0
        # results are fetched as each task finishes; a task's error is read from its future
        self._completed = as_completed(loop=plan.client.loop, with_results=True, raise_errors=False)
        self._queue: Any = None

    # -- submitting ------------------------------------------------------------------------------

    def fill(self) -> None:
        """Submit batches until the window is full or the inputs are exhausted: all at once,
        in one message to the scheduler (one graph update costs it far less than many)."""
        chunks: list[tuple[int, Sequence[Args]]] = []
        while not self.exhausted and len(self.in_flight) + len(self.ready) + len(chunks) < self._window_now():
            size = 1 if self.stream else self.sizer.next_size(self.source.remaining())
            taken = self.source.take(size)
            if taken is None:
                self.exhausted = True
                break
            chunks.append(taken)
            self.submitted += len(taken[1])
            if self.stream is not None:  # a generator stream's tasks go one by one
                self._submit_all(chunks)
                chunks = []
        if chunks:
            self._submit_all(chunks)
        if self.exhausted and not self._told_exhausted:
            self._told_exhausted = True
            if self.on_exhausted is not None:
                self.on_exhausted(self.submitted)

    def _window_now(self) -> int:
        """The window, or one task per slot while batch sizes ramp up (slow inputs keep every
        slot busy, and the sizer learns from each result)."""
        if self.stream is None and self.sizer.ramping:
            return max(1, min(self.window, self.slots))
        return self.window

    def _priority(self) -> int:
        """The Dask priority of the next tasks (higher runs first among tasks waiting for a
        slot): the plan's (one-input calls: above every map), less the tasks this call has
        submitted so far. A call that has had few tasks goes ahead of one that has had many
        (least attained service first): a new map starts at once beside a long one, two long
        maps alternate, and none is starved, as the one ahead drops with every task it gets."""
        return self.plan.priority - self.tasks_submitted

    def _submit_all(self, chunks: list[tuple[int, Sequence[Args]]]) -> None:
        with gc_paused():
            if self.stream is not None:
                batches = [self.plan.submit_generator(inputs, start, self.stream, priority=self._priority())
                           for start, inputs in chunks]
            else:
                batches = self.plan.submit_batches(chunks, priority=self._priority())
                for batch in batches:
                    self._completed.add(batch.future)
        self.tasks_submitted += len(batches)
        for batch in batches:
            self.in_flight[batch.future.key] = batch
            if self.on_submit is not None:
                self.on_submit(batch)

    # -- waiting ---------------------------------------------------------------------------------

    def events(self) -> Iterator[Finished | Yielded]:
        """Finished batches (in input order when `ordered`) and streamed values, until every
        input has finished."""
        if self.stream is not None:
            yield from self._stream_events()
            return
        next_out = 0
        while True:
            self.fill()
            if not self.in_flight:
                return
            finished = self._next_finished()
            if finished is None:
                continue
            if not self.ordered:
                yield finished
                continue
            self.ready[finished.batch.start] = finished
            while next_out in self.ready:
                done = self.ready.pop(next_out)
                next_out += done.batch.count
                yield done

    def _next_finished(self) -> Finished | None:
        """The next batch whose task ended (None when it was split into single inputs)."""
        future, result = self._wait_for_a_task()
        batch = self.in_flight.pop(future.key)
        client = self.plan.client
        if future.status == "cancelled" and client.status != "running":
            release_shared(batch.shared)
            raise self.watch.lost(f"the client is {client.status}; input {batch.start} and others had not finished")
        error = _task_error(future)
        if isinstance(error, KilledWorker) and batch.count > 1:
            # Workers died running this batch: run its inputs one per task, so only an input
            # that kills its worker fails, not its batch-mates.
            batch.done_with()
            self._submit_all([(batch.start + offset, [args]) for offset, args in enumerate(batch.inputs)])
            return None
        if error is not None:
            failure = describe_task_error(error, batch.start, batch.count)
            batch.done_with()
            return Finished(batch, known=[(False, failure)] * batch.count)
        batch.done_with(result)
        finished = Finished(batch, blob=result)
        finished.outcomes  # noqa: B018  (decode now: the sizer learns from its compute time)
        self.sizer.observe(batch.count, finished.elapsed, batch.payload_bytes)
        batching.remember(self._function_key, self.sizer)
        return finished

    def _wait_for_a_task(self) -> tuple[Future[Any], Any]:
        last_call = time.monotonic()
        while True:
            done = self.watch.next_done(self._completed, timeout=self.wait_interval)
            if done is not None:
                return done
            if self.on_wait is not None and time.monotonic() - last_call >= self.wait_interval:
                last_call = time.monotonic()
                self.on_wait()

    def _stream_events(self) -> Iterator[Finished | Yielded]:
        from distributed import Queue

        self._queue = Queue(self.stream, client=self.plan.client)
        by_index: dict[int, Batch] = {}  # one input per task
        events = iter_queue_events(self._queue, by_index)  # one reader: a poll may hold several inputs' events
        try:
            while True:
                self.fill()
                for batch in self.in_flight.values():
                    by_index[batch.start] = batch
                if not self.in_flight:
                    return
                for kind, index, payload in events:
                    if kind == "y":
                        yield Yielded(index, payload)
                        continue
                    batch = by_index.pop(index)
                    self.in_flight.pop(batch.future.key, None)
                    batch.done_with()
                    yield Finished(batch, known=[(kind == "e", payload)], stream_end=True)
                    break  # refill the window
        except OSError as exc:  # the stream's queue lives on the scheduler
            if self.plan.client.status == "running":
                raise
            raise self.watch.lost(f"the client is {self.plan.client.status}; {type(exc).__name__}: {exc}") from None

    # -- stopping --------------------------------------------------------------------------------

    def close(self, *, cancel: bool = True) -> None:
        """Stop: cancel the tasks still in flight and stop their running inputs (`cancel`), or
        only drop them (a superseded coordinator: a newer one runs the same inputs)."""
        batches = list(self.in_flight.values())
        futures = [b.future for b in batches]
        client = self.plan.client
        if futures and not cancel and client.status == "running":
            client.cancel(futures)
        elif (futures or cancel) and not self.watch.gone:
            cancel_call(client, self.plan.call_id, futures)
        self.in_flight.clear()
        if client.status == "running" and not self.watch.gone:
            self._drop_results_in_transit()
        for batch in batches:  # cancelled: an input that did not start finds no buffer, and fails as it should
            release_shared(batch.shared)
        if self.plan.share is not None:
            trim_shared()  # the files kept for this map's next inputs
        if self._queue is not None and client.status == "running":
            try:
                self._queue.close()
            except Exception:
                pass

    def _drop_results_in_transit(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until the results being fetched for tasks that finished just before the
        stop have landed, and drop them. A script that stops early is often about to exit: the
        client closes next, cuts a fetch in progress, and tornado logs that as an error with a
        traceback the user did not cause. Cancelled tasks land at once (nothing to fetch)."""
        deadline = time.monotonic() + timeout
        while not self._completed.is_empty() and time.monotonic() < deadline:
            self._completed.next_batch(block=False)
            if not self._completed.is_empty():
                wait_for_news(self._completed, 0.05)


def _task_error(future: Future[Any]) -> BaseException | None:
    """What killed a task (its worker died, no worker can run it...), None if it ran."""
    if future.status == "error":
        error: BaseException = future.exception()
        return error
    if future.status == "cancelled":
        return FutureCancelledError(future.key, reason="cancelled")
    return None
