"""`f.spawn_map(...)`: hand a whole map to the cluster and return at once with a `MapCall`.

All inputs are serialized at call time and stored (`mapstore`: on the scheduler when small,
on the workers when large, see `map_data`), then ONE coordinator task is submitted
fire-and-forget (`coordinator`); we return only once the scheduler holds both, so the caller
may exit at once. The map goes on with no client: its handle can be re-attached by id from any
process connected to the same cluster.

Memory: the map's inputs are kept until it finishes, and its results until they are read
(`.get()` or iteration). Collected results are dropped 10 minutes after they were read to the
end, and at most the last 100 finished maps keep their results.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

import cloudpickle
from distributed import Client, fire_and_forget

from nbfan.cluster import current_connection, get_client
from nbfan.cluster.connect import scheduler_address
from nbfan.engine import call_events
from nbfan.engine.aio import iter_twin, iterate_in_thread, static_twin, twin, user_facing
from nbfan.engine.call_graph import CallGraphNode, call_graph
from nbfan.engine.cancel import cancel_by_id
from nbfan.engine.coordinator import coordinate
from nbfan.engine.map_data import INLINE_INPUT_BYTES, read_held, scatter_inputs
from nbfan.engine.map_loop import note_failed_input, window_size
from nbfan.engine.output import FailedInput, Follower, LogLine, read_failures, read_logs
from nbfan.engine.plan import plan_call
from nbfan.engine.target import CallTarget
from nbfan.exception import (
    EmbeddedClusterWarning,
    ExecutionError,
    InputCancellation,
    InvalidError,
    NotFoundError,
    warn_caller,
)
from nbfan.keys import coordinator_key
from nbfan.scheduler.rpc import request
from nbfan.worker.gcpause import gc_paused
from nbfan.worker.outcomes import ok_values
from nbfan.worker.payload import Args, dumps_inputs, loads
from nbfan.worker.waiting import waiting_for_the_cluster

SUBMIT_TIMEOUT = 30.0  # seconds to wait for the scheduler to acknowledge the coordinator task


def _rpc(client: Client, op: str, **kwargs: Any) -> Any:
    """A request to the map store on the scheduler (a part of nbfan's scheduler plugin)."""
    return request(client, f"map.{op}", **kwargs)


def spawn_map(function: CallTarget, inputs: Iterator[Args]) -> MapCall[Any]:
    """Start the map on the cluster and return its `MapCall` once the scheduler has it."""
    if function.is_generator:
        raise InvalidError(
            f"{function.name} is a generator function: .spawn_map() keeps one result per input; "
            f"use .map() to stream every yield, or return a list from a plain function"
        )
    connection = current_connection()
    client = connection.client
    if connection.source == "embedded":
        warn_caller(
            "spawn_map is running on an embedded in-process Dask cluster: the work dies when this process exits. "
            "Start a shared cluster with `nbfan cluster up` (or nbfan.connect(address)) to let it outlive the process.",
            EmbeddedClusterWarning,
        )
    with gc_paused():  # 100k small tuples would otherwise set off costly collections
        items = list(inputs)  # a failing input iterator raises here, before anything is submitted
        payload = dumps_inputs(items, check_size=False)
    plan = plan_call(function, client, stop_on_error=False)
    map_id = plan.call_id
    if payload.nbytes <= INLINE_INPUT_BYTES:  # small: the map store keeps them
        chunks: list[tuple[int, int, Any]] = []
        stored: dict[str, Any] = {"inputs": payload.to_bytes()}
    else:  # large: they stay on the workers, the map store holds their keys
        chunks = scatter_inputs(client, items, payload.nbytes)
        stored = {"inputs": None, "chunks": [(start, count, future.key) for start, count, future in chunks]}
    del payload
    window = window_size(client, plan.resources, function.options.concurrency_limit)
    coordinator_args = (map_id, plan.fn_blob, plan.spec, plan.resources, window)
    # the same call, kept by the map store: a cluster with a journal runs it again after a restart
    resume = cloudpickle.dumps(functools.partial(coordinate, *coordinator_args)) if items else None
    _rpc(client, "create", map_id=map_id, name=function.name, total=len(items), resume=resume, **stored)
    del chunks, stored, resume  # held by the map store now
    call_events.call_started(client, map_id, function, "spawn_map")
    call_events.call_total(client, map_id, len(items))
    if items:
        future = client.submit(coordinate, *coordinator_args, key=coordinator_key(map_id), pure=False)
        fire_and_forget(future)
        if not _rpc(client, "submitted", map_id=map_id, timeout=SUBMIT_TIMEOUT):
            _rpc(client, "fail", map_id=map_id, epoch=0, error="its coordinator task never reached the scheduler")
            raise ExecutionError(
                f"the scheduler at {scheduler_address(client)} did not acknowledge spawn_map {map_id} "
                f"within {SUBMIT_TIMEOUT:g}s"
            )
        del future
    return MapCall(map_id, client, total=len(items))


@dataclass(frozen=True)
class MapProgress:
    """Inputs, not tasks. `state`: running, done, cancelled or failed (the map itself failed)."""

    done: int
    failed: int
    total: int
    state: str
    restarts: int = 0  # times the coordinator was rerun after losing its worker


R = TypeVar("R")


class MapGetMethod(Protocol[R]):
    """`map_call.get()`: every result, in input order; `map_call.get(index=i)`: input i's."""

    @overload
    def __call__(self, timeout: float | None = None, *, index: None = None,
                 return_exceptions: bool = False) -> list[R]: ...
    @overload
    def __call__(self, timeout: float | None = None, *, index: int, return_exceptions: bool = False) -> R: ...
    @overload
    async def aio(self, timeout: float | None = None, *, index: None = None,
                  return_exceptions: bool = False) -> list[R]: ...
    @overload
    async def aio(self, timeout: float | None = None, *, index: int, return_exceptions: bool = False) -> R: ...


def attach_map(object_id: str) -> MapCall[Any]:
    """Re-attach to a spawned map from any process connected to the same cluster."""
    if not isinstance(object_id, str) or not object_id:
        raise InvalidError(f"MapCall.from_id() takes the map's object_id string, got {object_id!r}")
    client = get_client()
    summary = _rpc(client, "progress", map_id=object_id)
    _raise_if_missing(summary, client)
    call: MapCall[Any] = MapCall(object_id, client, total=summary["total"])
    call._follower = Follower(client, object_id)
    return call


class MapCall(Generic[R]):
    """A map started with `.spawn_map()`. Watch it (`.progress()`), collect it (`.get()` or
    iterate, results in input order), stop it (`.cancel()`), or re-attach from another process
    with `MapCall.from_id(object_id)`.

    Failed inputs do not stop a spawned map: every input runs. `.get()` then raises the first
    failure in input order (its original type, remote traceback and input index), unless
    `return_exceptions=True`, which puts each exception in its slot."""

    def __init__(self, object_id: str, client: Client | None = None, total: int | None = None) -> None:
        self.object_id = object_id
        self._client = client
        self.total = total
        self._follower: Follower | None = None  # a re-attached handle shows the map's output as it iterates

    def __repr__(self) -> str:
        return f"<MapCall {self.object_id} ({self.total} inputs)>"

    def __reduce__(self) -> tuple[Any, tuple[str, None, int | None]]:
        # a handle travels as its id (into another call, back as a result) and finds the
        # client where it lands
        return (MapCall, (self.object_id, None, self.total))

    @property
    def client(self) -> Client:
        if self._client is None or self._client.status in ("closed", "closing"):
            self._client = get_client()
        return self._client

    # -- re-attaching ------------------------------------------------------------------------

    from_id = static_twin(attach_map)

    # -- watching ----------------------------------------------------------------------------

    @twin
    def progress(self) -> MapProgress:
        """How far the map is: done / failed / total inputs and its state."""
        summary = _rpc(self.client, "progress", map_id=self.object_id)
        _raise_if_missing(summary, self.client)
        return MapProgress(summary["done"], summary["failed"], summary["total"], summary["state"], summary["restarts"])

    @twin
    def logs(self, *, input: int | None = None, since: float | None = None) -> list[LogLine]:
        """What the map's inputs printed and logged, oldest first, as LogLine(input, stream,
        time, worker, text); kept even when nobody is attached, as long as its results are."""
        return read_logs(self.client, self.object_id, input=input, since=since)

    @twin
    def failures(self) -> list[FailedInput]:
        """The map's failed inputs: FailedInput(input, exc_type, message, traceback, worker, attempts)."""
        return read_failures(self.client, self.object_id)

    # -- collecting --------------------------------------------------------------------------

    @iter_twin
    @user_facing
    def iter(self, *, start: int = 0, end: int | None = None, return_exceptions: bool = False,
             timeout: float | None = None) -> Iterator[R]:
        """Results of inputs [start, end) in input order as they become available (all of them by
        default); see the class docstring for errors. `timeout`: seconds to wait for the next
        result before raising TimeoutError."""
        total = self.num_inputs()
        end = total if end is None else end
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= total):
            raise InvalidError(f"map {self.object_id} has {total} inputs: iter(start={start!r}, end={end!r}) "
                               f"needs 0 <= start <= end <= {total}")
        with waiting_for_the_cluster():  # inside a task: leave the worker slot while waiting
            yield from self._results(return_exceptions, timeout, start, end)

    def _results(self, return_exceptions: bool, timeout: float | None, first: int, end: int) -> Iterator[Any]:
        import time

        client = self.client
        cursor = first
        waited_since = time.monotonic()
        while cursor < end:
            wait = 1.0 if timeout is None else max(0.0, min(1.0, waited_since + timeout - time.monotonic()))
            reply = _rpc(client, "results", map_id=self.object_id, cursor=cursor, wait=wait)
            _raise_if_missing(reply, client)
            if self._follower is not None:
                self._follower.poll()
            for start, count, blob, key in reply["batches"]:
                if start >= end:
                    break
                outcomes = loads(blob) if key is None else _read_batch(client, key, start, count)
                values = _batch_values(outcomes, start, return_exceptions)
                yield from itertools.islice(values, max(0, cursor - start), min(count, end - start))
                cursor = start + count
            if reply["batches"]:
                waited_since = time.monotonic()
            if cursor >= end:
                return
            state = reply["state"]
            if state == "running":
                if timeout is not None and time.monotonic() - waited_since >= timeout:
                    raise TimeoutError(
                        f"map {self.object_id}: no new result within {timeout}s ({cursor - first} of {end - first} "
                        f"read); it is still running"
                    )
                continue
            if reply["batches"]:
                continue  # more may be stored past the read limit
            gap_end = min(reply.get("next_start", end), end)
            yield from self._missing(cursor, gap_end, state, reply.get("error"), return_exceptions)
            cursor = gap_end

    def _missing(self, start: int, end: int, state: str, error: str | None, return_exceptions: bool) -> Iterator[Any]:
        """Inputs [start, end) of a map that ended without their results (cancelled, failed)."""
        why = error or f"the map was {state}"
        cls = InputCancellation if state == "cancelled" else ExecutionError
        for index in range(start, end):
            exc = note_failed_input(cls(f"map {self.object_id}: input {index} has no result: {why}"), index)
            if not return_exceptions:
                raise exc
            yield exc

    def __iter__(self) -> Iterator[R]:
        return self.iter()

    def _get(self, timeout: float | None = None, *, index: int | None = None,
             return_exceptions: bool = False) -> Any:
        """All results in input order (blocks until the map is done), or, with `index`, the
        result of that input alone (as Modal's `FunctionCall.get(index=)`)."""
        if index is None:
            return list(self.iter(return_exceptions=return_exceptions, timeout=timeout))
        (value,) = self.iter(start=index, end=index + 1, return_exceptions=return_exceptions, timeout=timeout)
        return value

    if TYPE_CHECKING:

        @property
        def get(self) -> MapGetMethod[R]:
            """Every result in input order, or one input's (`index=`); `await map_call.get.aio()`."""
    else:
        get = twin(_get)

    @twin
    def done(self) -> bool:
        """Whether the map has ended (done, failed or cancelled), without waiting."""
        return self.progress().state != "running"

    @twin
    def get_call_graph(self) -> list[CallGraphNode]:
        """The map and the calls its inputs made, with their states (Modal's `get_call_graph()`)."""
        return call_graph(self.client, self.object_id)

    @twin
    def num_inputs(self) -> int:
        """How many inputs the map has (as Modal's `FunctionCall.num_inputs()`)."""
        if self.total is None:
            self.total = self.progress().total
        return self.total

    async def __aiter__(self) -> AsyncIterator[R]:
        async for value in iterate_in_thread(self.iter()):
            yield value

    # -- stopping ----------------------------------------------------------------------------

    @twin
    def cancel(self) -> None:
        """Stop the map: nothing new starts and running inputs are stopped. Results stored
        before the cancel stay readable; the other slots raise InputCancellation."""
        cancel_by_id(self.client, self.object_id)


