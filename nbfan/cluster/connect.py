"""Which Dask cluster this process uses. First match wins:

1. `nbfan.connect(address | Cluster | Client)`
2. the `NBFAN_SCHEDULER` environment variable
3. the user's running local nbfan cluster (`nbfan cluster up`, state under NBFAN_HOME)
4. an embedded in-process cluster, started on first use and closed with the process
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from distributed import Client
from distributed.deploy.cluster import Cluster

from nbfan import compat, compat_logs
from nbfan.cluster.address import client_for_address
from nbfan.cluster.state import CorruptStateError, pid_alive, read_state, remove_state
from nbfan.config import config
from nbfan.exception import ClusterConnectionError, ClusterStateWarning, InvalidError, warn_caller

logger = logging.getLogger("nbfan")

ClusterTarget = str | Cluster | Client | None


@dataclass
class Connection:
    client: Client
    source: str  # "connect", "env", "local", "embedded"
    owned_cluster: Cluster | None = None  # the embedded cluster we started, closed with us
    owns_client: bool = True
    given: str = ""  # what the user handed to nbfan.connect: "address", "client" or "cluster"
    target: Any = None  # the Cluster object itself, when one was given
    stream: Any = None  # the client's stream to the scheduler when nbfan set it up (compat.client_stream)

    @property
    def address(self) -> str:
        return scheduler_address(self.client)


def scheduler_address(client: Client) -> str:
    """The address of the scheduler `client` talks to (Dask sets `Client.scheduler` to None
    before the client connects and once it closes)."""
    if client.scheduler is None:
        raise ClusterConnectionError(f"the Dask client is not connected to a scheduler (it is {client.status})")
    return cast(str, client.scheduler.address)


_lock = threading.RLock()
_current: Connection | None = None


def _from_state_file() -> Client | None:
    try:
        state = read_state()
    except CorruptStateError as exc:
        warn_caller(f"ignoring the local nbfan cluster: {exc}", ClusterStateWarning)
        return None
    if state is None:
        return None
    if not pid_alive(state.pid):
        warn_caller(
            f"removed a stale nbfan cluster state file: the cluster at {state.address} (pid {state.pid}) is gone. "
            f"Start a new one with `nbfan cluster up`.",
            ClusterStateWarning,
        )
        remove_state()
        return None
    return client_for_address(state.address, "the local nbfan cluster from `nbfan cluster up`")


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _close_embedded_on_sigterm() -> None:
    """SIGTERM's default ends the process at once: the embedded cluster's worker processes would
    outlive it, orphaned, and print their lost scheduler to the terminal. Turn it into a normal
    exit (status 143, as the default gives), so the cluster closes; only while nobody else
    handles SIGTERM, and only from the main thread (where Python runs handlers)."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _start_embedded() -> Connection:
    from nbfan.cluster.local import start_local_cluster

    _close_embedded_on_sigterm()
    cluster = start_local_cluster()
    client = Client(cluster, set_as_default=False)
    # worker processes start in the background: wait, so the first map sees every worker
    client.wait_for_workers(len(cluster.worker_spec), timeout=120)
    return Connection(client, "embedded", owned_cluster=cluster)


def _resolve() -> Connection:
    env = os.environ.get("NBFAN_SCHEDULER", "").strip()
    if env:
        return Connection(client_for_address(env, "from NBFAN_SCHEDULER"), "env")
    client = _from_state_file()
    if client is not None:
        return Connection(client, "local")
    return _start_embedded()


def _close(conn: Connection) -> None:
    with compat_logs.closing_quietly(conn.client, whole_cluster=conn.owned_cluster is not None):
        if conn.owns_client:
            try:
                conn.client.close()
            except Exception:  # closing a client whose scheduler is gone must not fail
                pass
        if conn.owned_cluster is not None:
            try:
                conn.owned_cluster.close()
            except Exception:
                pass


#: Called with every new client this process connects (the engine installs telemetry's
#: scheduler plugin here); the cluster layer itself knows nothing of what runs on it.
on_connect: list[Callable[[Client], object]] = []

