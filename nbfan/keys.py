"""Names on the wire that every layer shares: task keys (build and parse), call ids, and the
event topic workers report on. A leaf: it imports nothing from nbfan.

Task keys carry the call id and the input range, `nbfan-<call id>-<first input>-<count>`, so
the scheduler-side tracker counts inputs per call from keys alone; a spawn_map's coordinator
task is `nbfan-coordinator-<map id>`. Event topics: telemetry, output, and per client: pushed
results, forwarded output."""

from __future__ import annotations

import uuid
from typing import Any

KEY_PREFIX = "nbfan"
COORDINATOR_PREFIX = "nbfan-coordinator-"
#: the log-event topic on which worker tasks report failed, skipped and retried inputs
EVENT_TOPIC = "nbfan-telemetry"
#: the log-event topics on which workers push small results to the client waiting for them
RESULT_TOPIC_PREFIX = "nbfan-result-"
#: the log-event topic on which workers send what inputs print and log (to nbfan's plugin)
OUTPUT_TOPIC = "nbfan-output"
#: the topics on which the plugin forwards a call's output to the client that called it
OUTPUT_TOPIC_PREFIX = "nbfan-output-"


def result_topic(client_id: str) -> str:
    """The topic a client hears pushed results on (one per client: nobody else gets them)."""
    return RESULT_TOPIC_PREFIX + client_id


def output_topic(client_id: str) -> str:
    """The topic a client hears its calls' output on (one per client: nobody else gets it)."""
    return OUTPUT_TOPIC_PREFIX + client_id


def new_call_id() -> str:
    """A fresh call id: hex, so task keys split unambiguously on '-'."""
    return uuid.uuid4().hex[:20]


def task_key(call_id: str, start: int, count: int) -> str:
    """The key of the task running inputs [start, start + count) of a call."""
    return f"{KEY_PREFIX}-{call_id}-{start}-{count}"


def parse_task_key(key: Any) -> tuple[str, int, int] | None:
    """(call id, first input, count) of an nbfan task key, or None for other keys."""
    if not isinstance(key, str) or not key.startswith(KEY_PREFIX + "-"):
        return None
    parts = key.split("-")
    if len(parts) != 4:
        return None
    try:
        return parts[1], int(parts[2]), int(parts[3])
    except ValueError:
        return None


def coordinator_key(map_id: str) -> str:
    """The key of a spawn_map's coordinator task."""
    return COORDINATOR_PREFIX + map_id
