"""Inputs that must be isolated from the worker run in a child process of it.

A function with secrets or `Image.env` gets them as the real environment of its own process
(so code reading them in C sees them too) and nothing of them stays in the worker. A function
with a `timeout=` (and a `%%remote` cell) can be stopped for real: at the deadline or on a
cancel its process is killed, even inside a C call, and the worker slot is given back only
once the process is gone. Children come from a per-worker fork server (`zygote.py`), are kept
per (function, environment) between inputs, and a few idle ones are kept for reuse.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbfan.worker import frames

MAX_IDLE_CHILDREN = 8  # per worker process, all functions together
IDLE_SECONDS = 60.0  # an idle child is closed after this long (Modal's default scaledown window)
GONE_SECONDS = 5.0  # how long a killed child may take to be gone before the slot is freed anyway

Event = tuple[Any, ...]


def available() -> bool:
    """Child processes need fork and passing sockets between processes (POSIX)."""
    return hasattr(os, "fork") and hasattr(socket, "send_fds")


class Child:
    """One child process and the socket to it."""

    def __init__(self, pid: int, channel: socket.socket, key: tuple[Any, ...]) -> None:
        self.pid = pid
        self.channel = channel
        self.key = key
        self.loaded: bytes | None = None  # the function it has unpickled
        self.killed = False
        self.idle_since = 0.0

    def stop(self, _exc_type: type[BaseException] | None = None) -> None:
        """Kill it now (a cancel or a deadline); the waiting thread then sees its channel close."""
        self.killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, signal.SIGKILL)

    def wait_gone(self) -> None:
        """Block until the process is gone (its end of the channel closes), at most GONE_SECONDS."""
        deadline = time.monotonic() + GONE_SECONDS
        with contextlib.suppress(OSError):
            while (left := deadline - time.monotonic()) > 0:
                self.channel.settimeout(left)
                if not self.channel.recv(1 << 16):
                    break
        self.channel.close()

    def close(self) -> None:
        self.channel.close()  # the child sees the end of its channel and exits

    def alive(self) -> bool:
        """Whether the process is still there (an idle child may have died: its fork server
        went away, or the machine killed it)."""
        self.channel.setblocking(False)  # a timeout left by the last input would make recv wait
        try:
            return self.channel.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            return True  # nothing to read: still connected
        except OSError:
            return False
        finally:
            self.channel.setblocking(True)


class _ForkServer:
    """The worker's fork server process and the control socket to it."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        nbfan_root = str(Path(__file__).resolve().parents[2])  # so it imports this nbfan, installed or not
        env["PYTHONPATH"] = os.pathsep.join(p for p in (nbfan_root, env.get("PYTHONPATH", "")) if p)
        address = _scheduler_address()
        if address:  # calls made inside isolated functions reach the worker's cluster
            env["NBFAN_SCHEDULER"] = address
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nbfan.worker.zygote", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self.control = ours
        self.lock = threading.Lock()

    def alive(self) -> bool:
        return self.process.poll() is None

    def fork(self, env: dict[str, str], key: tuple[Any, ...]) -> Child:
        ours, theirs = socket.socketpair()
        with self.lock:
            frames.send(self.control, {"env": env, "sys_path": list(sys.path)}, fds=[theirs.fileno()])
            theirs.close()
            pid = frames.recv(self.control)
        return Child(pid, ours, key)


def _scheduler_address() -> str | None:
    from distributed import get_worker

    try:
        return str(get_worker().scheduler.address)
    except ValueError:
        return os.environ.get("NBFAN_SCHEDULER") or None


_server: _ForkServer | None = None
_server_lock = threading.Lock()
_idle: list[Child] = []
_idle_lock = threading.Lock()


def _fork(env: dict[str, str], key: tuple[Any, ...]) -> Child:
    global _server
    with _server_lock:
        if _server is None or not _server.alive():
            _server = _ForkServer()
        server = _server
    return server.fork(env, key)


def acquire(digest: bytes, env: dict[str, str]) -> Child:
    """An idle child of this function and environment, or a new one."""
    key = (digest, tuple(sorted(env.items())))
    while True:
        with _idle_lock:
            child = next((c for c in reversed(_idle) if c.key == key), None)
            if child is not None:
                _idle.remove(child)
        if child is None:
            return _fork(env, key)
        if child.alive():
            return child
        child.close()


def release(child: Child) -> None:
    """Keep a healthy child for the next input; close the oldest idle ones beyond the limit."""
    global _reaper
    if child.killed:
        return
    child.idle_since = time.monotonic()
    with _idle_lock:
        _idle.append(child)
        extra = _idle[: max(0, len(_idle) - MAX_IDLE_CHILDREN)]
        del _idle[: len(extra)]
        if _reaper is None:
            _reaper = threading.Thread(target=_reap_idle, name="nbfan-idle-children", daemon=True)
            _reaper.start()
    for c in extra:
        c.close()


_reaper: threading.Thread | None = None


def _reap_idle() -> None:
    """Close children idle for IDLE_SECONDS (they may hold memory, GPU memory included);
    ends when none is idle (the next release starts it again)."""
    global _reaper
    while True:
        time.sleep(min(IDLE_SECONDS, 5.0))
        now = time.monotonic()
        with _idle_lock:
            stale = [c for c in _idle if now - c.idle_since >= IDLE_SECONDS]
            for c in stale:
                _idle.remove(c)
            if not _idle:
                _reaper = None
                return
        for c in stale:
            c.close()


def close_all() -> None:
    """Close every idle child and the fork server (tests, and a worker shutting down)."""
    global _server
    with _idle_lock:
        idle, _idle[:] = list(_idle), []
    for child in idle:
        child.close()
    with _server_lock:
        if _server is not None:
            _server.control.close()
            with contextlib.suppress(Exception):
                _server.process.wait(GONE_SECONDS)
            _server = None


def digest_of(fn_blob: bytes) -> bytes:
    return hashlib.blake2b(fn_blob, digest_size=16).digest()


def exchange(
    child: Child, request: tuple[Any, ...], deadline: float | None, on_event: Callable[[Event], bool]
) -> Event | None:
    """Send a request and handle the child's messages until `on_event` says the input is done
    (returns that event). None when the deadline passed (the child was killed and is gone) or
    the child died (killed by a cancel, or crashed)."""
    try:
        frames.send(child.channel, request)
    except OSError:  # it died since its last input
        child.killed = True
        child.wait_gone()
        return None
    while True:
        try:
            child.channel.settimeout(None if deadline is None else max(deadline - time.monotonic(), 0.0))
            event: Event = frames.recv(child.channel)
        except TimeoutError:
            child.stop()
            child.wait_gone()
            return None
        except (frames.ChannelClosed, OSError):
            child.killed = True
            child.wait_gone()
            return None
        if on_event(event):
            return event
