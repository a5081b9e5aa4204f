"""nbfan's one scheduler plugin. It holds what must outlive callers and workers, in these parts:

- `telemetry`: every call's counts, from task transitions and call events (tracker.py);
- `maps`: the durable state of spawn_maps (mapstore.py);
- `caps`: cluster-wide concurrency caps as worker resources (caps.py);
- `store`: named Dicts and Queues (store.py);
- `apps`: deployed apps, their versions, and the runs of their schedules (apps.py);
- `output`: what calls' inputs printed and which failed, kept per call and forwarded (output.py);
- `demand`: the workers the functions want, for autoscalers, and each function's stats (demand.py);
- `journal`: the durable state of `store` and `maps` on disk, read back on start (durable.py).

It answers one RPC handler, `nbfan`, whose `operation` names a part's operation; requests come through
`rpc.request` with the protocol version, and a request of another version is refused with a
message that names both. Installed by `Client.register_plugin` (idempotent by name)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

from nbfan import compat, compat_logs
from nbfan.keys import (
    EVENT_TOPIC,
    OUTPUT_TOPIC,
    OUTPUT_TOPIC_PREFIX,
    RESULT_TOPIC_PREFIX,
    output_topic,
    parse_task_key,
    result_topic,
)
from nbfan.scheduler import durable, intervals
from nbfan.scheduler.apps import Apps
from nbfan.scheduler.caps import Caps
from nbfan.scheduler.demand import Demand
from nbfan.scheduler.mapstore import MapStore
from nbfan.scheduler.output import Output
from nbfan.scheduler.retention import Retention
from nbfan.scheduler.store import Store
from nbfan.scheduler.telemetry import STREAM_OP, Telemetry

logger = logging.getLogger("nbfan")

PROTOCOL_VERSION = 1
PLUGIN_NAME = "nbfan"
HANDLER = "nbfan"  # the one RPC handler: `client.scheduler.nbfan(operation=..., version=..., ...)`


class NbfanPlugin(SchedulerPlugin):
    """The scheduler side of nbfan: telemetry, spawn_map store, caps, Dicts/Queues/apps."""

    name = PLUGIN_NAME
    idempotent = True  # register_plugin leaves an installed one (and its state) alone

    def __init__(self) -> None:
        self.telemetry = Telemetry()
        self.maps = MapStore()
        self.caps = Caps()
        self.store = Store()
        self.apps = Apps()
        self.launches: dict[tuple[str, str], str] = {}  # (app, function) -> the task key of its last scheduled run
        self.retention = Retention()
        self.output = Output(still_held=lambda call_id: call_id in self.retention.held or call_id in self.maps.records,
                             keep_for=lambda: self.retention.keep_for)
        self.demand = Demand(self.telemetry.tracker, deployed=self._deployed_knobs)
        self.scheduler: Any = None
        self.journal: Any = None  # opened on start when the scheduler is configured for one
        self._unquiet: Callable[[], None] = lambda: None  # removes the log filter start() adds
        self.ops: dict[str, Callable[..., Any]] = {
            "calls": self.telemetry.calls,
            "cancel": self.telemetry.cancel,
            "cancel_children": self.cancel_children,
            "caps.set": self.caps.set_cap,
            "caps.shares": self.caps.all_shares,
            "dict": self.store.dict_op,
            "queue": self.store.queue_op,
            "apps": self.apps.apps_op,
            "retention.lookup": self.retention.lookup,
            "retention.configure": self.retention.configure,
            "output.read": self.output.read,
            "output.failures": self.output.failures,
            "output.summary": self.output.summary,
            **{f"map.{op}": getattr(self.maps, op) for op in MapStore.OPS},
            "journal.status": lambda: durable.status(self.journal),
            "backlog": lambda unknown=0: self.demand.wanted(int(unknown)),
            "autoscaler.set": self.demand.set_knobs,
            "autoscaler.stats": self.function_stats,
            "demand.groups": self.demand.wanted_by_group,
            "demand.startable": self.demand.set_startable,
            "demand.startable_groups": lambda: self.demand.startable,
            "demand.worker_load": lambda: compat.tasks_by_worker_name(self.scheduler),
        }

    async def start(self, scheduler: Any) -> None:
        """Attach the parts to the scheduler and answer requests."""
        self.scheduler = scheduler
        for part in (self.telemetry, self.maps, self.caps, self.store, self.apps, self.retention, self.output):
            await part.start(scheduler)
        self.journal = durable.open_journal(scheduler, {"store": self.store, "map": self.maps, "apps": self.apps})
        compat.add_rpc_handler(scheduler, HANDLER, self.handle)
        compat.add_stream_handler(scheduler, STREAM_OP, self.handle_event)
        compat.add_periodic_callback(scheduler, "nbfan-retention", self.sweep, 1000)
        await intervals.install(scheduler)  # short send intervals on any cluster (intervals.py)
        self._unquiet = compat_logs.quiet_lost_results(self._lost_results_moot)

    def _lost_results_moot(self, keys: set[str]) -> bool:
        """Whether the results a leaving worker took with it are all nbfan's and needed by no
        one: outcomes already pushed to their callers (the push is on the worker's stream ahead
        of the task's end, so it is known here first), or results held only for re-attaching.
        Dask's warning that it will recompute them says nothing to a user then."""
        for key in keys:
            parsed = parse_task_key(key)
            record = self.telemetry.tracker.get(parsed[0]) if parsed is not None else None
            if not ((record is not None and record.delivered) or self.retention.only_kept_here({key})):
                return False
        return True

    def sweep(self) -> None:
        """Once a second: results read long enough ago go, then output nobody keeps, then Dict
        entries and Queue partitions past their lifetimes."""
        self.retention.sweep()
        self.output.sweep()
        self.store.expire()
        for app, function, launcher in self.apps.due(self._still_running):
            key = durable.launch(self.scheduler, launcher, f"nbfan-schedule-{app}-{function}")
            self.launches[(app, function)] = key

    def _still_running(self, app: str, function: str) -> bool:
        """Whether the last scheduled run of the function still goes (the scheduler has its task)."""
        key = self.launches.get((app, function))
        if key is None:
            return False
        task = self.scheduler.tasks.get(key) if self.scheduler is not None else None
        return key in durable.submitting or (task is not None and task.state not in ("memory", "erred", "forgotten"))

    async def before_close(self) -> None:
        """The scheduler is about to close its workers: the results it holds go first."""
        self.retention.release_all()

    async def close(self) -> None:
        """The scheduler is closing."""
        await self.caps.close()
        await self.telemetry.close()
        self._unquiet()
        if self.journal is not None:
            self.journal.close()
        if self.scheduler is not None:
            compat.remove_periodic_callback(self.scheduler, "nbfan-retention")

    def cancel_children(self, call_id: str = "", client: str | None = None) -> list[str]:
        """The `cancel_children` request (a call is being cancelled by its caller): the calls made
        inside it are cancelled, and neither its result nor theirs is held any longer."""
        descendants = self.telemetry.cancel_children(call_id, client)
        for cancelled in (call_id, *descendants):
            self.retention.forget(cancelled, "the call was cancelled")
        return descendants

    def _deployed_knobs(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(app, function, knobs) of each deployed app's current version that set scaling knobs."""
        return [(name, function, knobs) for name in self.apps.versions
                for function, knobs in ((self.apps.current(name) or {}).get("scaling") or {}).items()]

    def function_stats(self, app: str | None = None, function: str = "") -> dict[str, Any]:
        """The `autoscaler.stats` request (`Function.get_current_stats()`)."""

        def executing(calls: set[str]) -> tuple[int, int]:
            """(inputs of `calls` running, workers running them), as the workers' heartbeats say."""
            inputs, workers = 0, 0
            running = compat.executing_keys(self.scheduler) if self.scheduler is not None and calls else {}
            for keys in running.values():
                ours = [parsed[2] for parsed in map(parse_task_key, keys) if parsed is not None and parsed[0] in calls]
                inputs += sum(ours)
                workers += bool(ours)
            return inputs, workers

        return self.demand.stats(app, function, executing)

    def handle_event(self, event: str = "", call_id: str = "", **msg: Any) -> None:
        """A call event on a caller's stream: `hold` (a call was spawned) and `read` (its result
        was read) go to retention, the others (start, total, end) to telemetry."""
        try:  # an error here would close the caller's stream to the scheduler: log it instead
            if event == "read":
                self.retention.read(call_id)
            elif event == "hold":
                self.retention.hold(call_id, msg.get("key"))
        except Exception:
            logger.exception("nbfan: could not handle the %r event of call %s", event, call_id)
        if event not in ("read", "hold"):
            self.telemetry.handle_call_event(event=event, call_id=call_id, **msg)

    async def handle(self, comm: Any = None, operation: str = "", version: int | None = None, **arguments: Any) -> Any:
        """One request: `{"result": ...}`, or `{"error": why}`."""
        if version != PROTOCOL_VERSION:
            return {
                "error": f"this scheduler's nbfan speaks protocol {PROTOCOL_VERSION}, the request protocol "
                f"{version}: use the same nbfan version on the client and the cluster"
            }
        run = self.ops.get(operation)
        if run is None:
            return {"error": f"unknown operation {operation!r} (known: {', '.join(sorted(self.ops))})"}
        if "comm" in inspect.signature(run).parameters:
            arguments["comm"] = comm
        result = run(**arguments)
        if inspect.isawaitable(result):
            result = await result
        if self.journal is not None and durable.waits_for_disk(operation):  # on disk before it is answered
            await self.journal.durable()
        return {"result": result}

    # -- scheduler events, handed to the parts that need them ----------------------------------

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        """A task changed state: telemetry counts it; the map store watches coordinators."""
        self.telemetry.transition(key, start, finish, *args, **kwargs)
        self.maps.transition(key, start, finish, *args, **kwargs)
        self.retention.transition(key, start, finish, *args, **kwargs)

    def update_graph(self, scheduler: Any, *, client: str, keys: Any = (), **kwargs: Any) -> None:
        """Tasks arrived: the demand part notes what a new call's tasks ask of a worker; those of
        a call that already ended (it failed, or was cancelled) are forgotten at once. A caller's
        cancel (a request) can overtake the tasks it submitted just before (their graph is still
        being unpacked here); they would stay forever."""
        for key in keys:  # a call's first tasks: what they ask of a worker (for autoscaling by group)
            parsed = parse_task_key(key)
            if parsed is not None and parsed[0] not in self.demand.call_resources:
                self.demand.saw_call(parsed[0], compat.task_resources(scheduler, key))
        late = [key for key in keys if self._ended_early(key)]
        if late:
            compat.cancel_keys(scheduler, late, client, reason="nbfan: the call had already ended")

    def _ended_early(self, key: Any) -> bool:
        parsed = parse_task_key(key)
        record = self.telemetry.tracker.get(parsed[0]) if parsed is not None else None
        return record is not None and record.ended is not None and record.state in ("failed", "cancelled")

    def add_worker(self, scheduler: Any, worker: str) -> None:
        """A worker joined: it may get a share of the caps."""
        self.caps.add_worker(scheduler, worker)

    def remove_worker(self, scheduler: Any, worker: str, **kwargs: Any) -> None:
        """A worker left: its cap units go elsewhere; read results it kept are not recomputed."""
        self.caps.remove_worker(scheduler, worker, **kwargs)
        self.retention.worker_left()

    def remove_client(self, scheduler: Any, client: str) -> None:
        """A client left: its calls that nobody else holds end, and its results topic goes."""
        self.telemetry.remove_client(scheduler, client)
        self.demand.client_gone(client)
        compat.forget_topic(scheduler, result_topic(client))
        compat.forget_topic(scheduler, output_topic(client))

    def log_event(self, topic: str, msg: Any) -> None:
        """Workers report failed, skipped and retried inputs as events, push small results to
        the clients waiting for them (already forwarded when this runs; the call counts as
        delivered, and retention keeps a spawned call's outcome), and send what inputs
        print (kept here, and forwarded to the calling client at a bounded rate). None of these
        events is kept by Dask: it would keep the last 100,000 of each topic."""
        if topic == EVENT_TOPIC:
            self.telemetry.log_event(topic, msg)
        elif topic == OUTPUT_TOPIC:
            forward = self.output.receive(msg)
            if forward is not None and self.scheduler is not None:
                self.scheduler.log_event(msg["to"], forward)  # to the caller's topic (dropped below)
        elif isinstance(topic, str) and topic.startswith(RESULT_TOPIC_PREFIX):
            if isinstance(msg, dict):
                self.telemetry.tracker.outcome_pushed(str(msg.get("call_id")))
                if isinstance(msg.get("blob"), bytes):
                    self.retention.pushed(str(msg.get("call_id")), msg["blob"])
        elif not (isinstance(topic, str) and topic.startswith(OUTPUT_TOPIC_PREFIX)):
            return
        if self.scheduler is not None:
            compat.drop_events(self.scheduler, topic)
