"""Pushing a one-input call's outcome straight to the client that waits for it: a log event,
which the scheduler forwards to that client at once. The caller then needs no gather (two
trips through the scheduler and the worker fewer per `.remote`). Only small outcomes without
out-of-band buffers are pushed; the task's result stays on the worker as usual, for whoever
fetches it (a `FunctionCall.from_id`, or the caller when no push arrives)."""

from __future__ import annotations

from typing import Any

from nbfan.worker.payload import Payload

#: the largest outcome blob pushed; larger ones are fetched from the worker by Dask
PUSH_MAX_BYTES = 64 * 1024


def push_outcome(topic: str, call_id: str, payload: Payload) -> None:
    """Send `payload` to the client listening on `topic`, unless it is too large, has buffers
    out of band, or this is not a worker: the caller then fetches the task's result."""
    if payload.frames or len(payload.blob) > PUSH_MAX_BYTES:
        return
    try:
        from distributed import get_worker

        worker: Any = get_worker()
        worker.log_event(topic, {"call_id": call_id, "blob": bytes(payload.blob)})
    except Exception:  # not on a worker, or closing: the result is still the task's
        pass
