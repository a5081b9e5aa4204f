"""The lifetime of a script's work: `nbfan run` and `app.run()`.

Like Modal, when a script ends (or is interrupted) the work it spawned is cancelled, unless it
runs detached: then spawned calls and spawn_maps go on on the cluster, which must therefore
outlive this process (a cluster from `nbfan cluster up`, NBFAN_SCHEDULER or nbfan.connect).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from nbfan.api.calls import begin_session, end_session
from nbfan.cluster.connect import connection_if_any
from nbfan.engine.cancel import cancel_by_id
from nbfan.exception import InvalidError


def shared_cluster_available() -> bool:
    """Whether calls from here go to a cluster that outlives this process."""
    conn = connection_if_any()
    if conn is not None:
        return conn.source != "embedded"
    if os.environ.get("NBFAN_SCHEDULER", "").strip():
        return True
    from nbfan.cluster.daemon import running_state

    return running_state() is not None


def require_shared_cluster(what: str) -> None:
    """Raise InvalidError, naming `what`, unless work started here can outlive this process
    (detached runs and deploys need it)."""
    if not shared_cluster_available():
        raise InvalidError(
            f"{what} needs a cluster that outlives this process, and there is none: the work would run on an embedded "
            f"in-process cluster and die with it. Run `nbfan cluster up`, or set NBFAN_SCHEDULER=tcp://host:port."
        )


def _connected_client() -> Any:
    """The client of this process if it connected, without starting a cluster just to clean up."""
    conn = connection_if_any()
    return conn.client if conn is not None else None


def cancel_leftovers(client: Any, spawned: list[str] | None = None) -> list[str]:
    """Cancel every call this process started that may still run: `spawned` (ids of spawned
    calls, whose handles may be gone: Dask forgets a dropped future's task but lets a running
    one finish), the ones telemetry lists with this process as caller (spawns, spawn_maps) and
    any nbfan task this client still holds; each waits until the workers stopped its inputs
    (the client closes next). Returns the call ids."""
    from distributed import Future

    from nbfan.keys import parse_task_key

    ids: list[str] = list(spawned or [])
    try:
        from nbfan.api.queries import calls_snapshot

        host, pid = socket.gethostname(), os.getpid()
        ids += [call["call_id"] for call in calls_snapshot(client)["calls"]
                if call.get("state") == "running" and (call.get("caller") or {}).get("pid") == pid
                and (call.get("caller") or {}).get("host") == host]
    except Exception:  # telemetry off or unavailable: the held futures below still go
        pass
    held: dict[str, list[Any]] = defaultdict(list)
    for key in list(getattr(client, "futures", {})):
        parsed = parse_task_key(key)
        if parsed is not None:
            held[parsed[0]].append(Future(key, client))
    ids = list(dict.fromkeys([*ids, *held]))  # each once, in the order found
    for call_id in ids:
        with contextlib.suppress(Exception):
            if held.get(call_id):
                client.cancel(held[call_id], force=True)
            cancel_by_id(client, call_id, wait=True)
    return ids


@contextlib.contextmanager
def script_session(*, detach: bool = False, what: str = "--detach") -> Iterator[None]:
    """Run a script's work: on the way out, cancel what it left running unless `detach`."""
    if detach:
        require_shared_cluster(what)
    begin_session(detach)
    try:
        yield
    finally:
        spawned = end_session()
        client = _connected_client()
        if client is not None and not detach:
            cancel_leftovers(client, spawned)


@contextlib.contextmanager
def app_run(app: Any, *, detach: bool = False) -> Iterator[Any]:
    """`with app.run():` for scripts run with plain `python`."""
    with script_session(detach=detach, what="app.run(detach=True)"):
        yield app
