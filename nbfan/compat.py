"""Every use nbfan makes of distributed's internals, one function each, in one place.

nbfan builds on distributed's public extension points (SchedulerPlugin, register_plugin,
log_event, worker_client, ...). What they do not cover is here, each with the distributed
version it was checked against; tests/unit/test_compat.py fails loudly when an upgrade breaks
one. When distributed grows a public way, the function here changes and nothing else does.
The log records nbfan quiets are filtered in compat_logs.py, under the same rules.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

# -- on the scheduler ---------------------------------------------------------------------------


def add_rpc_handler(scheduler: Any, name: str, handler: Callable[..., Any]) -> None:
    """Answer `client.scheduler.<name>(...)` requests. `Server.handlers` is a plain dict that
    distributed's own extensions fill the same way (checked on distributed 2026.8.0)."""
    scheduler.handlers[name] = handler


def add_stream_handler(scheduler: Any, op: str, handler: Callable[..., Any]) -> None:
    """Handle `{"op": op, ...}` messages on clients' batched streams (distributed 2026.8.0:
    `Scheduler.stream_handlers`, a dict)."""
    scheduler.stream_handlers[op] = handler


def add_periodic_callback(scheduler: Any, name: str, callback: Callable[[], None], interval_ms: int) -> Any:
    """Run `callback` every `interval_ms` on the scheduler's loop until the scheduler closes
    (distributed 2026.8.0: `Server.periodic_callbacks`, started and stopped with the server)."""
    from tornado.ioloop import PeriodicCallback

    old = scheduler.periodic_callbacks.pop(name, None)
    if old is not None:  # a previous plugin instance that was replaced (Dask does not close it)
        old.stop()
    periodic = PeriodicCallback(callback, interval_ms)
    scheduler.periodic_callbacks[name] = periodic
    periodic.start()
    return periodic


def remove_periodic_callback(scheduler: Any, name: str) -> None:
    """Stop a callback added with `add_periodic_callback`."""
    periodic = scheduler.periodic_callbacks.pop(name, None)
    if periodic is not None:
        periodic.stop()


def cancel_keys(scheduler: Any, keys: Iterable[Any], client: str, reason: str, msg: str | None = None) -> None:
    """Cancel tasks from the scheduler side, whoever holds them (the panel's stop button, a
    cancelled spawn_map). Only keys some client still wants can be cancelled: Dask asserts it
    (distributed 2026.8.0: `Scheduler.stimulus_cancel(keys, client, force, reason, msg)`)."""
    tasks = scheduler.tasks
    wanted = [k for k in keys if k in tasks and tasks[k].who_wants]
    if wanted:
        scheduler.stimulus_cancel(wanted, client, force=True, reason=reason, msg=msg)


def hold_on_scheduler(scheduler: Any, keys: list[Any], holder: str) -> None:
    """Make the pseudo-client `holder` hold tasks (it is created on first use), as
    `fire_and_forget` and published datasets do (distributed 2026.8.0:
    `Scheduler.client_desires_keys(keys, client)`)."""
    scheduler.client_desires_keys(keys=list(keys), client=holder)


def release_keys(scheduler: Any, keys: list[Any], holder: str) -> None:
    """A holder (a pseudo-client such as "nbfan-retained") lets go of tasks; Dask forgets them when
    nobody else holds them (distributed 2026.8.0: `Scheduler.client_releases_keys(keys, client,
    stimulus_id)`)."""
    scheduler.client_releases_keys(keys=list(keys), client=holder, stimulus_id=f"nbfan-release-{time.time()}")


def clients_wanting(scheduler: Any, key: Any) -> set[str]:
    """The ids of the clients that hold a task (distributed 2026.8.0: `TaskState.who_wants`,
    a set of ClientState; published datasets and fire_and_forget count as clients)."""
    ts = scheduler.tasks.get(key)
    return {cs.client_key for cs in (ts.who_wants or ())} if ts is not None else set()


