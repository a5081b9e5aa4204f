"""Messages between a worker and its child processes: pickles framed by their length on a
Unix socket. Kept apart so the fork server and the child import nothing else of the worker."""

from __future__ import annotations

import socket
import struct
from typing import Any

import cloudpickle

_HEADER = struct.Struct("!Q")


class ChannelClosed(EOFError):
    """The process at the other end of the socket is gone."""


def send(sock: socket.socket, message: Any, fds: list[int] | None = None) -> None:
    """Send one message (and, optionally, file descriptors along with its first byte)."""
    body = cloudpickle.dumps(message, protocol=5)
    data = _HEADER.pack(len(body)) + body
    if fds:
        sent = socket.send_fds(sock, [data[:1]], fds)
        data = data[sent:]
    sock.sendall(data)


def recv(sock: socket.socket, with_fds: bool = False) -> Any:
    """The next message; (message, fds) when `with_fds`. Raises ChannelClosed at end of stream."""
    fds: list[int] = []
    if with_fds:
        first, fds, _flags, _addr = socket.recv_fds(sock, 1, 4)
        if not first:
            raise ChannelClosed("the other process closed the channel")
        header = first + _exactly(sock, _HEADER.size - 1)
    else:
        header = _exactly(sock, _HEADER.size)
    (size,) = _HEADER.unpack(header)
    message = cloudpickle.loads(_exactly(sock, size))
    return (message, fds) if with_fds else message


def _exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            raise ChannelClosed("the other process closed the channel")
        chunks += chunk
    return bytes(chunks)
