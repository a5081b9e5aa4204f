"""Cancelling a call by its id, from any process connected to its cluster: the one way
`nbfan cancel`, the panel's server, a script session's clean-up and `MapCall.cancel` stop a
call, whatever it is (a call with tasks, a spawned map and its coordinator) and whatever it
made (the calls made inside it, at any depth)."""

from __future__ import annotations

from typing import Any

from nbfan.engine import call_events
from nbfan.exception import InvalidError, NotFoundError
from nbfan.scheduler.rpc import request
from nbfan.worker.task import cancel_running

STOP_TIMEOUT = 10  # seconds to wait for the workers to hear "stop these inputs" (never hang on them)


def check_call_id(call_id: object) -> str:
    """A call id as `nbfan calls` shows it (hex), or InvalidError saying so."""
    if not isinstance(call_id, str) or not call_id or not all(c in "0123456789abcdef" for c in call_id):
        raise InvalidError(f"cancel({call_id!r}): call ids are hex strings, as shown by `nbfan calls`")
    return call_id


def cancel_by_id(client: Any, call_id: str, *, wait: bool = False) -> bool:
    """Stop call `call_id`: a spawned map stores nothing more and its coordinator stops; the
    call's tasks still on the scheduler are forgotten, and those of the calls made inside it;
    inputs running on workers are stopped (`wait`: until the workers heard it). True when it
    was running; False when it had already ended; NotFoundError when the cluster never saw it
    (or forgot it: finished calls are kept for a while only)."""
    check_call_id(call_id)
    spawned_map = request(client, "map.cancel", map_id=call_id)
    if spawned_map.get("state") == "released":
        raise NotFoundError(f"spawned map {call_id!r} was released from the scheduler: {spawned_map.get('error')}")
    is_map = spawned_map.get("state") != "unknown"
    reply = request(client, "cancel", call_id=call_id, client=client.id)
    if not reply.get("known") and not is_map:
        raise NotFoundError(
            f"no call {call_id} on the cluster at {client.scheduler.address}: it never existed there, or it ended "
            f"a while ago (finished calls are kept for a while only)"
        )
    running = [call_id, *(reply.get("descendants") or [])]
    try:  # inputs already running on the workers stop too
        client.run(cancel_running, *running, wait=wait, callback_timeout=STOP_TIMEOUT)
    except Exception:  # workers gone: nothing left running
        pass
    if is_map:
        call_events.call_ended(client, call_id, "cancelled")
    return bool(reply.get("cancelled") or spawned_map.get("was_running"))
