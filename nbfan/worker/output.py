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

from nbfan.keys import OUTPUT_TOPIC, parse_task_key

FLUSH_SECONDS = 0.15
MAX_LINE_CHARS = 4000  # longer lines are cut
SEND_LINES = 5_000  # a capture with this many lines waiting sends them at once, from its own thread
_OWN_LOGGERS = ("distributed", "nbfan", "tornado", "asyncio")

Line = tuple[int, str, float, str]  # (input index, stream, unix time, text); stream: "stdout", "stderr" or "log"


def _zero() -> int:
    return 0


class Target:
    """Where the lines of the inputs running in one thread go: a call, and the client topic to
    forward them to (None: stored only). `position()` is the running input's offset in its
    batch (set by the runner: `track_position`). Its lines wait in `lines` (appended by its
    thread alone, taken by the sender: no lock) until sent."""

    __slots__ = ("call_id", "lines", "logged", "partial", "position", "start", "to")

    def __init__(self, call_id: str, to: str | None, start: int | None = None) -> None:
        self.call_id = call_id
        self.to = to
        self.start = start  # the batch's first input index; found from the task key when needed
        self.position: Callable[[], int] = _zero
        self.partial: dict[str, list[str]] = {}  # stream -> the pieces of its unfinished line
        self.lines: list[Line] = []
        self.logged = False  # the root handler captured a record of it (see _from_captured_record)

    def index(self) -> int:
        if self.start is None:
            self.start = _task_start()
        return self.start + self.position()

    def write(self, stream: str, text: str) -> None:
        """Text with at least one newline in it (pieces without one wait in `partial`)."""
        parts = self.partial.get(stream)
        if parts:
            text = "".join(parts) + text
            parts.clear()
        *lines, rest = text.split("\n")
        if rest:
            self.partial[stream] = [rest]
        for line in lines:
            self.add(stream, line)

    def piece(self, stream: str, text: str) -> None:
        """Text without a newline: part of the line being written."""
        parts = self.partial.get(stream)
        if parts is None:
            self.partial[stream] = [text]
            return
        parts.append(text)
        if len(parts) > 64 and sum(map(len, parts)) > MAX_LINE_CHARS:  # no newline coming: cut here
            self.add(stream, "".join(parts))
            parts.clear()

    def add(self, stream: str, text: str) -> None:
        """One whole line."""
        if len(self.lines) >= SEND_LINES:  # a flood: no waiting for the sender thread
            _outbox.send(self)
        if len(text) > MAX_LINE_CHARS:
            text = text[:MAX_LINE_CHARS]
        start = self.start
        if start is None:
            start = self.start = _task_start()
        self.lines.append((start + self.position(), stream, time.time(), text))

    def end(self) -> None:
        """The input (or task) ended: its unfinished lines count as lines."""
        for stream, parts in self.partial.items():
            if parts:
                self.add(stream, "".join(parts))
        self.partial.clear()

    def take(self) -> list[Line]:
        """The lines waiting, for sending (the writer may go on appending: both are atomic)."""
        count = len(self.lines)
        lines = self.lines[:count]
        del self.lines[:count]
        return lines


def _task_start() -> int:
    try:
        from distributed import get_worker

        parsed = parse_task_key(get_worker().get_current_task())
    except Exception:
        parsed = None
    return parsed[1] if parsed is not None else 0


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
            send = self.sender
            if send is None or not lines:
                return
            message: dict[str, Any] = {"call_id": target.call_id, "to": target.to, "lines": lines}
            try:
                send(message)
            except Exception:  # the worker is closing: nobody to send to
                pass

    def flush(self) -> None:
        """Send what every running capture has waiting."""
        with self.lock:
            active = list(self.active)
        for target in active:
            if target.lines:
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
        if "\n" not in text:
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
    target = Target(call_id, to, start)
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
    target = Target(spec[0], spec[1], spec[2])
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
        start = _task_start()
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