def drop_events(scheduler: Any, topic: str) -> None:
    """Forget the events kept for `topic` (they were forwarded to its subscribers already), and
    the topic itself when nobody listens to it (its client left). Dask keeps the last
    `distributed.scheduler.events-log-length` events of every topic, and has no public way to
    drop them (distributed 2026.8.0: `Scheduler._broker.truncate`, `Broker._topics` of `Topic`s
    with their `subscribers`)."""
    scheduler._broker.truncate(topic)
    kept = scheduler._broker._topics.get(topic)
    if kept is not None and not kept.subscribers:
        scheduler._broker._topics.pop(topic, None)


def forget_topic(scheduler: Any, topic: str) -> None:
    """Forget an event topic altogether, subscribers included: its one subscriber left
    (distributed 2026.8.0: `Broker._topics`, a defaultdict of `Topic`)."""
    scheduler._broker._topics.pop(topic, None)


def executing_keys(scheduler: Any) -> dict[str, list[Any]]:
    """Each worker's tasks running now (not those only assigned to it), as of its last
    heartbeat. distributed 2026.8.0: `WorkerState.executing` (TaskState -> seconds), refreshed
    by `Scheduler.heartbeat_worker`; `processing` also holds the tasks queued on the worker."""
    return {address: [ts.key for ts in ws.executing] for address, ws in scheduler.workers.items()}


def task_resources(scheduler: Any, key: Any) -> dict[str, float]:
    """The resources a task asks of its worker ({} for none, or an unknown key). distributed
    2026.8.0: `TaskState.resource_restrictions`, set from `resources=` when the graph arrives."""
    task = scheduler.tasks.get(key)
    return dict(getattr(task, "resource_restrictions", None) or {})


def tasks_by_worker_name(scheduler: Any) -> dict[str, int]:
    """How many tasks each worker (by its name, as a cluster manager's spec names it) runs or
    holds queued. distributed 2026.8.0: `WorkerState.name` and `.processing`."""
    return {str(ws.name): len(ws.processing) for ws in scheduler.workers.values()}


def set_worker_resource(scheduler: Any, address: str, name: str, amount: float) -> None:
    """The scheduler's record of one resource of one worker. Not `Scheduler.add_resources`: it
    zeroes the worker's used resources, all of them, while its tasks still hold them, and the
    scheduler then over-assigns (distributed 2026.8.0: `WorkerState.resources`,
    `.used_resources`, `Scheduler.resources`)."""
    ws = scheduler.workers.get(address)
    if ws is None:
        return
    ws.resources[name] = amount
    ws.used_resources.setdefault(name, 0)
    scheduler.resources.setdefault(name, {})[address] = amount


def schedule_waiting_tasks(scheduler: Any, addresses: Iterable[str]) -> None:
    """After workers gained a resource, let tasks that waited for it go to them (distributed
    2026.8.0: `bulk_schedule_unrunnable_after_adding_worker` + `transitions`)."""
    recommendations: dict[Any, Any] = {}
    for address in addresses:
        ws = scheduler.workers.get(address)
        if ws is not None:
            recommendations.update(scheduler.bulk_schedule_unrunnable_after_adding_worker(ws))
    if recommendations:
        scheduler.transitions(recommendations, stimulus_id=f"nbfan-{time.time()}")


def move_queued_tasks(scheduler: Any, victim: str, targets: list[str], restriction: str) -> None:
    """Move the tasks restricted to `restriction` that wait (not yet running) on `victim` to
    `targets`, with Dask's own safe steal handshake (distributed 2026.8.0: the `stealing`
    extension's `move_task_request`, `WorkerState.processing`)."""
    stealing = scheduler.extensions.get("stealing")
    workers = scheduler.workers
    thieves = [workers[a] for a in targets if a in workers]
    victim_ws = workers.get(victim)
    if stealing is None or not thieves or victim_ws is None:
        return
    moved = 0
    for ts in list(victim_ws.processing):
        if restriction in (ts.resource_restrictions or {}) and ts not in stealing.in_flight:
            stealing.move_task_request(ts, victim_ws, thieves[moved % len(thieves)])
            moved += 1


