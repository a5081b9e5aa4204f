"""The server's side of telemetry: ONE Dask client of the server's own, created lazily and
used off the IO loop, and the push loop that feeds every open panel websocket.

Logic only; handlers.py translates HTTP and websockets to calls on this."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, cast

from nbfan.api import queries as query
from nbfan.exception import ClusterConnectionError, Error
from nbfan.scheduler.schema import CallsSnapshot, ClusterSnapshot

logger = logging.getLogger("nbfan.server")

RUNNING_INTERVAL = 0.25  # push at most 4 times a second while anything runs
IDLE_INTERVAL = 0.5  # how often to look for new calls while nothing runs
CLUSTER_INTERVAL = 2.0  # cluster card refresh
RETRY_INTERVAL = 2.0  # no cluster yet: look again this often


class NoCluster(Error):
    """The server has no nbfan cluster to talk to (yet); the message says what to do."""


class Socket(Protocol):
    def send_json(self, message: dict[str, Any]) -> bool: ...


def scheduler_address() -> str | None:
    """The cluster the server's kernels use: NBFAN_SCHEDULER, else the user's local cluster."""
    env = os.environ.get("NBFAN_SCHEDULER", "").strip()
    if env:
        return env
    from nbfan.cluster.daemon import running_state

    state = running_state()
    return state.address if state is not None else None


class TelemetryManager:
    """Snapshots and cancels for the panel, through the server's own Dask client."""

    def __init__(self, address: Callable[[], str | None] = scheduler_address) -> None:
        self._address = address
        self._client: Any = None
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="nbfan-server")
        self.sockets: set[Socket] = set()
        self._pusher: asyncio.Task[None] | None = None
        self._greetings: set[asyncio.Future[None]] = set()  # held until done: the loop keeps weak references
        self._wake = asyncio.Event()
        self._closed = False
        self.watching: dict[Socket, str] = {}  # socket -> the call whose detail it is shown

    # -- the Dask client (blocking: runs in the executor) -----------------------------------

    def _get_client(self) -> Any:
        address = self._address()
        if not address:
            raise NoCluster(
                "no nbfan cluster: start one with `nbfan cluster up`, or set NBFAN_SCHEDULER before starting "
                "JupyterLab"
            )
        with self._lock:
            client = self._client
            if client is not None and (client.status != "running" or client.scheduler.address != address):
                self._drop_client()
                client = None
            if client is None:
                from nbfan.cluster.address import client_for_address
                from nbfan.engine.call_events import install

                try:
                    client = client_for_address(address, "the cluster of this Jupyter server")
                except ClusterConnectionError as exc:
                    raise NoCluster(str(exc)) from None
                install(client, force=True)
                self._client = client
            return client

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close(timeout=2)
            except Exception:
                pass

    def _with_client(self, fn: Callable[[Any], Any]) -> Any:
        client = self._get_client()
        try:
            return fn(client)
        except (OSError, TimeoutError) as exc:  # the scheduler went away: reconnect next time
            with self._lock:
                if self._client is client:
                    self._drop_client()
            raise NoCluster(f"lost the nbfan cluster at {client.scheduler.address}: {exc}") from None

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- what handlers ask ------------------------------------------------------------------

    async def calls(self) -> CallsSnapshot:
        return cast(CallsSnapshot, await self._run(self._with_client, query.calls_snapshot))

    async def cluster(self) -> ClusterSnapshot:
        return cast(ClusterSnapshot, await self._run(self._with_client, query.cluster_snapshot))

    async def cancel(self, call_id: str) -> bool:
        """True when the call was running and is now cancelled; NotFoundError if unknown."""
        cancelled: bool = await self._run(self._with_client, lambda c: query.cancel(c, call_id))
        self.poke()
        return cancelled

    async def detail(self, call_id: str) -> dict[str, Any]:
        """A call's failed inputs and latest output lines (api.telemetry.call_detail)."""
        return cast(dict[str, Any], await self._run(self._with_client, lambda c: query.call_detail(c, call_id)))

    def watch(self, socket: Socket, call_id: str | None) -> None:
        """The socket's panel shows this call's detail (None: none): it gets {"type": "detail", ...}
        with each push."""
        if call_id:
            self.watching[socket] = call_id
        else:
            self.watching.pop(socket, None)
        self.poke()

    async def _push_details(self) -> None:
        for socket, call_id in list(self.watching.items()):
            if socket not in self.sockets:
                self.watching.pop(socket, None)
                continue
            if not socket.send_json({"type": "detail", **(await self.detail(call_id))}):
                self.sockets.discard(socket)
                self.watching.pop(socket, None)

    # -- the push loop ------------------------------------------------------------------------

    def add_socket(self, socket: Socket) -> None:
        self.sockets.add(socket)
        if self._pusher is None or self._pusher.done():
            self._pusher = asyncio.ensure_future(self._push_loop())
        greeting = asyncio.ensure_future(self._greet(socket))
        self._greetings.add(greeting)
        greeting.add_done_callback(self._greetings.discard)

    def remove_socket(self, socket: Socket) -> None:
        self.sockets.discard(socket)
        self.watching.pop(socket, None)

    def poke(self) -> None:
        """Something changed (a cancel): push soon rather than at the next idle tick."""
        self._wake.set()

    async def _greet(self, socket: Socket) -> None:
        """A new socket gets the current state at once."""
        for kind, get in (("calls", self.calls), ("cluster", self.cluster)):
            try:
                snapshot = await get()
            except Exception:
                return
            socket.send_json({"type": kind, **snapshot})

    def _broadcast(self, message: dict[str, Any]) -> None:
        for socket in list(self.sockets):
            if not socket.send_json(message):
                self.sockets.discard(socket)

    async def _push_loop(self) -> None:
        """While any socket is open: calls at <= 4 Hz while anything runs (and on every change),
        the cluster every CLUSTER_INTERVAL seconds."""
        loop = asyncio.get_running_loop()
        last_calls = ""
        next_cluster = loop.time() + CLUSTER_INTERVAL
        while self.sockets and not self._closed:
            interval = IDLE_INTERVAL
            try:
                snapshot = await self.calls()
                running = any(c["state"] == "running" for c in snapshot["calls"])
                body = json.dumps(snapshot["calls"], sort_keys=True)
                if running or body != last_calls:
                    self._broadcast({"type": "calls", **snapshot})
                    last_calls = body
                if running:
                    interval = RUNNING_INTERVAL
                if self.watching:
                    await self._push_details()
                if loop.time() >= next_cluster:
                    next_cluster = loop.time() + CLUSTER_INTERVAL
                    self._broadcast({"type": "cluster", **(await self.cluster())})
            except NoCluster:
                interval = RETRY_INTERVAL
            except Exception:
                logger.debug("nbfan telemetry push failed", exc_info=True)
                interval = RETRY_INTERVAL
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), interval)
            except asyncio.TimeoutError:
                pass

    def close(self) -> None:
        self._closed = True
        if self._pusher is not None:
            self._pusher.cancel()
        with self._lock:
            self._drop_client()
        self._executor.shutdown(wait=False)
