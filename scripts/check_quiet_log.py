#!/usr/bin/env python3
"""Fail when a test run's log holds noise that leaked out of the code under test.

    python3 scripts/check_quiet_log.py LOG

`.ci/run` writes `make test`'s output to a log and runs this on it. Noise is what a quiet
program never prints: a traceback, `Exception ignored`, `Task was destroyed`, leaked semaphores,
an ERROR line from distributed or tornado. pytest's own report of a failing test (its FAILURES
and ERRORS sections) is not searched: it shows tracebacks on purpose, and that run fails anyway.
Everything else is: the progress lines, the warnings summary (an `Exception ignored` there is an
unraisable exception pytest caught), and whatever the other steps of `make test` print.
Prints each noisy line with its line number and exits 1; exits 0 on a quiet log.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable

NOISE = (
    re.compile(r"Traceback \(most recent call last\)"),
    re.compile(r"Exception ignored"),
    re.compile(r"Task was destroyed"),
    re.compile(r"leaked semaphore"),
    re.compile(r"\b(distributed|tornado)(\.\w+)* - ERROR\b"),
)
#: pytest's section headers: `==== FAILURES ====`, `____ test_x ____` lines sit inside them.
SECTION = re.compile(r"^=+ (.+?) =+$")
REPORTS = ("FAILURES", "ERRORS")


def noisy_lines(lines: Iterable[str]) -> list[tuple[int, str]]:
    """(line number, line) of every noisy line outside pytest's failure reports."""
    found: list[tuple[int, str]] = []
    in_report = False
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\n")
        header = SECTION.match(line.strip())
        if header:
            in_report = header.group(1) in REPORTS
            continue
        if not in_report and any(pattern.search(line) for pattern in NOISE):
            found.append((number, line))
    return found


def main(argv: list[str]) -> int:
    """Check the log named in argv; the exit status."""
    if len(argv) != 1:
        print("usage: check_quiet_log.py LOG", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8", errors="replace") as log:
        found = noisy_lines(log)
    if not found:
        return 0
    print(f"{argv[0]}: {len(found)} line(s) of leaked noise (outside a failing test's report):", file=sys.stderr)
    for number, line in found:
        print(f"  {number}: {line}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