async def run_on_worker(scheduler: Any, address: str, function: Callable[..., Any], *args: Any) -> bool:
    """Run `function(*args, dask_worker=...)` on one worker from the scheduler (the plugin has
    no client); True when it ran. (distributed 2026.8.0: the workers' `run` op, as
    `Client.run` sends it, through `Scheduler.broadcast`.)"""
    from distributed.protocol.pickle import dumps

    msg = {"op": "run", "function": dumps(function), "args": dumps(args), "wait": True}
    out = await scheduler.broadcast(msg=msg, workers=[address], on_error="return")
    reply = out.get(address)
    return isinstance(reply, dict) and reply.get("status") == "OK"


# -- on a worker --------------------------------------------------------------------------------


def set_worker_resource_on_worker(name: str, amount: float, dask_worker: Any = None) -> None:
    """Set one resource's total on this worker (run there: `dask_worker` is passed in), keeping
    what running tasks hold, then let it start tasks that waited for it. Not
    `Worker.set_resources`: that also reports to the scheduler through `add_resources` (see
    `set_worker_resource`). (distributed 2026.8.0:
    `WorkerState.total_resources/available_resources`, `UnpauseEvent`.)"""
    from distributed.worker_state_machine import UnpauseEvent

    state = dask_worker.state
    old = state.total_resources.get(name, 0)
    state.available_resources[name] = state.available_resources.get(name, 0) + amount - old
    state.total_resources[name] = amount
    if state.running:  # an unpause of a running worker only re-checks its ready/constrained tasks
        dask_worker.handle_stimulus(UnpauseEvent(stimulus_id=f"nbfan-{time.time()}"))


def holds_worker_slot() -> bool:
    """Whether this thread is one of the worker's task threads (it can `secede`), not a thread a
    task started itself (distributed 2026.8.0: `threadpoolexecutor.thread_state.executor` and
    the executor's `_threads`)."""
    import threading

    from distributed.threadpoolexecutor import thread_state

    executor = getattr(thread_state, "executor", None)
    return executor is not None and threading.current_thread() in getattr(executor, "_threads", ())


def current_task_key() -> Any:
    """The key of the task running in this thread of a worker, None elsewhere (distributed
    2026.8.0: `distributed.worker.thread_state.key`, which is `dask.context.thread_state`)."""
    from dask.context import thread_state

    return getattr(thread_state, "key", None)


# -- in a client --------------------------------------------------------------------------------


def send_to_scheduler(client: Any, msg: dict[str, Any]) -> None:
    """Put a message on the client's batched stream to the scheduler: it arrives in order with
    the tasks the client submits, and costs no round trip (distributed 2026.8.0:
    `Client._send_to_scheduler`)."""
    client._send_to_scheduler(msg)


def client_stream(client: Any) -> Any:
    """The client's batched stream to the scheduler: a new object each time the client connects
    again after losing its scheduler (distributed 2026.8.0: `Client.scheduler_comm`, replaced by
    `_ensure_connected`, None while connecting). The scheduler it reaches may be a new one at the
    same address, which knows nothing of what this process set up on the old one."""
    return getattr(client, "scheduler_comm", None)


def cancelled_by_lost_connection(exc: BaseException) -> bool:
    """A future cancelled because its client lost the scheduler, not by anyone's cancel (distributed
    2026.8.0: `Client._reconnect` cancels every future with this reason). The client may be
    connected again by the time the caller reads it (a scheduler back at the same address)."""
    return getattr(exc, "reason", None) == "scheduler-connection-lost"


