"""What an input prints and logs, captured for the person who called it (runs in a worker task,
or in an isolated child of a worker).

Once per process, `sys.stdout` and `sys.stderr` are replaced by proxies, and a handler is put
first on the root logger. Both look at the current thread's running input (a context
variable set around a task's inputs by `capture()`, or around one input in a child by
`in_child()`): writes and records made in that thread while an input runs are cut into lines
and queued; everything else (other threads of the worker, Dask itself, the worker between
tasks) goes to the real streams as before. Lines are sent every FLUSH_SECONDS, and at once when
the task ends (before its result), as one log event on OUTPUT_TOPIC per call; nbfan's scheduler
plugin keeps them per call and forwards them to the calling client (scheduler/output.py).

A line redrawn with carriage returns (a `tqdm` bar, any `\r` progress) is kept as its last state
only: while it is unfinished, that state is sent as the input's `progress` at each flush (the
caller redraws it in place, nothing is stored); once finished, it is one line like any other.

Not captured: what C code, `os.write` or a subprocess writes to file descriptors 1 and 2 (they
go to the worker's own stdout/stderr, its log), and what threads the input starts print (a
new thread has no running input). Records of loggers under `distributed` and `nbfan` are never
attributed to an input.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from nbfan.keys import OUTPUT_TOPIC
from nbfan.worker.output_lines import MAX_LINE_CHARS, Line, Target, task_start, visible

__all__ = ["MAX_LINE_CHARS", "Line", "Target", "capture", "current", "current_topic", "for_child", "in_child",
           "install", "relay", "report_failures", "track_position", "visible"]

FLUSH_SECONDS = 0.15
_OWN_LOGGERS = ("distributed", "nbfan", "tornado", "asyncio")

_current: contextvars.ContextVar[Target | None] = contextvars.ContextVar("nbfan_output", default=None)


def current() -> Target | None:
    """The running input's capture in this thread, if any."""
    return _current.get()


def current_topic() -> str | None:
    """The client topic the running input's output goes to: calls made inside it send theirs
    there too (the child's output goes to whoever called the parent)."""
    target = _current.get()
    return target.to if target is not None else None


def track_position(position: Callable[[], int]) -> None:
    """The runner says how to know which input of the batch runs now (e.g. `values.__len__`)."""
    target = _current.get()
    if target is not None:
        target.position = position


