"""`nbfan logs`' pure parts: --since values and how lines and failures are printed."""

from __future__ import annotations

import datetime

import pytest

from nbfan.cli.logs import format_failure, format_line, parse_since
from nbfan.engine.output import FailedInput
from nbfan.exception import InvalidError


def test_since_takes_durations_iso_times_and_unix_times():
    now = 1_000_000.0
    assert parse_since("30s", now) == now - 30
    assert parse_since("5m", now) == now - 300
    assert parse_since("2h", now) == now - 7200
    assert parse_since("1.5d", now) == now - 1.5 * 86400
    assert parse_since("12345.5", now) == 12345.5
    assert parse_since("2026-12-04T21:00:00", now) == datetime.datetime(2026, 12, 4, 21).timestamp()
    with pytest.raises(InvalidError, match="--since 'yesterday'"):
        parse_since("yesterday", now)


def test_lines_and_failures_are_printed_with_input_stream_worker_and_attempts():
    when = datetime.datetime(2026, 12, 4, 21, 0, 1, 250_000).timestamp()
    assert format_line([7, 3, "stderr", when, "tcp://w:1", "hello"]) == "21:00:01.250 [3] stderr hello"
    failure = FailedInput(4, "builtins.KeyError", "'four'", "Traceback (most recent call last):\nKeyError: 'four'\n",
                          "tcp://w:1", 2)
    assert format_failure(failure).splitlines() == [
        "input 4: builtins.KeyError: 'four'  (worker tcp://w:1, 2 attempts)",
        "    Traceback (most recent call last):",
        "    KeyError: 'four'",
    ]
