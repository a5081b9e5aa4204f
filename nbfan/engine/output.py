"""The caller's side of forwarded output (worker/output.py, scheduler/output.py): what its calls'
inputs print and log, written to this process's sys.stdout / sys.stderr as it arrives (in a
notebook kernel: the cell's output).

Each client listens on a topic of its own (`keys.output_topic`), subscribed on its first call,
before that call's tasks are submitted (the subscription goes ahead of them in the client's
stream). Calls made inside a worker task forward to their parent's topic instead: the output of
nested calls goes to whoever called the outermost one. The scheduler forwards at most
`scheduler.output.RATE` lines a second per call; the rest are kept, and this side says how many
were held back (at most once a second per call, and at exit) and how to read them all.

A line an input redraws with carriage returns (a tqdm bar) arrives as `progress` while it is
unfinished: it is drawn in place (`\r`, as tqdm itself draws: terminals and Jupyter's output
areas both redraw the line), and its finished state is written over it as a line."""

from __future__ import annotations

import atexit
import contextvars
import sys
import threading
import time
from typing import Any, NamedTuple

from distributed import Client

from nbfan.config import config
from nbfan.engine.client_topic import ClientTopic
from nbfan.keys import output_topic
from nbfan.scheduler.rpc import request
from nbfan.worker import output as worker_output
from nbfan.worker.context import current_lineage

NOTE_SECONDS = 1.0
_held: dict[str, list[float]] = {}  # call id -> [held back so far, held back when last told, last told at]
_lock = threading.Lock()


def spec_fields(client: Client, enabled: bool) -> dict[str, Any]:
    """The TaskSpec fields of a new call: whether its output is captured, and where it is shown."""
    if not (enabled and config.forward_output):
        return {"capture_output": False, "output_to": None}
    if worker_output.current() is not None:  # a call made inside an input: its caller's topic
        return {"capture_output": True, "output_to": worker_output.current_topic()}
    if current_lineage():  # inside an input whose own output is not captured: kept, shown to nobody
        return {"capture_output": True, "output_to": None}
    return {"capture_output": True, "output_to": topic_for(client)}


def topic_for(client: Client) -> str | None:
    """The client's output topic, or None when it cannot hear one (no nbfan plugin)."""
    return _topic.topic_for(client)


def _arrived(event: tuple[float, Any]) -> None:
    """Lines of one call (on the client's event loop): write them where this process prints."""
    _, msg = event
    if not isinstance(msg, dict):
        return
    for line in msg.get("lines", ()):
        write_line(line[1], line[3])
    for _index, stream_name, text in msg.get("progress", ()):
        write_progress(stream_name, text)
    held = int(msg.get("held", 0) or 0)
    if held:
        _note_held(str(msg.get("call_id", "?")), held)


_topic = ClientTopic(output_topic, _arrived)


_drawn: set[str] = set()  # streams whose last write is a progress line drawn in place


def write_line(stream_name: str, text: Any) -> None:
    """One forwarded line, to this process's stdout ("stdout") or stderr ("stderr", "log")."""
    stream = sys.stdout if stream_name == "stdout" else sys.stderr
    _write(stream, f"{_back_over(stream)}{text}\n")


def write_progress(stream_name: str, text: Any) -> None:
    """An input's unfinished, redrawn line (a tqdm bar): drawn over the last one, no newline."""
    stream = sys.stdout if stream_name == "stdout" else sys.stderr
    _write(stream, f"{_back_over(stream)}{text}")
    _drawn.add(str(id(stream)))


def _back_over(stream: Any) -> str:
    """What goes before a write so that it replaces a progress line drawn on `stream`."""
    key = str(id(stream))
    if key not in _drawn:
        return ""
    _drawn.discard(key)
    try:
        tty = bool(stream.isatty())
    except Exception:
        tty = False
    return "\r\x1b[K" if tty else "\r"


def _write(stream: Any, text: str) -> None:
    try:
        # in an empty context: the client's event loop runs in the context of the cell that
        # started it, and ipykernel would file the line under that cell, not the running one
        contextvars.Context().run(_write_to, stream, text)
    except Exception:  # a closed stream must not break the client's event loop
        pass


def _write_to(stream: Any, text: str) -> None:
    stream.write(text)
    stream.flush()