class _Outbox:
    """The process's running captures, and the thread that sends their lines every FLUSH_SECONDS."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.send_lock = threading.Lock()  # one sender at a time: a call's lines go in order
        self.active: set[Target] = set()
        self.sender: Callable[[dict[str, Any]], None] | None = None
        self._thread: threading.Thread | None = None

    def begin(self, target: Target) -> None:
        with self.lock:
            self.active.add(target)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="nbfan-output", daemon=True)
                self._thread.start()

    def finish(self, target: Target) -> None:
        """The capture ended: send the rest of its lines now (before its task's result)."""
        target.end()
        with self.lock:
            self.active.discard(target)
        self.send(target)

    def send(self, target: Target) -> None:
        with self.send_lock:
            lines = target.take()
            progress = target.progress() if target.redrawn and target.to else []
            send = self.sender
            if send is None or not (lines or progress):
                return
            message: dict[str, Any] = {"call_id": target.call_id, "to": target.to, "lines": lines}
            if progress:
                message["progress"] = progress
            try:
                send(message)
            except Exception:  # the worker is closing: nobody to send to
                pass

    def flush(self) -> None:
        """Send what every running capture has waiting."""
        with self.lock:
            active = list(self.active)
        for target in active:
            if target.lines or target.redrawn:
                self.send(target)

    def _loop(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            self.flush()


_outbox = _Outbox()


_EMIT_CODE = logging.StreamHandler.emit.__code__


def _from_captured_record() -> bool:
    """Whether the write being made comes from a logging StreamHandler emitting a record the
    root handler already captured (it would count twice)."""
    frame = sys._getframe(2)
    if frame.f_code is not _EMIT_CODE:
        return False
    return bool(getattr(frame.f_locals.get("record"), "nbfan_captured", False))


class _Proxy:
    """Stands in for sys.stdout / sys.stderr: writes of a running input are captured, all
    others go to the real stream."""

    def __init__(self, stream: str, original: Any) -> None:
        self._stream = stream
        self._original = original

    def write(self, text: str) -> int:
        target = _current.get()
        if target is None:
            return int(self._original.write(text))
        if text.__class__ is not str and not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if text == "\n":  # the end of a print()
            target.newline(self._stream)
        elif "\n" not in text:
            target.piece(self._stream, text)
        elif not (target.logged and _from_captured_record()):
            target.write(self._stream, text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if _current.get() is None:
            self._original.flush()

    def isatty(self) -> bool:
        return False if _current.get() is not None else bool(self._original.isatty())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


class _RootHandler(logging.Handler):
    """First handler of the root logger: a running input's records become lines of its output
    (formatted as `logging.basicConfig` would). Others are left to the other handlers, or to
    logging's last resort when this is the only one (as if it were not there)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(logging.BASIC_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        target = _current.get()
        if target is None or record.name.startswith(_OWN_LOGGERS):
            last = logging.lastResort
            if logging.getLogger().handlers == [self] and last is not None and record.levelno >= last.level:
                last.handle(record)
            return
        record.nbfan_captured = True
        target.logged = True
        for line in self.format(record).split("\n"):
            target.add("log", line)


_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Put the proxies and the root handler in place in this process (once)."""
    global _installed
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        if not isinstance(sys.stdout, _Proxy):
            sys.stdout = _Proxy("stdout", sys.stdout)
        if not isinstance(sys.stderr, _Proxy):
            sys.stderr = _Proxy("stderr", sys.stderr)
        root = logging.getLogger()
        if not any(isinstance(h, _RootHandler) for h in root.handlers):
            root.handlers.insert(0, _RootHandler())
        _installed = True


def _worker_sender() -> Callable[[dict[str, Any]], None] | None:
    try:
        from distributed import get_worker

        worker: Any = get_worker()
    except Exception:
        return None
    address = str(worker.address)

    def send(message: dict[str, Any]) -> None:
        message["worker"] = address
        worker.log_event(OUTPUT_TOPIC, message)

    return send


@contextlib.contextmanager
def capture(call_id: str, to: str | None, enabled: bool, start: int | None = None) -> Iterator[Target | None]:
    """Around a task's inputs in a worker thread: their output is captured (when `enabled`),
    and all of it is sent before the task returns."""
    if not enabled:
        yield None
        return
    install()
    if _outbox.sender is None:
        _outbox.sender = _worker_sender()
    target = Target(call_id, to, start, flood=_outbox.send)
    _outbox.begin(target)
    token = _current.set(target)
    try:
        yield target
    finally:
        _current.reset(token)
        _outbox.finish(target)


def for_child() -> tuple[str, str | None, int] | None:
    """What an isolated child needs to capture the input about to run: (call, topic, index)."""
    target = _current.get()
    return None if target is None else (target.call_id, target.to, target.index())


@contextlib.contextmanager
def in_child(spec: tuple[str, str | None, int] | None, tell_worker: Callable[..., None]) -> Iterator[None]:
    """Around one input in an isolated child: its output goes to the worker (`("output", message)`),
    which sends it on (`relay`); all of it before the input's reply."""
    if spec is None:
        yield
        return
    install()
    _outbox.sender = lambda message: tell_worker("output", message)
    target = Target(spec[0], spec[1], spec[2], flood=_outbox.send)
    _outbox.begin(target)
    token = _current.set(target)
    try:
        yield
    finally:
        _current.reset(token)
        _outbox.finish(target)


def relay(message: dict[str, Any]) -> None:
    """On the worker: send on what an isolated child captured."""
    send = _worker_sender()
    if send is not None:
        send(message)


def report_failures(call_id: str, start: int | None, failures: dict[int, Any], attempts: int) -> None:
    """Tell the scheduler which inputs of a task failed (index, exception type, message, remote
    traceback, attempts), for `nbfan logs --failed` and MapCall.failures()."""
    if not failures:
        return
    if start is None:
        start = task_start()
    send = _worker_sender()
    if send is None:
        return
    rows = [
        [start + position, str(f.type_name), str(f.message)[:MAX_LINE_CHARS * 4], str(f.traceback)[-20_000:], attempts]
        for position, f in sorted(failures.items())
    ]
    try:
        send({"call_id": call_id, "failures": rows})
    except Exception:
        pass