def _raise_if_missing(summary: dict[str, Any], client: Client) -> None:
    state = summary.get("state")
    if state == "unknown":
        raise NotFoundError(
            f"no spawned map {summary['map_id']!r} on the cluster at {scheduler_address(client)}: "
            f"it never existed there (or the scheduler restarted)"
        )
    if state == "released":
        raise NotFoundError(f"spawned map {summary['map_id']!r} was released from the scheduler: {summary['error']}")


def _read_batch(client: Client, key: str, start: int, count: int) -> Any:
    """A batch of results kept on the workers."""
    try:
        return read_held(client, key)
    except Exception as exc:
        raise ExecutionError(
            f"the results of inputs {start}..{start + count - 1} were kept on the cluster's workers and could not "
            f"be read back ({type(exc).__name__}: {exc}); the workers holding them may have died"
        ) from exc


def _batch_values(stored: tuple[float, Any], start: int, return_exceptions: bool) -> Iterator[Any]:
    """A stored batch's values in input order; its first failure raised, or each in its slot."""
    _elapsed, outcomes = stored
    values = ok_values(outcomes)
    if values is not None:
        yield from values
        return
    for offset, (ok, value) in enumerate(outcomes):
        if ok:
            yield value
            continue
        exc = note_failed_input(value.to_exception(), start + offset)
        if not return_exceptions:
            raise exc
        yield exc
