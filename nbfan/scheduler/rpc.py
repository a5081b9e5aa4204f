"""The one way any nbfan process (a caller, a worker task, a coordinator, the Lab server) talks
to nbfan's plugin on the scheduler: `request(client, op, **arguments)`.

The plugin is installed on first use (`Client.register_plugin`, idempotent by name), and again
when a scheduler that restarted has lost it. Every request carries the protocol version; a
scheduler whose plugin speaks another version refuses it with a message naming both."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Generator, Mapping
from typing import Any, cast

from nbfan.exception import ExecutionError
from nbfan.scheduler.plugin import HANDLER, PLUGIN_NAME, PROTOCOL_VERSION, NbfanPlugin

__all__ = ["PLUGIN_NAME", "PROTOCOL_VERSION", "cap_shares", "ensure_cap", "ensure_plugin", "ensure_scaling", "request",
           "request_async", "set_scaling", "store_call", "store_call_async"]

_installed: set[tuple[int, str]] = set()  # (id of the client, scheduler address)
_lock = threading.Lock()


def _address(client: Any) -> str:
    try:
        return str(client.scheduler.address)
    except Exception:
        return "?"


def ensure_plugin(client: Any, *, again: bool = False) -> None:
    """Install nbfan's scheduler plugin through `client` unless this process already did (or
    `again`: the scheduler answered as if it had none)."""
    key = (id(client), _address(client))
    with _lock:
        if key in _installed and not again:
            return
    try:
        client.register_plugin(NbfanPlugin(), name=PLUGIN_NAME)
    except Exception as exc:
        raise ExecutionError(
            f"the Dask scheduler at {_address(client)} could not load nbfan's scheduler plugin "
            f"({type(exc).__name__}: {exc}); nbfan needs it for call telemetry, caps, spawn_map, Dicts and Queues"
        ) from exc
    with _lock:
        _installed.add(key)


def forget(client: Any) -> None:
    """Forget what `client` set up on its scheduler (the plugin, scaling knobs): it connected
    again, perhaps to a new scheduler at the same address, and the next call sets them up anew."""
    with _lock:
        _installed.discard((id(client), _address(client)))
    with _registered_lock:
        for key in [k for k in _scaling if k[0] == client.id]:
            del _scaling[key]


def _answer(client: Any, op: str, reply: Any) -> Any:
    if isinstance(reply, dict) and "result" in reply:
        return reply["result"]
    if isinstance(reply, dict) and reply.get("error"):
        raise ExecutionError(f"nbfan's plugin on the scheduler at {_address(client)} refused {op!r}: {reply['error']}")
    return _MISSING


_MISSING = object()


def _exchange(client: Any, op: str) -> Generator[str, Any, Any]:
    """A request written once, driven blocking (`request`) or awaited (`request_async`): it
    yields "install" (install the plugin) or "ask" (send the request; the reply comes back, or
    _LOST when the scheduler has no plugin: it restarted), and returns the answer."""
    for attempt in range(2):
        if attempt or not _plugin_installed(client):
            yield "install"
        reply = yield "ask"
        if reply is _LOST:
            continue
        answer = _answer(client, op, reply)
        if answer is not _MISSING:
            return answer
    raise _no_answer(client, op)


_LOST = object()


def request(dask_client: Any, op: str, /, **arguments: Any) -> Any:
    """Ask nbfan's scheduler plugin to do `op`; its answer. Blocking (any thread but the
    client's event loop). `arguments` may use any name (`client=` too)."""
    client = dask_client
    steps = _exchange(client, op)
    reply: Any = None
    while True:
        try:
            step = steps.send(reply)
        except StopIteration as done:
            return done.value
        reply = None
        if step == "install":
            ensure_plugin(client, again=_plugin_installed(client))
            continue
        try:
            reply = client.sync(getattr(client.scheduler, HANDLER), operation=op, version=PROTOCOL_VERSION, **arguments)
        except ValueError as exc:
            if not _plugin_lost(exc):
                raise
            reply = _LOST


