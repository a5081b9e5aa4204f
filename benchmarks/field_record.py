"""Figures a benchmark hands to `make bench-peers` (peers_field.py): when NBFAN_BENCH_JSON names a
file, `record(row, ...)` adds one row to it; otherwise it does nothing (the benchmark only prints)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def record(row: str, **figures: Any) -> None:
    """Add `figures` under `row` to the file NBFAN_BENCH_JSON names, if any."""
    path = os.environ.get("NBFAN_BENCH_JSON")
    if not path:
        return
    file = Path(path)
    rows = json.loads(file.read_text()) if file.exists() else {}
    rows[row] = figures
    file.write_text(json.dumps(rows))
