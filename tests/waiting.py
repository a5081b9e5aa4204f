"""Waiting on a condition in tests: poll a predicate until it holds, or fail saying what did not
happen. Tests wait on events and states this way, never on a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.05, what: str = "the condition") -> Any:
    """Poll until `predicate()` is truthy and return its value; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def nothing_running(client: Any, call_id: str, timeout: float = 60) -> dict[str, Any]:
    """Wait until the cluster's telemetry shows call `call_id` ended with none of its inputs
    running (the positive signal that a cancel took effect); its snapshot."""
    from nbfan.api.queries import calls_snapshot

    def ended() -> dict[str, Any] | None:
        for call in calls_snapshot(client)["calls"]:
            if call["call_id"] == call_id and call["ended"] is not None and call["running"] == 0:
                return call
        return None

    found: dict[str, Any] = wait_until(ended, timeout=timeout, what=f"call {call_id} to end with nothing running")
    return found


def no_input_running_on_workers(client: Any, call_ids: Any, timeout: float = 60) -> None:
    """Wait until no worker thread or child runs an input of `call_ids` any more (each worker's
    own registry: a cancelled input that already finished its C call has raised or returned)."""
    from nbfan.worker.stopping import snapshot

    wanted = set(call_ids)

    def idle() -> bool:
        return not any(wanted & set(running) for running in client.run(snapshot).values())

    wait_until(idle, timeout=timeout, what=f"the workers to stop running inputs of {sorted(wanted)}")


def stays(value: Callable[[], Any], quiet: float = 0.5) -> Any:
    """After a positive signal that nothing more should happen: `value()` read again over a short
    quiet window; AssertionError if it changed. Its value."""
    first = value()
    time.sleep(quiet)
    again = value()
    assert again == first, f"it changed after it should have settled: {first!r} -> {again!r}"
    return first
