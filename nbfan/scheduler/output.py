"""What calls' inputs printed and logged, and which inputs failed: kept per call on the
scheduler, and forwarded live to the client that made the call (a part of nbfan's plugin).

Workers send lines as log events on `keys.OUTPUT_TOPIC` (worker/output.py). Each line is kept
(read back by `nbfan logs`, `FunctionCall.logs()`, `MapCall.logs()`) and, up to RATE lines a
second per call (bursts of BURST), forwarded to the call's client topic; lines over that rate
are kept but not forwarded, and every forwarded message says how many were held back. An
input's `progress` (the last state of a line it redraws with carriage returns, a tqdm bar) is
forwarded as it comes, at most once per worker flush, and only the latest per input is kept.

Bounds: MAX_CALL_LINES lines per call and MAX_LINES lines on the cluster (the oldest dropped
first), lines of at most worker.output.MAX_LINE_CHARS; MAX_FAILURES failed inputs per call. A
call's output goes `keep_for` seconds (retention's, 600 s by default) after its last line, or
once its result is no longer held (a spawned call's, a spawn_map's) if that is later."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

RATE = 100  # lines a second per call forwarded to its caller
BURST = 1000  # lines forwarded at once before the rate applies
MAX_CALL_LINES = 100_000
MAX_LINES = 1_000_000
MAX_FAILURES = 1_000
MAX_CALLS = 10_000  # calls with output kept (the oldest go first)
READ_LIMIT = 10_000  # lines in one read reply
PROGRESS_INPUTS = 20  # inputs whose latest progress line a call keeps

Row = list[Any]  # as read back: [seq, input index, stream, time, worker, text]


class Batch:
    """The lines of one worker message, as they came ([input index, stream, time, text] each):
    kept whole, so storing a flood costs a few operations per message, not per line."""

    __slots__ = ("first", "lines", "skip", "worker")

    def __init__(self, first: int, worker: str, lines: list[Any]) -> None:
        self.first = first  # sequence number of lines[0]
        self.worker = worker
        self.lines = lines
        self.skip = 0  # lines dropped from its front (the bounds)

    @property
    def last(self) -> int:
        return self.first + len(self.lines) - 1

    def row(self, i: int) -> Row:
        line = self.lines[i]
        return [self.first + i, line[0], line[1], line[2], self.worker, line[3]]


class CallOutput:
    """One call's kept lines and failures, and its forwarding budget."""

    def __init__(self, now: float) -> None:
        self.batches: deque[Batch] = deque()
        self.count = 0  # lines kept
        self.seq = 0  # sequence number of the last line kept
        self.dropped = 0  # oldest lines dropped for the bounds
        self.lost = 0  # lines a worker reported it could not send
        self.held = 0  # lines kept but not forwarded (over the rate)
        self.tokens = float(BURST)
        self.refilled = now
        self.active = now
        self.failures: dict[int, list[Any]] = {}
        self.failures_dropped = 0
        self.progress: OrderedDict[int, Row] = OrderedDict()  # input index -> its redrawn line, latest last

    def take(self, n: int, now: float) -> int:
        """How many of `n` lines may be forwarded now."""
        self.tokens = min(float(BURST), self.tokens + (now - self.refilled) * RATE)
        self.refilled = now
        allowed = min(n, int(self.tokens))
        self.tokens -= allowed
        return allowed

    def drop_oldest(self, n: int) -> int:
        """Drop up to `n` of the oldest lines; how many were dropped."""
        done = 0
        while done < n and self.batches:
            batch = self.batches[0]
            left = len(batch.lines) - batch.skip
            if left <= n - done:
                self.batches.popleft()
                done += left
            else:
                batch.skip += n - done
                done = n
        self.count -= done
        self.dropped += done
        return done

    def rows(self, after: int = 0) -> Any:
        """Its kept lines after sequence number `after`, oldest first."""
        for batch in self.batches:
            if batch.last <= after:
                continue
            for i in range(max(batch.skip, after - batch.first + 1), len(batch.lines)):
                yield batch.row(i)


