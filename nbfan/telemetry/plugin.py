"""The scheduler plugin that tracks every nbfan call, by the call id in its task keys.

Installed once per scheduler by whichever nbfan client connects first (`install`). Cheap by
design: the transition hook only counts; callers send one message per call event (start,
total, end) over their existing batched stream; workers send one event per batch only when
inputs failed or were retried; snapshots are built on demand at most every 100 ms.

Scheduler entry points it adds:
- stream op `nbfan-telemetry` (from clients: call start/total/end),
- log-event topic `nbfan-telemetry` (from workers: per-batch failures and retries),
- RPC handlers `nbfan_calls` (the CallsSnapshot) and `nbfan_cancel` (cancel a call's tasks).
"""

from __future__ import annotations

import logging
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

from ..fanout.submit import KEY_PREFIX, parse_task_key
from .schema import CallsSnapshot
from .tracker import CallTracker, unknown_caller

logger = logging.getLogger("nbfan.telemetry")

PLUGIN_NAME = "nbfan-telemetry"
STREAM_OP = "nbfan-telemetry"
from .worker import EVENT_TOPIC
SAMPLE_INTERVAL_MS = 250

_PREFIX = KEY_PREFIX + "-"
_ACTIVE = ("waiting", "queued", "no-worker", "released")


class TelemetryPlugin(SchedulerPlugin):
    """Counts the inputs of every nbfan call on the scheduler (see tracker.CallTracker)."""

    name = PLUGIN_NAME
    idempotent = True  # register_plugin leaves an installed one alone

    def __init__(self) -> None:
        self.tracker = CallTracker()
        self.scheduler: Any = None

    async def start(self, scheduler: Any) -> None:
        from tornado.ioloop import PeriodicCallback

        self.scheduler = scheduler
        scheduler.stream_handlers[STREAM_OP] = self.handle_call_event
        scheduler.handlers["nbfan_calls"] = self.handle_calls
        scheduler.handlers["nbfan_cancel"] = self.handle_cancel
        scheduler.handlers["nbfan_ping"] = self.handle_ping
        old = scheduler.periodic_callbacks.pop("nbfan-telemetry-sample", None)
        if old is not None:  # a previous instance that was unregistered (Dask does not close it)
            old.stop()
        self._sampler = pc = PeriodicCallback(self._sample, SAMPLE_INTERVAL_MS)
        scheduler.periodic_callbacks["nbfan-telemetry-sample"] = pc
        pc.start()

    async def close(self) -> None:
        if self.scheduler is not None:
            pc = self.scheduler.periodic_callbacks.pop("nbfan-telemetry-sample", None)
            if pc is not None:
                pc.stop()

    # -- the hot path ---------------------------------------------------------------------

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if type(key) is not str or not key.startswith(_PREFIX):
            return
        if finish == "processing":
            parsed = parse_task_key(key)
            if parsed is not None:
                self.tracker.task_processing(parsed[0], parsed[2])
        elif start == "processing":
            parsed = parse_task_key(key)
            if parsed is not None:
                self.tracker.task_left_processing(parsed[0], parsed[1], parsed[2], finish, kwargs.get("worker"))
        elif finish == "forgotten":
            if start != "memory" and start != "erred":
                parsed = parse_task_key(key)
                if parsed is not None:
                    self.tracker.task_forgotten(parsed[0], parsed[1], parsed[2])
        elif finish == "erred" and start in _ACTIVE:
            parsed = parse_task_key(key)
            if parsed is not None:
                self.tracker.task_erred_elsewhere(parsed[0], parsed[1], parsed[2])

    # -- messages -------------------------------------------------------------------------

    def handle_call_event(self, event: str = "", call_id: str = "", client: str | None = None, **msg: Any) -> None:
        """One message per call event from a caller (see hooks.py). Never raises: an error
        here would close the caller's stream."""
        try:
            if event == "start":
                self.tracker.call_started(
                    call_id,
                    function=str(msg.get("function") or "?"),
                    app=msg.get("app"),
                    kind=str(msg.get("kind") or "map"),
                    caller=msg.get("caller") or unknown_caller(),
                    started=msg.get("time"),
                    owner=client,
                )
            elif event == "total":
                self.tracker.call_total(call_id, int(msg["total"]))
            elif event == "end":
                self.tracker.call_ended(call_id, str(msg.get("state")))
        except Exception:
            logger.debug("bad nbfan telemetry message %r", msg, exc_info=True)

    def log_event(self, topic: str, msg: Any) -> None:
        if topic != EVENT_TOPIC or not isinstance(msg, dict):
            return
        try:
            parsed = parse_task_key(msg.get("key"))
            self.tracker.batch_report(
                str(msg["call_id"]),
                parsed[1] if parsed is not None else None,
                failed=int(msg.get("failed", 0)),
                skipped=int(msg.get("skipped", 0)),
                retried=int(msg.get("retried", 0)),
            )
        except Exception:
            logger.debug("bad nbfan worker report %r", msg, exc_info=True)

    def remove_client(self, scheduler: Any, client: str) -> None:
        def still_wanted(call_id: str) -> bool:
            """Some other holder (a published dataset: `nbfan run --detach`) keeps the call's tasks."""
            prefix = f"nbfan-{call_id}-"
            return any(
                isinstance(key, str) and key.startswith(prefix) and any(c.client_key != client for c in ts.who_wants)
                for key, ts in scheduler.tasks.items()
            )

        self.tracker.client_gone(client, still_wanted)

    def _sample(self) -> None:
        if self.scheduler.plugins.get(PLUGIN_NAME) is not self:  # unregistered: stop quietly
            self._sampler.stop()
            return
        if self.tracker.running:
            self.tracker.sample()

    # -- RPC handlers ---------------------------------------------------------------------

    def handle_calls(self, comm: Any = None) -> CallsSnapshot:
        return self.tracker.snapshot()

    def handle_ping(self, comm: Any = None) -> str:
        return PLUGIN_NAME

    def handle_cancel(self, comm: Any = None, call_id: str = "", client: str | None = None) -> dict[str, Any]:
        """Cancel every task of the call still on the scheduler (by key prefix) and mark it
        cancelled. Stopping inputs already running on workers is the caller's part
        (`cancel_running` on every worker)."""
        rec = self.tracker.get(call_id)
        known = rec is not None
        prefix = f"{_PREFIX}{call_id}-"
        keys = [k for k in self.scheduler.tasks if isinstance(k, str) and k.startswith(prefix)]
        cancelled = self.tracker.cancel(call_id)
        if keys:
            owner = client if client in self.scheduler.clients else next(iter(self.scheduler.clients), None)
            if owner is not None:
                self.scheduler.stimulus_cancel(
                    keys, owner, force=True, reason="nbfan-cancel", msg=f"nbfan call {call_id} was cancelled"
                )
        return {"known": known or bool(keys), "cancelled": cancelled, "tasks": len(keys), "kind": rec.kind if rec else None}
