"""Each internal of distributed that nbfan.compat relies on is still there, with the shape it
was checked against: an upgrade that breaks one fails here, naming it, instead of deep inside a
map. Checked on a real in-process scheduler and worker where an instance is needed."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from distributed import Client, Scheduler, Worker
from distributed.client import Client as ClientClass
from distributed.deploy.cluster import Cluster
from distributed.scheduler import WorkerState

from nbfan import compat, compat_logs
from tests.waiting import wait_until


def params(fn: Any) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_scheduler_methods_nbfan_calls_keep_their_signatures() -> None:
    assert params(Scheduler.stimulus_cancel)[:6] == ["self", "keys", "client", "force", "reason", "msg"]
    assert len(params(Scheduler.bulk_schedule_unrunnable_after_adding_worker)) == 2  # (self, worker state)
    assert {"msg", "workers", "on_error"} <= set(params(Scheduler.broadcast))
    assert {"recommendations", "stimulus_id"} <= set(params(Scheduler.transitions))
    assert {"resources", "used_resources", "processing"} <= set(WorkerState.__slots__)


def test_client_internals_nbfan_uses_are_there() -> None:
    from distributed.batched import BatchedSend

    client_source = inspect.getsource(ClientClass)
    assert 'BatchedSend(interval="10ms"' in client_source and "self.scheduler_comm = bcomm" in client_source
    assert "self.interval" in inspect.getsource(BatchedSend._background_send)  # read on every send (set_send_interval)
    assert 'self.batched_stream = BatchedSend(interval="2ms"' in inspect.getsource(Worker)  # worker_setup
    # scheduler_setup: the scheduler's streams to workers and clients (set_stream_interval)
    assert 'self.stream_comms[address] = BatchedSend(interval="5ms"' in inspect.getsource(Scheduler.add_worker)
    add_client = inspect.getsource(Scheduler.add_client)
    assert 'BatchedSend(interval="2ms"' in add_client and "self.client_comms[client] = bcomm" in add_client
    # ...whose client stream is made after the plugins' add_client hook (scheduler_setup waits a turn)
    assert add_client.index("plugin.add_client") < add_client.index("self.client_comms[client] = bcomm")
    assert callable(ClientClass._send_to_scheduler)
    assert params(ClientClass._send_to_scheduler)[:2] == ["self", "msg"]
    assert "self._adaptive" in inspect.getsource(Cluster)  # set by Cluster.adapt()
    # client_stream: a new stream on every (re)connection, none while reconnecting
    assert "self.scheduler_comm = bcomm" in inspect.getsource(ClientClass._ensure_connected)
    reconnect = inspect.getsource(ClientClass._reconnect)
    assert 'self.status = "connecting"' in reconnect and "self.scheduler_comm = None" in reconnect
    assert 'reason="scheduler-connection-lost"' in reconnect  # cancelled_by_lost_connection
    from distributed.client import FutureCancelledError

    assert compat.cancelled_by_lost_connection(FutureCancelledError("k", "scheduler-connection-lost"))
    assert not compat.cancelled_by_lost_connection(FutureCancelledError("k", "cancelled by the user"))


@pytest.fixture
def scheduler_and_worker() -> Any:
    async def start() -> tuple[Scheduler, Worker]:
        scheduler = await Scheduler(dashboard_address=":0", port=0)
        worker = await Worker(scheduler.address, nthreads=1, resources={"X": 1})
        return scheduler, worker

    loop = asyncio.new_event_loop()
    scheduler, worker = loop.run_until_complete(start())
    yield loop, scheduler, worker
    loop.run_until_complete(worker.close())
    loop.run_until_complete(scheduler.close())
    loop.close()


def test_scheduler_handlers_streams_and_callbacks_are_dicts(scheduler_and_worker: Any) -> None:
    loop, scheduler, _worker = scheduler_and_worker
    compat.add_rpc_handler(scheduler, "nbfan_test", lambda comm=None: "pong")
    compat.add_stream_handler(scheduler, "nbfan-test", lambda **msg: None)
    assert scheduler.handlers["nbfan_test"]() == "pong" and "nbfan-test" in scheduler.stream_handlers
    seen: list[int] = []

    async def tick() -> None:
        compat.add_periodic_callback(scheduler, "nbfan-test-tick", lambda: seen.append(1), 10)
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        compat.remove_periodic_callback(scheduler, "nbfan-test-tick")

    loop.run_until_complete(tick())
    assert seen and "nbfan-test-tick" not in scheduler.periodic_callbacks


def test_worker_resources_set_on_both_sides_keep_what_tasks_hold(scheduler_and_worker: Any) -> None:
    loop, scheduler, worker = scheduler_and_worker
    address = worker.address
    ws = scheduler.workers[address]
    ws.used_resources["X"] = 1  # as if a task held it
    compat.set_worker_resource(scheduler, address, "X", 3)
    assert ws.resources["X"] == 3 and ws.used_resources["X"] == 1 and scheduler.resources["X"][address] == 3
    compat.set_worker_resource_on_worker("X", 3, dask_worker=worker)
    assert worker.state.total_resources["X"] == 3 and worker.state.available_resources["X"] == 3
    compat.schedule_waiting_tasks(scheduler, [address])  # nothing waits: a no-op that must not fail
    compat.move_queued_tasks(scheduler, address, [], "X")  # no target: a no-op that must not fail

    def mark(value: int, dask_worker: Any = None) -> None:
        dask_worker.nbfan_mark = value

    assert loop.run_until_complete(compat.run_on_worker(scheduler, address, mark, 7))
    assert worker.nbfan_mark == 7


def test_executing_keys_tasks_by_worker_name_and_task_resources_on_real_tasks() -> None:
    from distributed import Event, LocalCluster, as_completed

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0",
                      resources={"X": 3}) as cluster, Client(cluster) as client:
        event = Event(client=client)
        futures = [client.submit(lambda e, i: e.wait(), event, i, key=f"nbfan-compat-{i}", resources={"X": 1})
                   for i in range(3)]

        def running() -> list[list[str]]:
            return list(client.run_on_scheduler(lambda dask_scheduler: compat.executing_keys(dask_scheduler)).values())

        wait_until(lambda: running() == [["nbfan-compat-0"]], timeout=30, what="the worker's heartbeat to name it")
        # all three are assigned to the one worker (restricted tasks are not queued on the scheduler)
        assert list(client.run_on_scheduler(lambda dask_scheduler: compat.tasks_by_worker_name(
            dask_scheduler)).values()) == [3]
        assert client.run_on_scheduler(lambda dask_scheduler: compat.task_resources(
            dask_scheduler, "nbfan-compat-1")) == {"X": 1}
        completed = as_completed(futures)
        assert hasattr(completed, "thread_condition")  # engine/watchdog.py waits on it
        event.set()
        assert sorted(f.result() for f in completed) == [True, True, True]


def test_cancel_keys_and_who_wants_on_a_real_task() -> None:
    from distributed import Event, LocalCluster

    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:
        event = Event(client=client)
        future = client.submit(lambda e: e.wait(), event, key="nbfan-compat-test")

        async def inspect_and_cancel(dask_scheduler: Any = None) -> list[str]:
            while not compat.clients_wanting(dask_scheduler, "nbfan-compat-test"):  # the graph is on its way
                await asyncio.sleep(0.01)
            wanting = sorted(compat.clients_wanting(dask_scheduler, "nbfan-compat-test"))
            compat.cancel_keys(dask_scheduler, ["nbfan-compat-test", "no-such-key"], wanting[0], reason="test")
            return wanting

        assert client.run_on_scheduler(inspect_and_cancel) == [client.id]
        with pytest.raises(Exception, match="cancel"):
            future.result(timeout=10)
        event.set()


def test_events_are_dropped_topics_forgotten_and_stream_intervals_set() -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:
        heard: list[Any] = []
        client.subscribe_topic("nbfan-compat", heard.append)
        client.log_event("nbfan-compat", {"n": 1})
        client.log_event("nbfan-compat-unheard", {"n": 1})

        async def on_scheduler(client_id: str, dask_scheduler: Any = None) -> dict[str, Any]:
            while not dask_scheduler.get_events("nbfan-compat"):  # the event is on its way
                await asyncio.sleep(0.01)
            compat.drop_events(dask_scheduler, "nbfan-compat")
            dropped = dask_scheduler.get_events("nbfan-compat") == ()
            heard_topic_kept = "nbfan-compat" in dask_scheduler._broker._topics
            while not dask_scheduler.get_events("nbfan-compat-unheard"):
                await asyncio.sleep(0.01)
            compat.drop_events(dask_scheduler, "nbfan-compat-unheard")  # nobody listens: the topic goes too
            unheard_gone = "nbfan-compat-unheard" not in dask_scheduler._broker._topics
            compat.forget_topic(dask_scheduler, "nbfan-compat")
            worker = next(iter(dask_scheduler.workers))
            return {
                "dropped": dropped and heard_topic_kept and unheard_gone,
                "forgotten": "nbfan-compat" not in dask_scheduler._broker._topics,
                "set": [compat.set_stream_interval(dask_scheduler, peer, 0.0005) for peer in (worker, client_id)],
                "intervals": [dask_scheduler.stream_comms[worker].interval,
                              dask_scheduler.client_comms[client_id].interval],
                "unknown": compat.set_stream_interval(dask_scheduler, "tcp://nowhere:1", 0.0005),
            }

        got = client.run_on_scheduler(on_scheduler, client.id)
        assert got == {"dropped": True, "forgotten": True, "set": [True, True], "intervals": [0.0005, 0.0005],
                       "unknown": False}


def test_the_quiet_close_filters_match_what_distributed_logs() -> None:
    """The records closing_quietly and quiet_lost_results drop are logged with these texts."""
    from distributed.batched import BatchedSend

    assert 'logger.info("Batched Comm Closed %r", self.comm, exc_info=True)' in inspect.getsource(
        BatchedSend._background_send
    )
    reconnect = inspect.getsource(ClientClass._reconnect)
    assert 'while timeout > 0 and self.status == "connecting"' in reconnect
    assert '"Failed to reconnect to scheduler after %.2f seconds, closing client"' in reconnect
    remove_worker = " ".join(inspect.getsource(Scheduler.remove_worker).split())
    assert 'already computed task(s), which will be recomputed elsewhere: " f"{recompute_keys} ({stimulus_id=})"' \
        in remove_worker


def test_quiet_lost_results_drops_only_warnings_about_moot_keys() -> None:
    import logging

    moot = {"nbfan-a-0-1", "nbfan-b-0-1"}
    unquiet = compat_logs.quiet_lost_results(lambda keys: keys <= moot)
    logger = logging.getLogger("distributed.scheduler")

    def kept(keys: str) -> bool:
        text = f"Removing worker 'tcp://x' caused the cluster to lose already computed task(s), which will be " \
               f"recomputed elsewhere: {keys} (stimulus_id='s')"
        return logger.filter(logging.LogRecord(logger.name, logging.WARNING, "", 0, text, None, None))

    assert not kept("{'nbfan-a-0-1'}") and not kept("{'nbfan-a-0-1', 'nbfan-b-0-1'}")
    assert kept("{'nbfan-a-0-1', 'other-key'}") and kept("{'x'}")
    unquiet()
    assert kept("{'nbfan-a-0-1'}")  # the filter is gone with its scheduler


def test_worker_status_change_reads_the_event_a_real_scheduler_logs() -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:

        def change(dask_scheduler: Any = None) -> list[str | None]:
            (worker,) = dask_scheduler.workers
            dask_scheduler.handle_worker_status_change("closing_gracefully", worker, stimulus_id="compat")
            _, event = dask_scheduler.get_events(worker)[-1]
            return [compat.worker_status_change(worker, event), compat.worker_status_change(worker, {"action": "x"})]

        assert client.run_on_scheduler(change) == ["closing_gracefully", None]


def test_quiet_failed_gathers_drops_only_errors_about_moot_keys() -> None:
    import logging

    assert 'logger.error("Couldn\'t gather keys: %s", failed_states)' in inspect.getsource(Scheduler.gather)
    moot = {"nbfan-a-0-1", "nbfan-a-1-1"}
    compat_logs.quiet_failed_gathers(lambda keys: keys <= moot)
    logger = logging.getLogger("distributed.scheduler")

    def kept(states: dict[str, str]) -> bool:
        return logger.filter(logging.LogRecord(logger.name, logging.ERROR, "", 0, "Couldn't gather keys: %s",
                                               (states,), None))

    assert not kept({"nbfan-a-0-1": "forgotten"}) and not kept({"nbfan-a-0-1": "forgotten", "nbfan-a-1-1": "released"})
    assert kept({"nbfan-a-0-1": "forgotten", "other": "memory"}) and kept({"x": "forgotten"})
    # the client's side of the same fetch
    gather = inspect.getsource(ClientClass._gather)
    assert '"Couldn\'t gather %s keys, rescheduling %s",' in gather and 'response["keys"],' in gather
    client_logger = logging.getLogger("distributed.client")

    def client_kept(keys: tuple[str, ...]) -> bool:
        return client_logger.filter(logging.LogRecord(client_logger.name, logging.WARNING, "", 0,
                                                      "Couldn't gather %s keys, rescheduling %s", (len(keys), keys), None))

    assert not client_kept(("nbfan-a-0-1",)) and not client_kept(("nbfan-a-0-1", "nbfan-a-1-1"))
    assert client_kept(("nbfan-a-0-1", "other")) and client_kept(("x",))


def test_cluster_closed_follows_a_real_cluster() -> None:
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    assert not compat.cluster_closed(cluster)
    cluster.close()
    assert compat.cluster_closed(cluster)


def test_thread_pool_exit_hooks_are_there() -> None:
    import threading

    assert callable(threading._register_atexit)  # type: ignore[attr-defined]
    assert "_register_atexit(_python_exit)" in inspect.getsource(__import__("concurrent.futures.thread").futures.thread)
