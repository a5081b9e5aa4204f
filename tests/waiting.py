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
