"""`nbfan calls` (a live table of running and recent calls) and `nbfan cancel ID`, both over the
telemetry query API (`nbfan.api.queries`)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from nbfan.api.queries import as_tree
from nbfan.scheduler.schema import CallsSnapshot

STATE_STYLE = {"running": "cyan", "done": "green", "failed": "red", "cancelled": "yellow"}


def _elapsed(call: dict[str, Any], now: float) -> str:
    seconds = max(0.0, (call.get("ended") or now) - call.get("started", now))
    return f"{seconds:.1f}s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def calls_table(snapshot: CallsSnapshot, limit: int = 50, *, compact: bool = False) -> Any:
    """The snapshot as a rich Table: one row per call, with a progress bar over its inputs
    (`compact`: the columns that fit a narrow terminal)."""
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    now = snapshot.get("time") or time.time()
    columns = ["call", "function", "kind", "caller", "state", "progress", "done/total", "failed", "rate", "elapsed"]
    if compact:
        columns = ["call", "function", "state", "progress", "done/total", "elapsed"]
    failing = any(call.get("failed") for call in snapshot["calls"])
    table = Table(title=f"nbfan calls ({len(snapshot['calls'])})", title_justify="left",
                  caption="failed inputs, with their errors: nbfan logs --failed CALL_ID" if failing else None,
                  caption_justify="left")
    for name in columns:
        table.add_column(name, no_wrap=True, min_width=20 if name == "call" else None,
                         max_width=30 if name == "caller" else None)
    for call in as_tree(snapshot["calls"])[:limit]:
        total = call.get("total")
        finished = call.get("done", 0) + call.get("failed", 0)
        cells = {
            "call": "  " * call["depth"] + ("└ " if call["depth"] else "") + call["call_id"],
            "function": f"{call['app']}.{call['function']}" if call.get("app") else call["function"],
            "kind": call.get("kind", ""),
            "caller": (call.get("caller") or {}).get("label", ""),
            "state": Text(call["state"], style=STATE_STYLE.get(call["state"], "")),
            "progress": ProgressBar(total=float(total) if total else None, completed=finished, width=20,
                                    pulse=total is None and call["state"] == "running"),
            "done/total": f"{finished}/{total if total is not None else '?'}",
            "failed": str(call.get("failed", 0)),
            "rate": f"{call.get('rate', 0.0):.1f}/s",
            "elapsed": _elapsed(call, now),
        }
        table.add_row(*(cells[name] for name in columns))
    return table


def _client() -> Any:
    from nbfan.api.session import require_shared_cluster
    from nbfan.cluster import get_client

    require_shared_cluster("nbfan calls/cancel")
    return get_client()


def _calls(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    from nbfan.api.queries import calls_snapshot

    client = _client()
    console = Console()
    if not console.is_terminal:  # piped or captured: wide enough for whole rows
        console = Console(width=200)
    if args.once or not console.is_terminal:
        snapshot = calls_snapshot(client)
        if not snapshot["calls"]:
            console.print("no calls yet")
            return 0
        console.print(calls_table(snapshot, args.limit))
        return 0
    compact = console.width < 150
    with Live(calls_table(calls_snapshot(client), args.limit, compact=compact), console=console,
              refresh_per_second=4) as live:
        try:
            while True:
                time.sleep(args.interval)
                live.update(calls_table(calls_snapshot(client), args.limit, compact=console.width < 150))
        except KeyboardInterrupt:
            pass
    return 0


def _cancel(args: argparse.Namespace) -> int:
    from nbfan.engine.cancel import cancel_by_id

    if cancel_by_id(_client(), args.call_id):
        print(f"cancelled call {args.call_id}")
    else:
        print(f"call {args.call_id} had already ended; nothing to cancel")
    return 0


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("calls", help="running and recent calls with progress (live until Ctrl-C; --once prints once)")
    p.add_argument("--once", action="store_true", help="print the table once and exit")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between refreshes (default 0.5)")
    p.add_argument("--limit", type=int, default=50, help="rows to show (default 50)")
    p.set_defaults(handler=_calls)
    p = sub.add_parser("cancel", help="cancel a call (or spawned map) by its id, as shown by `nbfan calls`")
    p.add_argument("call_id", metavar="ID")
    p.set_defaults(handler=_cancel)
