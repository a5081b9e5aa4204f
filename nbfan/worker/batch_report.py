"""Worker side of telemetry: a batch task's own account of its inputs, for what Dask cannot
see (for Dask a batch whose inputs raised still succeeded). One event per batch, and only
when something failed, was skipped or retried, so clean maps send nothing."""

from __future__ import annotations

import threading
from typing import Any

from nbfan import compat
from nbfan.keys import EVENT_TOPIC

_retries = threading.local()


def note_retry(call_id: str) -> None:
    """An input of `call_id` is being retried on this thread (counted, reported with its batch)."""
    counts = getattr(_retries, "counts", None)
    if counts is None:
        counts = _retries.counts = {}
    counts[call_id] = counts.get(call_id, 0) + 1


def take_retries(call_id: str) -> int:
    """Retries noted on this thread for `call_id` since the last take."""
    counts = getattr(_retries, "counts", None)
    return counts.pop(call_id, 0) if counts else 0


def report_batch(call_id: str, failed: int, skipped: int, retried: int) -> None:
    """Tell the scheduler plugin about inputs of a batch that failed, were skipped or retried.
    Never raises; a no-op outside a Dask worker."""
    if not (failed or skipped or retried):
        return
    try:
        from distributed import get_worker

        worker: Any = get_worker()
        key = compat.current_task_key()  # the batch's task key: which inputs these are
        msg = {"call_id": call_id, "key": key if isinstance(key, str) else None,
               "failed": failed, "skipped": skipped, "retried": retried}
        worker.log_event(EVENT_TOPIC, msg)
    except Exception:
        pass
