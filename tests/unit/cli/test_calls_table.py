"""`nbfan calls`'s table (cli/calls.py): rows in tree order, and where to read failures."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from nbfan.cli.calls import calls_table


def call(call_id: str, **fields: Any) -> dict[str, Any]:
    return {"call_id": call_id, "parent": None, "function": "f", "app": None, "kind": "map",
            "caller": {"label": "job.py"}, "state": "running", "total": 10, "done": 0, "failed": 0, "running": 0,
            "retried": 0, "per_worker": {}, "started": 0.0, "ended": None, "rate": 0.0, **fields}


def render(calls: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    Console(file=out, width=200).print(calls_table({"version": 1, "time": 10.0, "calls": calls}))  # type: ignore[typeddict-item]
    return out.getvalue()


def test_a_child_sits_under_its_parent_and_failures_say_where_to_read_them() -> None:
    text = render([call("child", parent="root", function="g"), call("root", failed=2, state="failed")])
    lines = text.splitlines()
    root = next(i for i, line in enumerate(lines) if " root " in line)
    assert "└ child" in lines[root + 1]
    assert "nbfan logs --failed CALL_ID" in text
    assert "nbfan logs --failed" not in render([call("fine", done=10, state="done")])
