"""A child process that runs the inputs of one isolated function, one at a time, for a
worker (see `isolated.py` for why and when). Forked by the fork server with the function's
environment already in place, so code reading it in C (`getenv`) sees it too.

Requests: ("run", kind, digest, fn_blob | None, args, kwargs, lineage, output), kind "call" or
"gen"; output: what `output.in_child` needs to capture the input's prints, or None.
Replies: ("ok", value) | ("fail", Failure) for a call; ("y", value)... then ("end",) or
("fail", Failure) for a generator. Meanwhile the child may ask the worker to act for it:
("put", queue name, payload) pushes to a Dask Queue, ("output", message) sends what the
input printed, ("secede",) / ("rejoin",) free and take
back the worker slot while the input waits for calls it made.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Any

from nbfan.exception import SerializationError
from nbfan.worker import frames

_channel: socket.socket | None = None
_send_lock = threading.Lock()
_functions: dict[bytes, Callable[..., Any]] = {}


def in_child() -> bool:
    """Whether this process is an isolated child of a worker."""
    return _channel is not None


def tell_worker(*message: Any) -> None:
    """Send a message to the worker this child runs for (any thread may)."""
    assert _channel is not None
    with _send_lock:
        frames.send(_channel, message)


def serve(channel: socket.socket) -> None:
    """Run requests until the worker closes the channel (or kills this process)."""
    global _channel
    _channel = channel
    while True:
        try:
            request = frames.recv(channel)
        except frames.ChannelClosed:
            return
        if request[0] == "run":
            _run(*request[1:])


def _run(
    kind: str, digest: bytes, fn_blob: bytes | None, args: tuple[Any, ...], kwargs: dict[str, Any],
    lineage: tuple[str, ...], output_spec: tuple[str, str | None, int] | None = None,
) -> None:
    from nbfan.worker import output
    from nbfan.worker.context import CURRENT_CALL_ID, CURRENT_LINEAGE
    from nbfan.worker.payload import Failure

    call_token = CURRENT_CALL_ID.set(lineage[-1])
    lineage_token = CURRENT_LINEAGE.set(lineage)
    reply: tuple[str, Any]
    try:
        with output.in_child(output_spec, tell_worker):  # what it prints is sent before the reply
            fn = _function(digest, fn_blob)
            if kind == "gen":
                for value in fn(*args, **kwargs):
                    _reply("y", value)
                reply = ("end", None)
            else:
                result = fn(*args, **kwargs)
                if asyncio.iscoroutine(result):
                    result = asyncio.run(result)
                reply = ("ok", result)
    except Exception as exc:
        reply = ("fail", Failure.capture(exc))
    finally:
        CURRENT_LINEAGE.reset(lineage_token)
        CURRENT_CALL_ID.reset(call_token)
    if reply[0] == "end":
        tell_worker("end")
    else:
        _reply(*reply)


def _function(digest: bytes, fn_blob: bytes | None) -> Callable[..., Any]:
    if fn_blob is not None:
        from nbfan.worker.tracebacks import unpickle_function

        _functions.clear()  # a child serves one function; a new blob replaces it
        _functions[digest] = unpickle_function(fn_blob)
    return _functions[digest]


def _reply(kind: str, value: Any) -> None:
    """Send a value (or Failure) back; one that cannot be pickled becomes a Failure saying so."""
    from nbfan.worker.payload import Failure

    try:
        tell_worker(kind, value)
    except (frames.ChannelClosed, BrokenPipeError):
        raise
    except Exception as exc:
        if kind == "fail":
            tell_worker("fail", value.as_text_only())
            return
        what = "yielded" if kind == "y" else "returned"
        error = SerializationError(
            f"the function {what} a {type(value).__qualname__}, which could not be serialized to send it back "
            f"({type(exc).__name__}: {exc}). Return picklable values."
        )
        if kind == "y":
            raise error from None
        tell_worker("fail", Failure.capture(error))
