"""A scheduled run of a deployed function (`schedule=nbfan.Period(...)` / `nbfan.Cron(...)`):
the task the scheduler plugin submits when the schedule is due (scheduler/apps.py)."""

from __future__ import annotations

from typing import Any


def fire(function: Any) -> None:
    """Task body, on a worker: spawn the function as any caller would (`nbfan calls` shows the
    run, its output and failures are kept), and wait for it without holding the worker's slot,
    so that the next run knows whether this one still goes."""
    function.spawn().get()