def _note_held(call_id: str, held: int) -> None:
    """Say how many lines were held back: at once the first time, then at most every NOTE_SECONDS."""
    now = time.monotonic()
    with _lock:
        state = _held.setdefault(call_id, [0.0, 0.0, 0.0])
        state[0] = max(state[0], held)
        due = state[0] > state[1] and now - state[2] >= NOTE_SECONDS
        if due:
            state[1], state[2] = state[0], now
        elif call_id not in _timers:  # told a moment ago: tell the rest a little later
            timer = threading.Timer(NOTE_SECONDS, _later, (call_id,))
            timer.daemon = True
            _timers[call_id] = timer
            timer.start()
    if due:
        _tell_held(call_id, int(state[0]))


def _later(call_id: str) -> None:
    with _lock:
        _timers.pop(call_id, None)
        state = _held.get(call_id)
        if state is None or state[0] <= state[1]:
            return
        state[1], state[2] = state[0], time.monotonic()
    _tell_held(call_id, int(state[0]))


_timers: dict[str, threading.Timer] = {}


def _tell_held(call_id: str, held: int) -> None:
    _write(sys.stderr, f"{_back_over(sys.stderr)}{held_note(call_id, held)}\n")


def held_note(call_id: str, held: int) -> str:
    from nbfan.scheduler.output import RATE

    return (
        f"nbfan: call {call_id} prints more than {RATE} lines/s: {held:,} lines held back so far (kept on the "
        f"cluster); read them all with `nbfan logs {call_id}`"
    )


@atexit.register
def _tell_rest() -> None:
    """At exit: the held-back counts not told yet."""
    with _lock:
        untold = [(call_id, int(s[0])) for call_id, s in _held.items() if s[0] > s[1]]
    for call_id, held in untold:
        _tell_held(call_id, held)


# -- reading kept output back (any process connected to the cluster) ---------------------------


class LogLine(NamedTuple):
    """One line an input of a call printed or logged."""

    input: int  # the input's index in its call
    stream: str  # "stdout", "stderr" or "log" (a record of the root logger)
    time: float  # unix time it was written
    worker: str  # address of the worker that ran the input
    text: str


class FailedInput(NamedTuple):
    """One input of a call that failed (after its retries)."""

    input: int  # the input's index in its call
    exc_type: str  # module-qualified name of the exception's type
    message: str
    traceback: str  # the remote traceback, as text
    worker: str
    attempts: int


def read_page(client: Client, call_id: str, *, after: int = 0, input: int | None = None,
              since: float | None = None) -> dict[str, Any]:
    """One page of a call's kept lines after sequence number `after`: the scheduler's reply
    (`lines` as [seq, index, stream, time, worker, text], `next`, `known`, `dropped`, `lost`, `held`)."""
    reply: dict[str, Any] = request(client, "output.read", call_id=call_id, after=after, input=input, since=since)
    return reply


def read_logs(client: Client, call_id: str, *, input: int | None = None, since: float | None = None) -> list[LogLine]:
    """Every kept line of a call (of input `input`, written at or after unix time `since`)."""
    lines: list[LogLine] = []
    after = 0
    while True:
        page = read_page(client, call_id, after=after, input=input, since=since)
        lines.extend(LogLine(*row[1:]) for row in page["lines"])
        if page["next"] == after:
            return lines
        after = page["next"]


def read_failures(client: Client, call_id: str) -> list[FailedInput]:
    """The failed inputs of a call the cluster knows of, by input index."""
    reply = request(client, "output.failures", call_id=call_id)
    return [FailedInput(row[0], row[1], row[2], row[3], row[4], row[5]) for row in reply["failures"]]


class Follower:
    """Writes a call's kept lines here as they come, for a handle re-attached in another process
    (the spawner itself gets them forwarded live)."""

    def __init__(self, client: Client, call_id: str) -> None:
        self.client = client
        self.call_id = call_id
        self.after = 0
        self.skipped = 0

    def poll(self) -> None:
        """Write what arrived since the last poll: at most FOLLOW_LINES lines, and a count of the rest."""
        try:
            page = read_page(self.client, self.call_id, after=self.after)
        except Exception:  # an old cluster without the request: nothing to show
            return
        rows = page["lines"]
        for row in rows[:FOLLOW_LINES]:
            write_line(row[2], row[5])
        self.skipped += max(0, len(rows) - FOLLOW_LINES)
        self.after = page["next"]
        if len(rows) > FOLLOW_LINES:
            _tell_held(self.call_id, self.skipped)


FOLLOW_LINES = 200  # lines a re-attached handle writes per poll (about a second)
