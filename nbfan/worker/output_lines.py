"""One running input's (or task's) output as it is written: cut into whole lines, a line
redrawn with carriage returns kept as its last state (worker/output.py captures and sends them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from nbfan.keys import parse_task_key

MAX_LINE_CHARS = 4000  # longer lines are cut
SEND_LINES = 5_000  # a capture with this many lines waiting sends them at once, from its own thread

Line = tuple[int, str, float, str]  # (input index, stream, unix time, text); stream: "stdout", "stderr" or "log"


def _zero() -> int:
    return 0


class Target:
    """Where the lines of the inputs running in one thread go: a call, and the client topic to
    forward them to (None: stored only). `position()` is the running input's offset in its
    batch (set by the runner: `track_position`). Its lines wait in `lines` (appended by its
    thread alone, taken by the sender: no lock) until sent."""

    __slots__ = ("call_id", "flood", "lines", "logged", "partial", "position", "redrawn", "returned", "start", "to")

    def __init__(self, call_id: str, to: str | None, start: int | None = None,
                 flood: Callable[[Target], None] | None = None) -> None:
        self.call_id = call_id
        self.flood = flood  # sends the lines at once when SEND_LINES are waiting
        self.to = to
        self.start = start  # the batch's first input index; found from the task key when needed
        self.position: Callable[[], int] = _zero
        self.partial: dict[str, list[str]] = {}  # stream -> the pieces of its unfinished line
        self.lines: list[Line] = []
        self.redrawn: set[str] = set()  # streams whose unfinished line was redrawn since the last send
        self.returned: set[str] = set()  # streams whose last write ended with "\r": the next starts anew
        self.logged = False  # the root handler captured a record of it (see _from_captured_record)

    def index(self) -> int:
        if self.start is None:
            self.start = task_start()
        return self.start + self.position()

    def write(self, stream: str, text: str) -> None:
        """Text with at least one newline in it (pieces without one wait in `partial`)."""
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        parts = self._line(stream, text)
        if parts:
            text = "".join(parts) + text
            parts.clear()
        *lines, rest = text.split("\n")
        if rest:
            self.partial[stream] = [rest]
            if "\r" in rest:
                self._redraw(stream, rest)
        for line in lines:
            self.add(stream, visible(line) if "\r" in line else line)

    def newline(self, stream: str) -> None:
        """A lone newline (`print` writes its text, then "\\n"): the line being written ends."""
        if self.returned:
            self.returned.discard(stream)
        parts = self.partial.pop(stream, None)
        line = "".join(parts) if parts else ""
        self.add(stream, visible(line) if "\r" in line else line)

    def piece(self, stream: str, text: str) -> None:
        """Text without a newline: part of the line being written."""
        redraws = "\r" in text
        # the common case (no carriage return now or just before) skips `_line`'s checks
        parts = self._line(stream, text) if redraws or self.returned else self.partial.get(stream)
        if redraws:
            self._redraw(stream, text if parts is None else "".join(parts) + text)
        elif parts is None:
            self.partial[stream] = [text]
        else:
            parts.append(text)
            if len(parts) > 64 and sum(map(len, parts)) > MAX_LINE_CHARS:  # no newline coming: cut here
                self.add(stream, "".join(parts))
                parts.clear()

    def _line(self, stream: str, text: str) -> list[str] | None:
        """The pieces of the stream's unfinished line that `text` continues (after a closing
        carriage return, new text starts the line anew; a newline ends it as shown)."""
        if stream in self.returned:
            self.returned.discard(stream)
            if not text.startswith("\n"):
                self.partial.pop(stream, None)
        return self.partial.get(stream)

    def _redraw(self, stream: str, text: str) -> None:
        """The unfinished line, redrawn with carriage returns: only its last state is kept (and
        sent as progress at the next flush)."""
        head, _, tail = text.rpartition("\r")
        self.partial[stream] = [tail or visible(head)]
        if not tail:
            self.returned.add(stream)
        self.redrawn.add(stream)

    def progress(self) -> list[list[Any]]:
        """The redrawn unfinished lines since the last call, as [input index, stream, text]."""
        shown = []
        for stream in list(self.redrawn):
            self.redrawn.discard(stream)
            parts = list(self.partial.get(stream) or ())
            if parts:
                shown.append([self.index(), stream, "".join(parts)[:MAX_LINE_CHARS]])
        return shown

    def add(self, stream: str, text: str) -> None:
        """One whole line."""
        lines = self.lines
        if len(lines) >= SEND_LINES and self.flood is not None:  # a flood: no waiting for the sender thread
            self.flood(self)
        start = self.start
        if start is None:
            start = self.start = task_start()
        lines.append((start + self.position(), stream, time.time(), text[:MAX_LINE_CHARS]))

    def end(self) -> None:
        """The input (or task) ended: its unfinished lines count as lines."""
        for stream, parts in self.partial.items():
            if parts:
                self.add(stream, "".join(parts))
        self.partial.clear()
        self.returned.clear()
        self.redrawn.clear()

    def take(self) -> list[Line]:
        """The lines waiting, for sending (the writer may go on appending: both are atomic)."""
        count = len(self.lines)
        lines = self.lines[:count]
        del self.lines[:count]
        return lines


def visible(text: str) -> str:
    """What a terminal shows of a line redrawn with carriage returns: its last non-empty state."""
    for segment in reversed(text.split("\r")):
        if segment:
            return segment
    return ""


def task_start() -> int:
    try:
        from distributed import get_worker

        parsed = parse_task_key(get_worker().get_current_task())
    except Exception:
        parsed = None
    return parsed[1] if parsed is not None else 0
