"""`nbfan logs CALL_ID`: what a call's inputs printed and logged, kept on the cluster
(`--follow` for more as it comes, `--input N`, `--since 5m`), and `--failed`: its failed inputs
with their remote tracebacks."""

from __future__ import annotations

import argparse
import datetime
import re
import sys
import time
from typing import Any

from nbfan.exception import InvalidError

POLL_SECONDS = 0.5
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """A unix time from `30s`, `5m`, `2h`, `1d` (that long ago), an ISO date-time, or a unix time."""
    now = time.time() if now is None else now
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise InvalidError(
            f"--since {text!r}: give a duration like 30s, 5m, 2h or 1d, an ISO date-time like "
            f"2026-12-04T21:00:00, or a unix time"
        ) from None


def format_line(row: Any) -> str:
    """One kept line ([seq,] index, stream, time, worker, text) as `nbfan logs` prints it."""
    index, stream, when, _worker, text = row[-5:]
    stamp = datetime.datetime.fromtimestamp(when).strftime("%H:%M:%S.%f")[:-3]
    return f"{stamp} [{index}] {stream:<6} {text}"


def format_failure(failure: Any) -> str:
    """One failed input as `nbfan logs --failed` prints it: a header line, then its traceback."""
    header = (f"input {failure.input}: {failure.exc_type}: {failure.message}  "
              f"(worker {failure.worker or '?'}, {failure.attempts} attempt{'s' if failure.attempts != 1 else ''})")
    body = "\n".join("    " + line for line in failure.traceback.rstrip().splitlines())
    return f"{header}\n{body}" if body else header


def _client() -> Any:
    from nbfan.api.session import require_shared_cluster
    from nbfan.cluster import get_client

    require_shared_cluster("nbfan logs")
    return get_client()


def _ended(client: Any, call_id: str) -> bool:
    from nbfan.api.queries import calls_snapshot

    for call in calls_snapshot(client)["calls"]:
        if call["call_id"] == call_id:
            return call["state"] != "running"
    return True


def _logs(args: argparse.Namespace) -> int:
    from nbfan.engine.output import read_failures, read_page

    client = _client()
    if args.failed:
        failures = read_failures(client, args.call_id)
        if not failures:
            print(f"no failed inputs known for call {args.call_id}")
        for failure in failures:
            print(format_failure(failure))
        return 0
    since = parse_since(args.since) if args.since else None
    after = 0
    known = False
    quiet_since = time.monotonic()
    ended_checked = 0.0
    while True:
        page = read_page(client, args.call_id, after=after, input=args.input, since=since)
        known = known or page["known"]
        for row in page["lines"]:
            print(row[-1] if args.raw else format_line(row))
        if page["next"] != after:
            after = page["next"]
            quiet_since = time.monotonic()
            continue
        if not args.follow:
            break
        sys.stdout.flush()
        now = time.monotonic()
        if now - quiet_since > 1.0 and now - ended_checked > 2.0:
            ended_checked = now
            if _ended(client, args.call_id):
                break
        time.sleep(POLL_SECONDS)
    if not known:
        print(f"nbfan: no output kept for call {args.call_id} (it printed nothing, or its output was "
              f"dropped: it is kept as long as the call's results)", file=sys.stderr)
    elif page.get("dropped"):
        print(f"nbfan: {page['dropped']:,} older lines of this call were dropped (more than the cluster keeps)",
              file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("logs", help="what a call's inputs printed and logged; --failed: its failed inputs")
    p.add_argument("call_id", metavar="CALL_ID", help="the call's id (`nbfan calls`, FunctionCall.object_id)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until the call ends")
    p.add_argument("--input", type=int, default=None, metavar="N", help="only the lines of input N")
    p.add_argument("--since", default=None, help="only lines written since: 30s, 5m, 2h, 1d, or an ISO date-time")
    p.add_argument("--failed", action="store_true", help="the failed inputs: error, traceback, worker, attempts")
    p.add_argument("--raw", action="store_true", help="the lines' text only")
    p.set_defaults(handler=_logs)
