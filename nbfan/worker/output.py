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
MAX_PENDING_LINES = 50_000  # queued in this process between two flushes; more are dropped here, counted
_OWN_LOGGERS = ("distributed", "nbfan", "tornado", "asyncio")

Line = list[Any]  # [input index, stream, unix time, text]; stream: "stdout", "stderr" or "log"


def _zero() -> int:
    return 0


class Target:
    """Where the lines of the inputs running in one thread go: a call, and the client topic to
    forward them to (None: stored only). `position()` is the running input's offset in its
    batch (set by the runner: `track_position`)."""

    __slots__ = ("call_id", "partial", "position", "start", "to")

    def __init__(self, call_id: str, to: str | None, start: int | None = None) -> None:
        self.call_id = call_id
        self.to = to
        self.start = start  # the batch's first input index; found from the task key when needed
        self.position: Callable[[], int] = _zero
        self.partial: dict[str, str] = {}

    def index(self) -> int:
        if self.start is None:
            self.start = _task_start()
        return self.start + self.position()


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
    """The process's queued lines, by (call, topic), and the thread that sends them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.send_lock = threading.Lock()
        self.lines: dict[tuple[str, str | None], list[Line]] = {}
        self.dropped: dict[tuple[str, str | None], int] = {}
        self.count = 0
        self.sender: Callable[[dict[str, Any]], None] | None = None
        self._thread: threading.Thread | None = None

    def add(self, target: Target, stream: str, text: str) -> None:
        line = [target.index(), stream, time.time(), text[:MAX_LINE_CHARS]]
        key = (target.call_id, target.to)
        with self.lock:
            if self.count >= MAX_PENDING_LINES:
                self.dropped[key] = self.dropped.get(key, 0) + 1
                return
            self.lines.setdefault(key, []).append(line)
            self.count += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="nbfan-output", daemon=True)
                self._thread.start()

    def flush(self) -> None:
        """Send everything queued now (in order: one sender at a time)."""
        with self.send_lock:
            with self.lock:
                lines, self.lines = self.lines, {}
                dropped, self.dropped = self.dropped, {}
                self.count = 0
            send = self.sender
            if send is None:
                return
            for key in {**lines, **dropped}:
                message: dict[str, Any] = {"call_id": key[0], "to": key[1], "lines": lines.get(key, [])}
                if key in dropped:
                    message["dropped"] = dropped[key]
                try:
                    send(message)
                except Exception:  # the worker is closing: nobody to send to
                    pass

    def _loop(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            if self.count or self.dropped:
                self.flush()


_outbox = _Outbox()


def _write(target: Target, stream: str, text: str) -> None:
    partial = target.partial.get(stream, "") + text
    if "\n" not in partial:
        if len(partial) > MAX_LINE_CHARS:
            _outbox.add(target, stream, partial)
            partial = ""
        target.partial[stream] = partial
        return
    *lines, rest = partial.split("\n")
    target.partial[stream] = rest
    for line in lines:
        _outbox.add(target, stream, line)


def _end(target: Target) -> None:
    """An input (or task) ended: its unfinished lines count as lines."""
    for stream, rest in target.partial.items():
        if rest:
            _outbox.add(target, stream, rest)
    target.partial.clear()


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
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if not _from_captured_record():
            _write(target, self._stream, text)
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
        for line in self.format(record).split("\n"):
            _outbox.add(target, "log", line)


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
    token = _current.set(target)
    try:
        yield target
    finally:
        _current.reset(token)
        _end(target)
        _outbox.flush()


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
    token = _current.set(target)
    try:
        yield
    finally:
        _current.reset(token)
        _end(target)
        _outbox.flush()


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
