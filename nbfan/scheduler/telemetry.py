"""The scheduler plugin that tracks every nbfan call, by the call id in its task keys.

A part of nbfan's scheduler plugin (plugin.py). Cheap by
design: the transition hook only counts; callers send one message per call event (start,
total, end) over their existing batched stream; workers send one event per batch only when
inputs failed or were retried; snapshots are built on demand at most every 100 ms.

Scheduler entry points it adds:
- stream op `nbfan-telemetry` (from clients: call start/total/end),
- log-event topic `nbfan-telemetry` (from workers: per-batch failures and retries),
- the requests `calls` (the CallsSnapshot) and `cancel` (cancel a call's tasks).
"""

from __future__ import annotations

import logging
from typing import Any

from nbfan import compat
from nbfan.keys import EVENT_TOPIC, KEY_PREFIX, parse_task_key
from nbfan.scheduler.schema import CallsSnapshot
from nbfan.scheduler.tracker import CallTracker, unknown_caller

logger = logging.getLogger("nbfan.telemetry")

STREAM_OP = "nbfan-telemetry"
SAMPLER = "nbfan-telemetry-sample"
SAMPLE_INTERVAL_MS = 250

_PREFIX = KEY_PREFIX + "-"
_ACTIVE = ("waiting", "queued", "no-worker", "released")


class Telemetry:
    """Counts the inputs of every nbfan call on the scheduler (see tracker.CallTracker); a part
    of `plugin.NbfanPlugin`."""

    def __init__(self) -> None:
        self.tracker = CallTracker()
        self.scheduler: Any = None

    async def start(self, scheduler: Any) -> None:
        """Listen to callers' call events and sample rates while calls run."""
        self.scheduler = scheduler
        compat.add_periodic_callback(scheduler, SAMPLER, self._sample, SAMPLE_INTERVAL_MS)

    async def close(self) -> None:
        """Stop sampling."""
        if self.scheduler is not None:
            compat.remove_periodic_callback(self.scheduler, SAMPLER)

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
            if start not in ("memory", "erred"):
                parsed = parse_task_key(key)
                if parsed is not None:
                    self.tracker.task_forgotten(parsed[0], parsed[1], parsed[2])
        elif finish == "erred" and start in _ACTIVE:
            parsed = parse_task_key(key)
            if parsed is not None:
                self.tracker.task_erred_elsewhere(parsed[0], parsed[1], parsed[2])

    # -- messages -------------------------------------------------------------------------

    def handle_call_event(self, event: str = "", call_id: str = "", client: str | None = None, **msg: Any) -> None:
        """One message per call event from a caller (see call_events.py). Never raises: an error
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
                    parent=msg.get("parent"),
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
                isinstance(key, str) and key.startswith(prefix) and compat.clients_wanting(scheduler, key) - {client}
                for key in scheduler.tasks
            )

        self.tracker.client_gone(client, still_wanted)

    def _sample(self) -> None:
        if self.tracker.running:
            self.tracker.sample()

    # -- RPC handlers ---------------------------------------------------------------------

    def calls(self) -> CallsSnapshot:
        """The `calls` request: running calls, then the recently finished ones."""
        return self.tracker.snapshot()

    def cancel(self, call_id: str = "", client: str | None = None) -> dict[str, Any]:
        """Cancel every task of the call still on the scheduler (by key prefix), and of the calls
        made inside it, and mark them cancelled. Stopping inputs already running on workers is
        the caller's part (`cancel_running` on every worker, for `descendants` too)."""
        rec = self.tracker.get(call_id)
        cancelled = self.tracker.cancel(call_id)  # first: the tasks forgotten next must not end it otherwise
        tasks = self._cancel_tasks(call_id, client)
        descendants = self.cancel_children(call_id, client)
        kind = rec.kind if rec else None
        known = rec is not None or bool(tasks)
        return {"known": known, "cancelled": cancelled, "tasks": tasks, "kind": kind, "descendants": descendants}

    def cancel_children(self, call_id: str = "", client: str | None = None) -> list[str]:
        """The `cancel_children` request: cancel the calls made inside `call_id`, at any depth
        (after the cancel no new input of theirs starts); their ids."""
        descendants = self.tracker.descendants(call_id)
        for child in descendants:
            self.tracker.cancel(child)
            self._cancel_tasks(child, client)
        return descendants

    def _cancel_tasks(self, call_id: str, client: str | None) -> int:
        prefix = f"{_PREFIX}{call_id}-"
        keys = [k for k in self.scheduler.tasks if isinstance(k, str) and k.startswith(prefix)]
        if keys:
            owner = client if client in self.scheduler.clients else next(iter(self.scheduler.clients), None)
            if owner is not None:
                compat.cancel_keys(self.scheduler, keys, owner, "nbfan-cancel", f"nbfan call {call_id} was cancelled")
        return len(keys)
