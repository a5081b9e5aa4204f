"""Handles on work running on the cluster: `FunctionCall` (one `.spawn`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Generic, TypeVar, cast

from distributed import Future, as_completed

from nbfan import compat
from nbfan.cluster import get_client
from nbfan.cluster.connect import scheduler_address
from nbfan.engine.aio import iter_twin, static_twin, twin, user_facing, wait_future
from nbfan.engine.call_graph import CallGraphNode, call_graph
from nbfan.engine.output import FailedInput, LogLine, read_failures, read_logs
from nbfan.engine.plan import cancel_call
from nbfan.engine.pushed import Pushed, call_outcomes, release_when_finished
from nbfan.engine.spawn_map import MapCall, attach_map
from nbfan.exception import InvalidError, NotFoundError
from nbfan.keys import parse_task_key, task_key
from nbfan.scheduler.rpc import request
from nbfan.scheduler.telemetry import STREAM_OP
from nbfan.worker.waiting import waiting_for_the_cluster

R = TypeVar("R")


def unwrap_outcome(outcomes: list[tuple[bool, Any]]) -> Any:
    """The result of a one-input call from its outcomes; raises the input's remote exception."""
    ok, value = outcomes[0]
    if ok:
        return value
    raise value.to_exception()


def _only_input(call_id: str, index: int) -> None:
    if index != 0:
        raise InvalidError(f"call {call_id} has one input: get(index={index!r}) takes index=0 (spawn_map's MapCall "
                           f"takes any)")


def attach(object_id: str) -> FunctionCall[Any]:
    """Re-attach to a call from any process connected to the same cluster (a spawn_map's id gives
    its MapCall, which answers the same methods)."""
    client = get_client()
    key = task_key(object_id, 0, 1)
    kept = request(client, "retention.lookup", call_id=object_id, key=key)
    if kept["state"] == "dropped":
        raise NotFoundError(
            f"call {object_id!r} finished, and its result is no longer on the cluster: {kept['why']}"
        )
    if kept["state"] == "unknown":
        spawned_map = request(client, "map.progress", map_id=object_id)
        if spawned_map.get("state") not in ("unknown", "released"):  # a spawn_map's id, as in Modal
            return cast(FunctionCall[Any], attach_map(object_id))
        raise NotFoundError(
            f"no call {object_id!r} on the cluster at {scheduler_address(client)}: it never existed there, "
            f"or it finished and its result was released"
        )
    future: Future[Any] = Future(key, client)
    if kept.get("blob") is not None:  # its outcome is kept on the scheduler, its task is gone
        outcome = Pushed()
        outcome.settle(kept["blob"])
        return FunctionCall(future, outcome, holds_task=False)
    # A Future made from a key is not reported by the scheduler until the client says it
    # wants it (get_dataset does this too): ask for the key's state now.
    compat.desire_keys(client, [key])
    return FunctionCall(future)


def gather_calls(*calls: FunctionCall[Any] | MapCall[Any]) -> list[Any]:
    """Results of several calls in argument order (a spawn_map's: the list of its results); the
    first error is raised and the calls still running are cancelled."""
    by_future = {c._future: c for c in calls if isinstance(c, FunctionCall) and not c.done()}
    try:
        if by_future:
            for fut in as_completed(list(by_future), loop=next(iter(by_future)).client.loop):
                by_future[fut].get()  # raises the first error to arrive
        return [c.get() for c in calls]
    except BaseException:
        for c in calls:
            if not c.done():
                c.cancel()
        raise