def set_send_interval(client: Any, seconds: float) -> bool:
    """How long a client's (or worker's) batched stream to the scheduler gathers messages before
    sending. distributed fixes it (`Client.scheduler_comm = BatchedSend(interval="10ms")`,
    `Worker.batched_stream = BatchedSend(interval="2ms")`, no config; 2026.8.0), and the
    client's is most of a `.remote` round trip; `BatchedSend.interval` is read on every send, so
    setting it applies at once. False when there is no such stream."""
    comm = client_stream(client) or getattr(client, "batched_stream", None)
    if comm is None or not hasattr(comm, "interval"):
        return False
    comm.interval = seconds
    return True


def set_stream_interval(scheduler: Any, peer: str, seconds: float) -> bool:
    """How long the scheduler's batched stream to one worker or client gathers messages before
    sending (distributed 2026.8.0: `Scheduler.stream_comms[worker]` and
    `Scheduler.client_comms[client]`, BatchedSends of 5 ms and 2 ms, no config). False when
    there is no such stream (yet)."""
    comm = scheduler.stream_comms.get(peer) or scheduler.client_comms.get(peer)
    if comm is None or not hasattr(comm, "interval"):
        return False
    comm.interval = seconds
    return True


def worker_status_change(topic: str, msg: Any) -> str | None:
    """The new status a scheduler event says a worker took ("closing_gracefully" when it is
    being retired, "running" if that is undone), or None for any other event. distributed
    2026.8.0: `Scheduler.handle_worker_status_change` logs `{"action": "worker-status-change",
    "status": name}` on the worker's address."""
    if isinstance(msg, dict) and msg.get("action") == "worker-status-change" and isinstance(topic, str):
        return str(msg.get("status"))
    return None


def release_keys_in_order(client: Any, keys: list[Any]) -> None:
    """Release this client's want of `keys` through its batched stream, so the release reaches
    the scheduler after the tasks it just submitted (an RPC such as `Client.cancel` can overtake
    their `update-graph`, find no task, and do nothing; the tasks would then stay forever). The
    message `Future.release` sends (distributed 2026.8.0: the `client-releases-keys` stream op)."""
    client._send_to_scheduler({"op": "client-releases-keys", "keys": list(keys), "client": client.id})


def desire_keys(client: Any, keys: list[Any]) -> None:
    """Tell the scheduler this client wants the state of tasks it did not submit (re-attaching
    a call by id), as `Client.get_dataset` does for its futures (distributed 2026.8.0: the
    `client-desires-keys` stream op)."""
    client._send_to_scheduler({"op": "client-desires-keys", "keys": list(keys)})


# -- CPython -------------------------------------------------------------------------------------


def before_thread_pools_shut_down(callback: Callable[[], None]) -> None:
    """Run `callback` at interpreter exit while thread pools still take work: before
    `concurrent.futures` refuses new work (its own exit hook) and before non-daemon threads are
    joined. distributed runs a future's done-callbacks and a cluster's close in such pools, so a
    plain `atexit` hook (which runs after them) makes them fail with "cannot schedule new futures
    after interpreter shutdown". `threading._register_atexit` is what `concurrent.futures` itself
    uses (CPython 3.9-3.13); its hooks run last-registered first, so ours runs before the pools'."""
    import concurrent.futures.thread  # noqa: F401  (its hook first, so ours runs before it)
    import threading

    threading._register_atexit(callback)  # type: ignore[attr-defined]


def cluster_closed(cluster: Any) -> bool:
    """Whether a Dask cluster object has been closed (distributed 2026.8.0: `Cluster.status`, a
    `distributed.core.Status`, `closing`/`closed` once `close()` is called)."""
    from distributed.core import Status

    return getattr(cluster, "status", None) in (Status.closing, Status.closed)


def is_adaptive(cluster: Any) -> bool:
    """Whether a Dask cluster object scales itself (distributed 2026.8.0: `Cluster._adaptive`,
    set by `cluster.adapt()`)."""
    return getattr(cluster, "_adaptive", None) is not None
