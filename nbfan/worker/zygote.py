"""The fork server of a worker: a single-threaded process, started once per worker, that has
already imported nbfan and forks a child process per isolated function (`isolated.py`).

Forking the worker itself is unsafe (it runs threads that may hold locks); starting a fresh
interpreter per child costs ~0.5 s of imports. Forking this process costs milliseconds. When
the worker goes away (its end of the control socket closes) the fork server kills its
children and exits; a child dies with the fork server (Linux's parent-death signal).

Run as `python -m nbfan.worker.zygote FD`, FD being its end of the control socket.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
from typing import Any

from nbfan.worker import frames

_children: set[int] = set()


def _reap(*_: Any) -> None:
    """SIGCHLD: collect every child that ended, so none is left a zombie."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _children.discard(pid)


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when the fork server dies, however it dies."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _fork(control: socket.socket, request: dict[str, Any], channel_fd: int) -> int:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})  # reaped only once it is in _children
    pid = os.fork()
    if pid:
        os.close(channel_fd)
        _children.add(pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        return pid
    try:  # the child: it never returns from here
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        control.close()
        _die_with_parent()
        os.environ.update(request["env"])
        sys.path[:] = request["sys_path"]
        from nbfan.worker.child import serve

        serve(socket.socket(fileno=channel_fd))
        code = 0
    except BaseException:
        code = 1
    os._exit(code)


def main(fd: int) -> None:
    control = socket.socket(fileno=fd)
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C of a terminal goes to the worker, not here
    import nbfan.worker.child  # noqa: F401  the children start with it imported

    try:
        while True:
            request, fds = frames.recv(control, with_fds=True)
            frames.send(control, _fork(control, request, fds[0]))
    except (frames.ChannelClosed, OSError):
        pass
    for pid in list(_children):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    main(int(sys.argv[1]))
