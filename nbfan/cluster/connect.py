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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from distributed import Client
from distributed.deploy.cluster import Cluster

from nbfan import compat, compat_logs
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


def security_for(address: str) -> Any:
    """TLS settings for `tls://` addresses (the local cluster's certificates when it has them)."""
    if not address.startswith("tls://"):
        return None
    try:
        from nbfan.cluster.tls import client_security
    except ImportError:
        return None
    return client_security()


def _require_tls_settings(address: str, security: Any) -> None:
    """A `tls://` address with no certificates would fail deep in Dask with a TypeError: say what to do."""
    if not address.startswith("tls://") or security is not None:
        return
    from distributed.security import Security

    if Security().get_connection_args("client").get("ssl_context") is None:
        from nbfan.config import nbfan_home

        raise ClusterConnectionError(
            f"the scheduler at {address} uses TLS, and this process has no certificate for it: none under "
            f"{nbfan_home() / 'tls'} and no `distributed.comm.tls.*` Dask config. Copy the cluster's ca.pem, "
            f"cluster.pem and cluster-key.pem into that folder, set NBFAN_HOME to the cluster's, or pass "
            f"nbfan.connect(distributed.Client(address, security=distributed.Security(...)))."
        )


def client_for_address(address: str, what: str) -> Client:
    security = security_for(address)
    _require_tls_settings(address, security)
    try:
        return Client(
            address,
            timeout=f"{config.connect_timeout}s",
            set_as_default=False,
            security=security,
        )
    except ValueError as exc:  # Dask's parse errors: unknown scheme, malformed host:port
        raise InvalidError(
            f"{address!r} ({what}) is not a usable scheduler address: {exc}. Give one like 'tcp://127.0.0.1:8786' "
            f"or 'tls://host:8786'."
        ) from None
    except (OSError, TimeoutError) as exc:
        hint = "Check that the scheduler is running and the address is right."
        if address.startswith("tls://") and "certificate" in str(exc).lower():
            hint = "The scheduler refused this process's TLS certificate: use the certificates of that cluster."
        elif not address.startswith("tls://") and "reset by peer" in str(exc):
            hint += " If the scheduler uses TLS, give a tls:// address."
        raise ClusterConnectionError(
            f"could not reach the Dask scheduler at {address} ({what}) within {config.connect_timeout:g}s: "
            f"{exc}. {hint}"
        ) from None


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


def _install_telemetry(conn: Connection) -> None:
    compat.set_send_interval(conn.client, config.send_interval)  # a 10 ms wait per round trip otherwise
    if conn.source not in ("worker", "embedded"):  # a cluster nbfan did not start in this process
        from nbfan.cluster.shipping import ensure_nbfan_on_cluster

        ensure_nbfan_on_cluster(conn.client)
    for hook in on_connect:
        hook(conn.client)


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
    with _lock:
        if _current is not None and _current.source == "connect" and not _usable(_current):
            raise ClusterConnectionError(
                f"the Dask {_current.given} handed to nbfan.connect was closed. Call nbfan.connect(...) again with "
                f"an open one, or nbfan.disconnect() to use the default cluster (nbfan cluster up or an embedded one)."
            )
        if _current is None or _current.client.status in ("closed", "closing"):
            _current = _resolve()
            _install_telemetry(_current)
        return _current


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
            if _current is None or _current.client.status in ("closed", "closing"):
                return None
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