#: Called with a client that lost its scheduler and connected again (after a network cut, or to
#: a scheduler restarted at the same address): the scheduler forgot this client (its topic
#: subscriptions) and may be a new one (no nbfan plugin, no caps, no knobs). What the engine
#: remembers of having set those up is forgotten here; `on_connect` then runs again.
on_reconnect: list[Callable[[Client], object]] = []


def _install_telemetry(conn: Connection) -> None:
    compat.set_send_interval(conn.client, config.send_interval)  # a 10 ms wait per round trip otherwise
    if conn.source not in ("worker", "embedded"):  # a cluster nbfan did not start in this process
        from nbfan.cluster.shipping import ensure_nbfan_on_cluster

        ensure_nbfan_on_cluster(conn.client)
    for hook in on_connect:
        hook(conn.client)
    conn.stream = compat.client_stream(conn.client)


def _reconnected(conn: Connection) -> bool:
    """Dask's client connected again since nbfan set it up (a new stream to the scheduler)."""
    return conn.client.status == "running" and compat.client_stream(conn.client) is not conn.stream


def _set_up_again(conn: Connection) -> None:
    for hook in on_reconnect:
        hook(conn.client)
    _install_telemetry(conn)


_worker_clients: set[int] = set()  # ids of worker clients the hooks already ran for


def _install_telemetry_once(client: Client) -> None:
    if id(client) not in _worker_clients:
        _worker_clients.add(id(client))
        _install_telemetry(Connection(client, "worker", owns_client=False))


def connect(target: ClusterTarget = None) -> Client:
    """Use `target` (a scheduler address, a Dask Cluster or Client) for every call from now on.

    With no argument, re-run the default resolution (NBFAN_SCHEDULER, local cluster, embedded)."""
    global _current
    if target is None:
        conn = _resolve()
    elif isinstance(target, str):
        if "://" not in target and ":" not in target:
            raise InvalidError(f"connect({target!r}): give a scheduler address like 'tcp://127.0.0.1:8786'")
        conn = Connection(client_for_address(target, "given to nbfan.connect"), "connect", given="address")
    elif isinstance(target, Client):
        conn = Connection(target, "connect", owns_client=False, given="client")
    elif isinstance(target, Cluster):
        conn = Connection(Client(target, set_as_default=False), "connect", given="cluster", target=target)
    else:
        raise InvalidError(
            f"connect() takes a scheduler address, a dask Cluster or a dask Client, got {type(target).__name__}"
        )
    _install_telemetry(conn)
    with _lock:
        old, _current = _current, conn
    if old is not None and old.client is not conn.client:
        _close(old)
    return conn.client


def in_worker_task() -> bool:
    """Whether this code runs inside a Dask task on a worker (a function calling another)."""
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True


def current_connection() -> Connection:
    """The connection in use. Inside a task on a worker: that worker's own client, so calls made
    inside functions run on the cluster the task runs on (never a new one). Elsewhere: this
    process's connection, resolving the default on first use."""
    global _current
    if in_worker_task():
        from distributed import get_client as worker_client

        client = worker_client()
        _install_telemetry_once(client)
        return Connection(client, "worker", owns_client=False)
    _wait_for_reconnect()
    with _lock:
        if _current is not None and _current.source == "connect" and not _usable(_current):
            raise ClusterConnectionError(
                f"the Dask {_current.given} handed to nbfan.connect was closed. Call nbfan.connect(...) again with "
                f"an open one, or nbfan.disconnect() to use the default cluster (nbfan cluster up or an embedded one)."
            )
        if _current is not None and _restarted_elsewhere(_current):
            old, _current = _current, None
            _close(old)  # its client would keep retrying the dead address, and the call wait on it
        if _current is None or _current.client.status in ("closed", "closing"):
            _current = _resolve()
            _install_telemetry(_current)
        elif _reconnected(_current):
            _set_up_again(_current)
        return _current


