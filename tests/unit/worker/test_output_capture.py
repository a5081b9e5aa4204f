"""Capturing an input's output on a worker (worker/output.py), in this process: what the
running input's thread prints and logs is its output, cut into lines, each once; other
threads' writes and records go to the real streams."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

from nbfan.worker import output


class Sent(list[dict[str, Any]]):
    """The messages sent, and the real streams behind the proxies."""

    real: tuple[io.StringIO, io.StringIO]


@contextlib.contextmanager
def streams() -> Iterator[Sent]:
    """The messages the outbox sends (instead of a worker's log events), with the streams
    behind the proxies being buffers (set up inside the test: pytest swaps sys.stdout between
    a fixture's set-up and the test)."""
    messages = Sent()
    messages.real = (io.StringIO(), io.StringIO())
    saved = (sys.stdout, sys.stderr, output._installed, output._outbox.sender, output._worker_sender)
    sys.stdout, sys.stderr = messages.real
    output._installed = False
    output._outbox.sender = messages.append
    output._worker_sender = lambda: messages.append  # type: ignore[assignment]
    output.install()
    try:
        yield messages
    finally:
        output._outbox.flush()
        sys.stdout, sys.stderr, output._installed, output._outbox.sender, output._worker_sender = saved
        root = logging.getLogger()
        root.handlers[:] = [h for h in root.handlers if not isinstance(h, output._RootHandler)]


def lines(messages: list[dict[str, Any]]) -> list[tuple[str, int, str, str]]:
    return [(m["call_id"], line[0], line[1], line[3]) for m in messages for line in m.get("lines", [])]


def test_prints_and_root_records_of_the_running_input_are_its_lines_each_once() -> None:
    with streams() as sent:
        with output.capture("call", "topic", True, start=10) as target:
            assert target is not None
            print("one")
            print("two", "parts", file=sys.stderr)
            sys.stdout.write("no newline yet")
            logging.warning("careful %d", 3)
        assert sorted(lines(sent)) == sorted([
            ("call", 10, "stdout", "one"), ("call", 10, "stderr", "two parts"),
            ("call", 10, "stdout", "no newline yet"), ("call", 10, "log", "WARNING:root:careful 3"),
        ])
        assert all(m["to"] == "topic" for m in sent)
        real_out, real_err = sent.real
        assert real_out.getvalue() == "" and real_err.getvalue() == ""


def test_a_stream_handler_on_the_root_logger_does_not_count_a_record_twice() -> None:
    with streams() as sent:
        handler = logging.StreamHandler(sys.stderr)  # made while the proxy is sys.stderr, as basicConfig would
        logging.getLogger().addHandler(handler)
        try:
            with output.capture("call", None, True, start=0):
                logging.error("once")
        finally:
            logging.getLogger().removeHandler(handler)
        assert lines(sent) == [("call", 0, "log", "ERROR:root:once")]


def test_the_input_index_follows_the_runner() -> None:
    with streams() as sent:
        values: list[int] = []
        with output.capture("call", None, True, start=100):
            output.track_position(values.__len__)
            for x in range(3):
                print(f"input {x}")
                values.append(x)
        assert lines(sent) == [("call", 100 + x, "stdout", f"input {x}") for x in range(3)]


def test_other_threads_and_dask_loggers_are_not_the_inputs_output() -> None:
    with streams() as sent:
        started = threading.Event()
        done = threading.Event()

        def other() -> None:
            started.wait()
            print("from another thread")
            logging.warning("another thread's record")
            done.set()

        thread = threading.Thread(target=other)
        thread.start()
        with output.capture("call", None, True, start=0):
            started.set()
            done.wait(10)
            logging.getLogger("distributed.worker").warning("dask's own")
            print("mine")
        thread.join()
        assert lines(sent) == [("call", 0, "stdout", "mine")]
        real_out, _ = sent.real
        assert real_out.getvalue() == "from another thread\n"


def test_two_inputs_in_two_threads_each_get_their_own_lines() -> None:
    with streams() as sent:
        barrier = threading.Barrier(2)

        def run(call_id: str) -> None:
            with output.capture(call_id, None, True, start=0):
                for i in range(50):
                    if i == 25:
                        barrier.wait()
                    print(f"{call_id} {i}")

        threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = lines(sent)
        for name in ("a", "b"):
            assert [text for call, _, _, text in got if call == name] == [f"{name} {i}" for i in range(50)]


def test_capture_off_leaves_writes_to_the_real_stream() -> None:
    with streams() as sent:
        with output.capture("call", None, False) as target:
            assert target is None
            print("plain")
        assert lines(sent) == []
        real_out, _ = sent.real
        assert real_out.getvalue() == "plain\n"


def test_long_lines_are_cut_and_a_flood_is_sent_by_its_own_thread(monkeypatch) -> None:
    with streams() as sent:
        from nbfan.worker import output_lines

        monkeypatch.setattr(output_lines, "SEND_LINES", 5)
        with output.capture("call", None, True, start=0):
            sys.stdout.write("x" * (output.MAX_LINE_CHARS + 10))  # the first line: cut
            for i in range(10):
                print(i)
        got = lines(sent)
        assert got[0][3] == "x" * output.MAX_LINE_CHARS
        assert [text for _, _, _, text in got[1:]] == [str(i) for i in range(1, 10)]  # each line once, in order
        assert sum(len(m["lines"]) for m in sent) == 10 and max(len(m["lines"]) for m in sent) <= 5


def test_a_redrawn_line_is_one_line_and_its_states_go_as_progress() -> None:
    from tqdm import tqdm

    with streams() as sent:
        with output.capture("call", "topic", True, start=3):
            for _ in tqdm(range(50), mininterval=0, ncols=60):  # redraws itself with \r at each step
                output._outbox.flush()  # as the sender thread would, every FLUSH_SECONDS
            print("after the bar")
    shown = lines(sent)
    assert [text for _c, _i, stream, text in shown if stream == "stderr"] == [
        next(text for _c, _i, _s, text in shown if "50/50" in text)
    ]  # the bar is one line: its last state
    assert "\r" not in "".join(text for *_x, text in shown)
    assert shown[-1] == ("call", 3, "stdout", "after the bar")
    drawn = [p for m in sent for p in m.get("progress", [])]
    assert len(drawn) >= 40 and all(index == 3 and stream == "stderr" for index, stream, _text in drawn)
    assert "25/50" in " ".join(text for *_x, text in drawn)  # the states in between were sent as progress
    assert all("\r" not in text and "\n" not in text for *_x, text in drawn)


def test_carriage_returns_keep_what_a_terminal_would_show() -> None:
    target = output.Target("call", None, 0)
    target.piece("stdout", "abc\r")  # the cursor went back: "abc" still shows
    target.write("stdout", "\n")
    target.write("stdout", "x\ry\r\nz\n")  # \r\n is a newline
    target.piece("stdout", "half")
    target.piece("stdout", " line")
    target.end()
    assert [line[3] for line in target.lines] == ["abc", "y", "z", "half line"]
