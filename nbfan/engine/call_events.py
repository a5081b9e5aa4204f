"""What the call layer tells telemetry about a call. Each hook is cheap and never raises:
telemetry must not break or slow a call. One fire-and-forget message per call event goes
over the client's existing batched stream to the scheduler plugin; inputs are counted on
the scheduler from task keys, never reported per task."""

from __future__ import annotations

import logging
import time
from typing import Any

from nbfan import compat
from nbfan.config import config
from nbfan.engine.target import CallTarget
from nbfan.scheduler import rpc
from nbfan.scheduler.rpc import ensure_plugin
from nbfan.scheduler.telemetry import STREAM_OP
from nbfan.worker.task import current_lineage

logger = logging.getLogger("nbfan.telemetry")

_MARK = "_nbfan_telemetry"  # attribute on a Dask client: True once the plugin is known installed


def install(client: Any, force: bool = False) -> bool:
    """Install the scheduler plugin unless the scheduler already has it (one round trip per
    client). False when telemetry is off (unless `force`: the views install it to read it)
    or the scheduler cannot load it (e.g. a cluster without nbfan installed): calls then run
    exactly as before, untracked."""
    if not (config.telemetry or force):
        return False
    ok = False
    try:
        ensure_plugin(client)
        ok = True
    except Exception as exc:  # telemetry is optional; never fail a connection over it
        logger.info("nbfan telemetry is off for %s: the scheduler could not load its plugin (%s)",
                    getattr(getattr(client, "scheduler", None), "address", "?"), exc)
    try:  # the stream it was installed over: after a reconnect the scheduler may be a new one
        setattr(client, _MARK, compat.client_stream(client) if ok else False)
    except Exception:
        pass
    return ok


def forget(client: Any) -> None:
    """`client` connected again (cluster/connect.py `on_reconnect`): the plugin is installed again
    before telemetry is sent (a scheduler without it drops the client's connection on its message)."""
    rpc.forget(client)
    try:
        delattr(client, _MARK)
    except AttributeError:
        pass


def _active(client: Any) -> bool:
    if not config.telemetry or client is None:
        return False
    mark = getattr(client, _MARK, None)
    if mark is None:  # a client nbfan did not create (a worker's client, a user's Client)
        install(client)
        mark = getattr(client, _MARK, False)
    # installed over another stream: the client reconnected since; dropped until set up again
    return mark is compat.client_stream(client)


def _send(client: Any, msg: dict[str, Any]) -> None:
    try:
        if _active(client):
            compat.send_to_scheduler(client, {"op": STREAM_OP, **msg})
    except Exception:
        logger.debug("nbfan telemetry message dropped", exc_info=True)


def call_started(client: Any, call_id: str, function: CallTarget, kind: str) -> None:
    """A call began (kind: remote, spawn, remote_gen, map, starmap, for_each, spawn_map, magic)."""
    if not config.telemetry:
        return
    from nbfan.engine.caller_identity import this_caller

    try:
        name, app = function.name, function.app_name
    except Exception:
        name, app = getattr(function, "__name__", "?"), None
    lineage = current_lineage()
    _send(client, {"event": "start", "call_id": call_id, "function": name, "app": app, "kind": kind,
                   "parent": lineage[-1] if lineage else None,
                   "caller": this_caller(), "time": time.time()})


def call_total(client: Any, call_id: str, total: int) -> None:
    """The call's inputs are exhausted: `total` inputs in all."""
    if config.telemetry:
        _send(client, {"event": "total", "call_id": call_id, "total": int(total)})


def call_ended(client: Any, call_id: str, state: str) -> None:
    """The caller saw the call end: state is done, failed or cancelled."""
    if config.telemetry:
        _send(client, {"event": "end", "call_id": call_id, "state": state})


from nbfan.cluster.connect import on_connect, on_reconnect  # noqa: E402  (after `install` is defined)

on_connect.append(install)  # every client this process connects tracks its calls
on_reconnect.append(forget)
