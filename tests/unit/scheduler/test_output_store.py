"""The plugin's store of calls' output (scheduler/output.py): rate limit of what is forwarded,
bounds (oldest dropped first), reads, failures, and forgetting."""

from __future__ import annotations

from nbfan.scheduler import output as store
from nbfan.scheduler.output import BURST, RATE, Output


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(held: set[str] | None = None) -> tuple[Output, Clock]:
    out = Output(still_held=lambda call_id: call_id in (held or set()), keep_for=lambda: 60.0)
    clock = Clock()
    out.clock = clock
    return out, clock


def message(call_id: str, texts: list[str], to: str | None = "topic", index: int = 0) -> dict[str, object]:
    return {"call_id": call_id, "to": to, "worker": "tcp://w:1", "lines": [[index, "stdout", 1.0, t] for t in texts]}


def test_a_burst_is_forwarded_then_the_rate_applies_and_the_rest_is_counted():
    out, clock = make()
    first = out.receive(message("c", [str(i) for i in range(BURST + 500)]))
    assert first is not None and len(first["lines"]) == BURST and first["held"] == 500
    clock.now += 2.0  # two seconds refill 2 * RATE lines
    later = out.receive(message("c", [str(i) for i in range(5 * RATE)]))
    assert later is not None and len(later["lines"]) == 2 * RATE and later["held"] == 500 + 3 * RATE
    assert len(out.read("c")["lines"]) == BURST + 500 + 5 * RATE  # all kept


def test_forwarded_lines_carry_index_stream_time_text_and_nothing_goes_without_a_topic():
    out, _ = make()
    forward = out.receive(message("c", ["hello"], index=7))
    assert forward == {"call_id": "c", "worker": "tcp://w:1", "lines": [[7, "stdout", 1.0, "hello"]], "held": 0}
    assert out.read("c")["lines"] == [[1, 7, "stdout", 1.0, "tcp://w:1", "hello"]]  # seq, index, stream, time, ...
    assert out.receive(message("d", ["kept only"], to=None)) is None
    assert [row[-1] for row in out.read("d")["lines"]] == ["kept only"]


def test_reads_page_by_sequence_and_filter_by_input_and_time():
    out, _ = make()
    out.receive({"call_id": "c", "to": None, "worker": "w",
                 "lines": [[i % 3, "stdout", float(i), f"line {i}"] for i in range(30)]})
    page = out.read("c", limit=10)
    assert [row[-1] for row in page["lines"]] == [f"line {i}" for i in range(10)]
    rest = out.read("c", after=page["next"])
    assert [row[-1] for row in rest["lines"]] == [f"line {i}" for i in range(10, 30)]
    assert [row[-1] for row in out.read("c", input=1)["lines"]] == [f"line {i}" for i in range(1, 30, 3)]
    assert [row[-1] for row in out.read("c", since=25.0)["lines"]] == [f"line {i}" for i in range(25, 30)]
    assert out.read("unknown")["known"] is False


def test_bounds_drop_the_oldest_lines_first(monkeypatch):
    monkeypatch.setattr(store, "MAX_CALL_LINES", 10)
    monkeypatch.setattr(store, "MAX_LINES", 15)
    out, _ = make()
    out.receive(message("old", [f"old {i}" for i in range(12)], to=None))
    assert [row[-1] for row in out.read("old")["lines"]] == [f"old {i}" for i in range(2, 12)]
    assert out.read("old")["dropped"] == 2
    out.receive(message("new", [f"new {i}" for i in range(8)], to=None))
    assert [row[-1] for row in out.read("old")["lines"]] == [f"old {i}" for i in range(5, 12)]
    assert [row[0] for row in out.read("old", after=7)["lines"]] == list(range(8, 13))  # seq numbers stay
    assert len(out.read("new")["lines"]) == 8
    assert out.total == 15
    assert [row[-1] for row in out.summary("old", last=3)["lines"]] == ["old 9", "old 10", "old 11"]


def test_failures_are_kept_by_input_and_output_goes_when_silent_and_not_held():
    out, clock = make(held={"spawned"})
    for call_id in ("plain", "spawned"):
        out.receive(message(call_id, ["x"], to=None))
        out.receive({"call_id": call_id, "worker": "tcp://w:1",
                     "failures": [[3, "builtins.ValueError", "bad", "Traceback...", 2]]})
    (row,) = out.failures("plain")["failures"]
    assert row[:6] == [3, "builtins.ValueError", "bad", "Traceback...", "tcp://w:1", 2]
    clock.now += 30
    out.sweep()
    assert out.read("plain")["known"]
    clock.now += 31
    out.sweep()
    assert not out.read("plain")["known"] and not out.failures("plain")["known"]
    assert out.read("spawned")["known"]  # its result is still held


def test_progress_is_forwarded_not_kept_and_not_counted_against_the_rate():
    out, _ = make()
    out.receive(message("c", [str(i) for i in range(BURST)]))  # the burst is spent
    bar = {"call_id": "c", "to": "topic", "worker": "tcp://w:1", "lines": [], "progress": [[4, "stderr", " 40%|####"]]}
    forwarded = out.receive(bar)
    assert forwarded is not None and forwarded["progress"] == [[4, "stderr", " 40%|####"]] and forwarded["lines"] == []
    assert len(out.read("c")["lines"]) == BURST  # progress is not stored as lines
    assert [row[1:3] + row[5:] for row in out.summary("c")["progress"]] == [[4, "stderr", " 40%|####"]]
    out.receive(message("c", ["100%|##########"], index=4))  # the bar's finished line ends its progress
    assert out.summary("c")["progress"] == []
    assert out.receive({**bar, "to": None}) is None  # nobody to forward to