def _restarted_elsewhere(conn: Connection) -> bool:
    """The `nbfan cluster up` cluster this process used went away and was started again, at a new
    address (each start picks a free port): Dask's client would try the old address until its
    timeout and fail the call; the state file already names the live one. Read only while the
    client is not connected (a file read, not a round trip)."""
    if conn.source != "local" or conn.client.status == "running":
        return False
    try:
        state = read_state()
    except CorruptStateError:
        return False
    old_address = getattr(conn.client.scheduler, "address", None)
    return state is not None and state.address != old_address and pid_alive(state.pid)


def _wait_for_reconnect() -> None:
    """A call made while Dask's client reconnects waits for it (the call would wait anyway), so
    that what the scheduler forgot is set up again before the call goes; no longer than Dask
    tries (then the client closes, and the cluster is resolved again). Not when `nbfan cluster
    up` was restarted at a new address: that one is used at once."""
    with _lock:
        conn = _current
    if conn is None or conn.client.status != "connecting" or _restarted_elsewhere(conn):
        return
    deadline = time.monotonic() + config.connect_timeout + 1.0
    while conn.client.status == "connecting" and time.monotonic() < deadline and not _restarted_elsewhere(conn):
        time.sleep(0.05)  # Dask's reconnect has no event to wait on


def _usable(conn: Connection) -> bool:
    """A connection made with `nbfan.connect` whose client, or cluster, the user has not closed."""
    if conn.client.status in ("closed", "closing"):
        return False
    if conn.given == "cluster" and compat.cluster_closed(conn.target):
        _close(conn)  # nbfan's own client to the user's cluster goes with it, silently
        return False
    return True


def connection_if_any() -> Connection | None:
    """The open connection of this process, or None: never connects (for clean-up and questions such
    as "does the work outlive this process?")."""
    with _lock:
        conn = _current
    if conn is None or conn.client.status in ("closed", "closing"):
        return None
    return conn


def drop_lost_connection(client: Client) -> None:
    """`client` lost its scheduler (nbfan has raised a clear error for it): close it now, quietly,
    if it is this process's own, instead of letting Dask retry and log for seconds; the next call
    resolves the cluster again (a restarted `nbfan cluster up` is found). A client the user handed
    to `nbfan.connect` is theirs: it is left as it is."""
    global _current
    with _lock:
        conn = _current
        if conn is None or conn.client is not client or not conn.owns_client or client.status == "running":
            return
        _current = None
    _close(conn)


def get_client() -> Client:
    """The Dask client every nbfan call goes through (see `current_connection`)."""
    return current_connection().client


def get_client_now() -> Client | None:
    """The client, when getting it cannot block (already connected, or inside a task); None
    when the first use would connect (or start the embedded cluster): do that off the loop."""
    if not in_worker_task():
        with _lock:
            if _current is None or _current.client.status != "running" or _reconnected(_current):
                return None  # connecting, reconnecting or setting up again: round trips, or a wait
    return get_client()


def _disconnect_at_exit() -> None:
    """A script that spawns work and exits at once: closing the client flushes its stream to
    the scheduler (the tasks and their holders arrive) before the process goes. It runs before
    thread pools shut down: Dask's done-callbacks and the embedded cluster's close need them."""
    try:
        disconnect()
    except Exception:  # never fail an interpreter's exit
        pass


compat.before_thread_pools_shut_down(_disconnect_at_exit)


def _say_scheduler_gone() -> bool:
    """Dask gave up reconnecting a client whose scheduler went away while nothing waited on it:
    if it is this process's connection, say it once, in nbfan's words (what the next call does),
    instead of Dask's ERROR line."""
    with _lock:
        conn = _current
    if conn is None or conn.client.status == "running":
        return False
    address = getattr(conn.client.scheduler, "address", None) or "?"
    logger.warning(
        "nbfan lost the Dask scheduler at %s: it stopped answering and did not come back within %gs. The next call "
        "connects again (nbfan.connect, NBFAN_SCHEDULER, `nbfan cluster up`, or an embedded cluster).",
        address, config.connect_timeout,
    )
    return True


compat_logs.on_reconnect_given_up(_say_scheduler_gone)


def disconnect() -> None:
    """Close this process's connection (and its embedded cluster, if it started one)."""
    global _current
    with _lock:
        conn, _current = _current, None
    if conn is not None:
        _close(conn)