async def request_async(dask_client: Any, op: str, /, **arguments: Any) -> Any:
    """`request` for coroutines: the request runs on the client's own event loop and this
    coroutine awaits it, so any number of them wait at once without holding a thread each."""
    client = dask_client
    steps = _exchange(client, op)
    reply: Any = None
    while True:
        try:
            step = steps.send(reply)
        except StopIteration as done:
            return done.value
        reply = None
        if step == "install":
            await asyncio.to_thread(ensure_plugin, client, again=_plugin_installed(client))
            continue
        try:
            call = getattr(client.scheduler, HANDLER)(operation=op, version=PROTOCOL_VERSION, **arguments)
            reply = await _on_client_loop(client, call)
        except ValueError as exc:
            if not _plugin_lost(exc):
                raise
            reply = _LOST


def _plugin_lost(exc: ValueError) -> bool:
    """Dask's "No handler found": the scheduler lost the plugin (it restarted); install it again."""
    return "handler" in str(exc).lower()


def _no_answer(client: Any, op: str) -> ExecutionError:
    return ExecutionError(f"the scheduler at {_address(client)} does not answer nbfan's requests ({op!r})")


def _plugin_installed(client: Any) -> bool:
    with _lock:
        return (id(client), _address(client)) in _installed


async def _on_client_loop(client: Any, coroutine: Any) -> Any:
    """Await a coroutine of the Dask client on the client's loop, from whichever loop this is."""
    loop = client.loop.asyncio_loop
    if asyncio.get_running_loop() is loop:
        return await coroutine
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, loop))


# -- the client side of the parts' requests -----------------------------------------------------


def store_call(client: Any, op: str, **kwargs: Any) -> dict[str, Any]:
    """One request to the scheduler's store of Dicts, Queues and apps (`op`: "dict", "queue" or
    "apps"); its reply dict, or ExecutionError with the store's complaint."""
    return _store_reply(client, request(client, op, **kwargs))


async def store_call_async(client: Any, op: str, **kwargs: Any) -> dict[str, Any]:
    """`store_call` for coroutines (no thread held while the store answers)."""
    return _store_reply(client, await request_async(client, op, **kwargs))


def _store_reply(client: Any, reply: dict[str, Any]) -> dict[str, Any]:
    if not reply.get("ok") and "error" in reply:
        raise ExecutionError(f"nbfan store on {_address(client)}: {reply['error']}")
    return reply


_registered: set[tuple[Any, ...]] = set()
_registered_lock = threading.Lock()


def ensure_cap(client: Any, scheduler_id: str, name: str, limit: int, requires: Mapping[str, float]) -> None:
    """Make sure the cluster enforces `limit` for resource `name` (one round trip per process
    per scheduler and cap; later calls are free)."""
    key = (scheduler_id, name, int(limit), tuple(sorted(requires.items())))
    with _registered_lock:
        if key in _registered:
            return
    request(client, "caps.set", name=name, limit=int(limit), requires=dict(requires))
    with _registered_lock:
        _registered.add(key)


_scaling: dict[tuple[str, str | None, str], dict[str, Any]] = {}  # (client id, app, function) -> knobs sent


def set_scaling(client: Any, app: str | None, function: str, knobs: Mapping[str, Any]) -> None:
    """Set `function`'s scaling knobs on the cluster, held while this client is connected
    (scheduler/demand.py); later `ensure_scaling`s of the same knobs are free."""
    request(client, "autoscaler.set", app=app, function=function, holder=client.id, **dict(knobs))
    with _registered_lock:
        _scaling[(client.id, app, function)] = dict(knobs)


def ensure_scaling(client: Any, app: str | None, function: str, knobs: Mapping[str, Any]) -> None:
    """`set_scaling` once per client and function (a function's first call); free afterwards.
    A function whose knobs this client never set (defaults) costs nothing."""
    with _registered_lock:
        known = _scaling.get((client.id, app, function))
    if known is None and not any(knobs.values()):
        return
    if known != dict(knobs):
        set_scaling(client, app, function, knobs)


def cap_shares(client: Any) -> dict[str, dict[str, int]]:
    """Every cap's current shares by worker address (for `nbfan cluster status` and tests)."""
    return cast(dict[str, dict[str, int]], request(client, "caps.shares"))
