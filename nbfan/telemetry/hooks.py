"""What the call layer tells telemetry about a call. Each hook is cheap and never raises:
telemetry must not break or slow a call. (Implemented with one message per call event,
never per task: inputs are counted on the scheduler from task keys.)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..function import Function


def call_started(client: Any, call_id: str, function: "Function[Any, Any]", kind: str) -> None:
    """A call began (kind: remote, spawn, remote_gen, map, starmap, for_each, spawn_map, magic)."""


def call_total(client: Any, call_id: str, total: int) -> None:
    """The call's inputs are exhausted: `total` inputs in all."""


def call_ended(client: Any, call_id: str, state: str) -> None:
    """The caller saw the call end: state is done, failed or cancelled."""