class Output:
    """Kept output and failures by call id (a part of `plugin.NbfanPlugin`)."""

    def __init__(self, still_held: Callable[[str], bool] | None = None,
                 keep_for: Callable[[], float] | None = None) -> None:
        self.calls: OrderedDict[str, CallOutput] = OrderedDict()  # oldest first
        self.total = 0
        self.scheduler: Any = None
        self.still_held = still_held or (lambda call_id: False)
        self.keep_for = keep_for or (lambda: 600.0)
        self.clock: Callable[[], float] = time.time

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def _call(self, call_id: str, now: float) -> CallOutput:
        rec = self.calls.get(call_id)
        if rec is None:
            rec = self.calls[call_id] = CallOutput(now)
            while len(self.calls) > MAX_CALLS:
                self._forget(next(iter(self.calls)))
        return rec

    # -- from workers ---------------------------------------------------------------------

    def receive(self, msg: Any) -> dict[str, Any] | None:
        """A worker's message: keep its lines or failures. Returns what to forward to the call's
        client topic (`msg["to"]`), or None."""
        if not isinstance(msg, dict) or not isinstance(msg.get("call_id"), str):
            return None
        now = self.clock()
        rec = self._call(msg["call_id"], now)
        rec.active = now
        worker = str(msg.get("worker") or "")
        if msg.get("failures"):
            self._keep_failures(rec, msg["failures"], worker, now)
            return None
        lines = msg.get("lines") or []
        rec.lost += int(msg.get("dropped", 0) or 0)
        progress = msg.get("progress") or []
        self._keep_progress(rec, progress, lines, worker, now)
        if not lines:
            to = msg.get("to")
            return {"call_id": msg["call_id"], "worker": worker, "lines": [], "held": rec.held,
                    "progress": progress} if to and progress else None
        rec.batches.append(Batch(rec.seq + 1, worker, lines))
        rec.seq += len(lines)
        rec.count += len(lines)
        self.total += len(lines)
        self._bound(rec)
        to = msg.get("to")
        if not to:
            return None
        allowed = rec.take(len(lines), now)
        rec.held += len(lines) - allowed
        forward = {"call_id": msg["call_id"], "worker": worker, "lines": lines[:allowed], "held": rec.held}
        if progress:
            forward["progress"] = progress
        return forward

    @staticmethod
    def _keep_progress(rec: CallOutput, progress: Any, lines: list[Any], worker: str, now: float) -> None:
        """The latest redrawn line of each input (for the panel); an input's finished line ends it."""
        for line in lines:
            rec.progress.pop(line[0], None)
        for index, stream, text in progress:
            rec.progress.pop(index, None)
            rec.progress[index] = [0, index, stream, now, worker, text]
        while len(rec.progress) > PROGRESS_INPUTS:
            rec.progress.popitem(last=False)

    def _keep_failures(self, rec: CallOutput, rows: Any, worker: str, now: float) -> None:
        for row in rows:
            index, type_name, message, traceback, attempts = row[:5]
            if len(rec.failures) >= MAX_FAILURES and int(index) not in rec.failures:
                rec.failures_dropped += 1
                continue
            rec.failures[int(index)] = [int(index), str(type_name), str(message), str(traceback), worker,
                                        int(attempts), now]

    def _bound(self, rec: CallOutput) -> None:
        if rec.count > MAX_CALL_LINES:
            self.total -= rec.drop_oldest(rec.count - MAX_CALL_LINES)
        for other in self.calls.values():  # oldest call first
            if self.total <= MAX_LINES:
                return
            self.total -= other.drop_oldest(self.total - MAX_LINES)

    def _forget(self, call_id: str) -> None:
        rec = self.calls.pop(call_id, None)
        if rec is not None:
            self.total -= rec.count

    def sweep(self) -> None:
        """Forget the output of calls silent for `keep_for` seconds whose result is not held."""
        now = self.clock()
        keep_for = self.keep_for()
        for call_id, rec in list(self.calls.items()):
            if now - rec.active >= keep_for and not self.still_held(call_id):
                self._forget(call_id)

    # -- requests -------------------------------------------------------------------------

    def read(self, call_id: str = "", after: int = 0, input: int | None = None, since: float | None = None,
             streams: list[str] | None = None, limit: int = READ_LIMIT) -> dict[str, Any]:
        """The `output.read` request: a call's kept lines after sequence number `after` (of input
        `input`, at or after unix time `since`), oldest first, at most `limit` of them."""
        rec = self.calls.get(call_id)
        if rec is None:
            return {"known": False, "lines": [], "next": after, "dropped": 0, "lost": 0, "held": 0}
        out: list[Row] = []
        limit = max(1, min(int(limit), READ_LIMIT))
        last = after
        for row in rec.rows(after):
            last = row[0]
            if input is not None and row[1] != input:
                continue
            if since is not None and row[3] < since:
                continue
            if streams and row[2] not in streams:
                continue
            out.append(row)
            if len(out) >= limit:
                break
        return {"known": True, "lines": out, "next": last, "dropped": rec.dropped, "lost": rec.lost,
                "held": rec.held}

    def failures(self, call_id: str = "") -> dict[str, Any]:
        """The `output.failures` request: a call's failed inputs, by input index."""
        rec = self.calls.get(call_id)
        if rec is None:
            return {"known": False, "failures": [], "dropped": 0}
        rows = [rec.failures[i] for i in sorted(rec.failures)]
        return {"known": True, "failures": rows, "dropped": rec.failures_dropped}

    def summary(self, call_id: str = "", last: int = 20) -> dict[str, Any]:
        """The `output.summary` request: a call's failed inputs (the first 100) and latest
        lines, for the panel's per-call view."""
        rec = self.calls.get(call_id)
        if rec is None:
            return {"failures": [], "lines": [], "held": 0, "progress": []}
        lines: list[Row] = []
        for batch in reversed(rec.batches):
            for i in range(len(batch.lines) - 1, batch.skip - 1, -1):
                if len(lines) >= last:
                    break
                lines.append(batch.row(i))
        lines.reverse()
        return {"failures": [rec.failures[i] for i in sorted(rec.failures)][:100], "lines": lines, "held": rec.held,
                "progress": list(rec.progress.values())}
