"""What a plain function changes of its worker process is put back after its task.

A function that sets `os.environ`, calls `os.chdir` or edits `sys.path` changes them for the
whole process; on a shared Dask worker that would reach every later function (Modal's container
per function never lets it). Around every task of a plain function (one run in the worker's own
threads, `runners.InThread`), these three are taken when the task starts and put back when it
ends: keys added are removed, keys changed or removed get their old values back, the working
directory is the old one again, and `sys.path` is the same list object with the same contents.
Functions with secrets, an environment or a timeout run in child processes (`isolated.py`) and
never touch the worker's own state.

Several threads of one worker share the process: the state is taken when the first plain task
starts on an idle worker and put back when the last running one ends, so tasks that overlap see
each other's changes while they run, and no task's end undoes what a still-running one set.
(With one thread per worker, the default, that is each task on its own.)
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class State:
    """The process-wide state a function may change."""

    environ: dict[Any, Any]  # as `_environ()` gives it
    cwd: str | None  # None: the working directory was already gone
    path: list[str]  # the `sys.path` object itself
    path_items: tuple[str, ...]  # and what it held


def _environ() -> dict[Any, Any]:
    """A copy of the environment. `os.environ` keeps it encoded in a dict of its own, which
    copies and compares in C (~0.2 us for 40 keys); `dict(os.environ)` decodes every key and
    value (~17 us for 40), so that is only the fallback where there is no such dict."""
    data = getattr(os.environ, "_data", None)
    return dict(data) if isinstance(data, dict) else dict(os.environ)


def _decoded(key: Any, value: Any) -> tuple[str, str]:
    if isinstance(getattr(os.environ, "_data", None), dict):
        return os.environ.decodekey(key), os.environ.decodevalue(value)
    return key, value


def take() -> State:
    """The state now."""
    try:
        cwd: str | None = os.getcwd()
    except OSError:
        cwd = None
    return State(_environ(), cwd, sys.path, tuple(sys.path))


def restore(state: State) -> None:
    """Put the process back as `state` found it; what did not change is not touched."""
    now = _environ()
    if now != state.environ:
        for key in now.keys() - state.environ.keys():
            del os.environ[_decoded(key, now[key])[0]]
        for key, value in state.environ.items():
            if now.get(key) != value:
                name, text = _decoded(key, value)
                os.environ[name] = text
    if state.cwd is not None:
        try:
            moved = os.getcwd() != state.cwd
        except OSError:  # the function removed the folder it moved to
            moved = True
        if moved:
            try:
                os.chdir(state.cwd)
            except OSError:  # the old folder is gone too: nothing to go back to
                pass
    if sys.path is not state.path:
        sys.path = state.path
    if tuple(state.path) != state.path_items:
        state.path[:] = state.path_items


_lock = threading.Lock()
_running = 0  # plain tasks running in this process now
_before: State | None = None  # the state when the first of them started


@contextmanager
def kept(active: bool = True) -> Iterator[None]:
    """Around a task's inputs: the process state is put back once no plain task runs any more.
    `active=False` (inputs that run in a child process): nothing to keep."""
    global _running, _before
    if not active:
        yield
        return
    with _lock:
        if _running == 0:
            _before = take()
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0 and _before is not None:
                state, _before = _before, None
                restore(state)