class FunctionCall(Generic[R]):
    """A call started with `.spawn()`: collect it with `.get()`, stop it with `.cancel()`,
    or hand its `object_id` to another process (`FunctionCall.from_id(id)`)."""

    def __init__(self, future: Future[Any], pushed: Pushed | None = None, shared: tuple[str, ...] = (),
                 holds_task: bool = True) -> None:
        parsed = parse_task_key(future.key)
        if parsed is None:
            raise NotFoundError(f"{future.key!r} is not an nbfan call")
        self._future = future
        self._pushed = pushed  # where the worker pushes the outcome, for the process that made the call
        self._shared = shared  # its inputs' shared-memory files (a blocking `.remote` only: it removes them)
        self.object_id: str = parsed[0]
        self._read = False
        self._holds_task = holds_task  # its future holds the task's key (not one re-attached to a kept outcome)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # a handle travels as its id (into another call, back as a result) and re-attaches
        # where it lands, as `FunctionCall.from_id` does
        return (attach, (self.object_id,))

    def __repr__(self) -> str:
        return f"<FunctionCall {self.object_id} {'finished' if self.done() else self._future.status}>"

    async def _get_aio(self, timeout: float | None = None, *, index: int = 0) -> R:
        import asyncio

        _only_input(self.object_id, index)
        try:
            await asyncio.wait_for(self._finished(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"call {self.object_id} has not finished after {timeout}s; it is still running"
            ) from None
        return self.get()

    @twin(aio=_get_aio)
    def get(self, timeout: float | None = None, *, index: int = 0) -> R:
        """The call's result; raises its remote exception, or the builtin TimeoutError when it
        has not finished within `timeout` seconds (the call keeps running). `index`: as Modal's,
        0 (a spawned call has one input; a spawn_map's MapCall takes any)."""
        _only_input(self.object_id, index)
        try:
            with waiting_for_the_cluster():  # inside a task: leave the worker slot while waiting
                outcomes = call_outcomes(self._future, self._pushed, timeout=timeout)
        except TimeoutError:
            raise TimeoutError(
                f"call {self.object_id} has not finished after {timeout}s; it is still running"
            ) from None
        self._mark_read()
        if self._holds_task and self._pushed is not None and self._pushed.blob is not None:
            # the outcome is here (and kept on the scheduler for re-attaching): a worker need not
            # keep the task's result for this handle, which would keep that worker from retiring
            release_when_finished(self._future)
        return cast(R, unwrap_outcome(outcomes))

    def _mark_read(self) -> None:
        """Tell the cluster the result was read: it is kept a while longer for other readers
        (`FunctionCall.from_id`), then dropped (see scheduler/retention.py)."""
        if not self._read and self._future.client.status == "running":
            self._read = True
            compat.send_to_scheduler(self._future.client, {"op": STREAM_OP, "event": "read", "call_id": self.object_id})

    async def _finished(self) -> None:
        """Wait on the running event loop until the outcome is here or the task finished."""
        if self._pushed is not None:
            await self._pushed.wait_async()
        else:
            await wait_future(self._future)

    @twin
    def cancel(self) -> None:
        """Stop the call: it will not start if queued (a running input runs to its end)."""
        cancel_call(self._future.client, self.object_id, [self._future])

    @twin
    def logs(self, *, input: int | None = None, since: float | None = None) -> list[LogLine]:
        """What the call printed and logged on the cluster, oldest first, as LogLine(input,
        stream, time, worker, text): kept while its result is (`nbfan logs ID` shows the same)."""
        return read_logs(self._future.client, self.object_id, input=input, since=since)

    @twin
    def failures(self) -> list[FailedInput]:
        """The call's input if it failed: FailedInput(input, exc_type, message, traceback, worker, attempts)."""
        return read_failures(self._future.client, self.object_id)

    @twin
    def num_inputs(self) -> int:
        """1: a spawned call has one input (as Modal's `FunctionCall.num_inputs()`)."""
        return 1

    @iter_twin
    def iter(self, *, start: int = 0, end: int | None = None) -> Iterator[R]:
        """The call's result as an iteration of one (Modal's `FunctionCall.iter()`, which a
        spawn_map's handle shares)."""
        if (start, end) not in ((0, None), (0, 1), (1, 1), (1, None)):
            raise InvalidError(f"call {self.object_id} has 1 input: iter(start={start!r}, end={end!r}) "
                               f"needs 0 <= start <= end <= 1")
        if start == 0 and end != 0:
            yield self.get()

    @twin
    def get_call_graph(self) -> list[CallGraphNode]:
        """The call and the calls made inside it, at any depth, with their states, as the
        cluster's telemetry knows them (Modal's `FunctionCall.get_call_graph()`)."""
        return call_graph(self._future.client, self.object_id)

    def done(self) -> bool:
        """Whether the call has finished (with a result, an error or cancelled), without waiting."""
        return (self._pushed is not None and self._pushed.blob is not None) or cast(bool, self._future.done())

    from_id = static_twin(attach)
    gather = static_twin(user_facing(gather_calls))


_detached = False
_session_spawns: list[str] | None = None  # ids of calls spawned inside a script session


def begin_session(detached: bool) -> None:
    """`nbfan run` / `app.run()`: remember the calls spawned from now on (to cancel them when the
    script ends) or, `detached`, let them outlive this process (see `keep_detached`)."""
    global _detached, _session_spawns
    _detached, _session_spawns = detached, []


def end_session() -> list[str]:
    """Stop remembering; the ids of the calls spawned during the session."""
    global _detached, _session_spawns
    spawned, _detached, _session_spawns = _session_spawns or [], False, None
    return spawned


_running_spawns: set[Future[Any]] = set()
_running_lock = threading.Lock()


def _forget(future: Future[Any]) -> None:
    with _running_lock:
        _running_spawns.discard(future)


def after_spawn(call: FunctionCall[Any]) -> None:
    """Called by `.spawn()`. The call runs even if its handle is dropped (as in Modal; Dask would
    forget a task nobody holds): its future is held here until it finishes. In a script session,
    remember it (to cancel it when the script ends) or, detached, let it outlive this process."""
    future = call._future
    # re-attachable by id, whoever spawned it: the cluster holds the result (scheduler/retention.py)
    hold = {"op": STREAM_OP, "event": "hold", "call_id": call.object_id, "key": future.key}
    compat.send_to_scheduler(future.client, hold)
    with _running_lock:
        _running_spawns.add(future)
    future.add_done_callback(_forget)
    if _detached:
        keep_detached(call)
    elif _session_spawns is not None:
        _session_spawns.append(call.object_id)


def keep_detached(call: FunctionCall[Any]) -> None:
    """Let a spawned call go on, and keep its result retrievable with `FunctionCall.from_id`, after
    this client exits: the future is published as a dataset, which the scheduler holds for a
    pseudo-client of its own. Its result stays on the scheduler until the cluster stops (or
    `client.unpublish_dataset("nbfan-call-<id>")`)."""
    future = call._future
    future.client.publish_dataset(future, name=f"nbfan-call-{call.object_id}")
