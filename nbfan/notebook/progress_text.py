"""Fan-out progress as text (tqdm style, on stderr): outside a kernel, or without ipywidgets.
No Jupyter imports, so scripts and the CLI can install it too."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from nbfan.engine.progress import Counts


def _clock(seconds: float) -> str:
    if seconds < 60:
        return f"{max(0.0, seconds):.1f}s"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def describe(counts: Counts, now: float | None = None) -> dict[str, str]:
    """The figures every progress view shows: done/total, failures, running, rate, elapsed, ETA."""
    now = time.monotonic() if now is None else now
    elapsed = max(now - counts.started, 1e-9)
    finished = counts.done + counts.failed
    rate = finished / elapsed
    eta = ""
    if counts.total is not None and rate > 0:
        eta = _clock((counts.total - finished) / rate)
    return {
        "finished": f"{finished:,}",
        "total": f"{counts.total:,}" if counts.total is not None else "?",
        "failed": f"{counts.failed:,}",
        "running": f"{counts.running:,}",
        "rate": f"{rate:,.1f}/s" if rate < 100 else f"{rate:,.0f}/s",
        "elapsed": _clock(elapsed),
        "eta": eta,
    }


def summary_line(label: str, counts: Counts, state: str | None = None) -> str:
    """One line, e.g. `f.map: 100/100 inputs, 0 failed, 2 running, 530/s, 00:03 elapsed, ETA 00:00`."""
    d = describe(counts)
    text = f"{label}: {d['finished']}/{d['total']} inputs, {d['failed']} failed"
    if state is None:
        text += f", {d['running']} running, {d['rate']}, {d['elapsed']} elapsed"
        if d["eta"]:
            text += f", ETA {d['eta']}"
    else:
        text += f", {d['rate']}, {d['elapsed']} elapsed — {state}"
    return text


class TextProgress:
    """A `\\r`-rewritten bar on stderr: `label:  45%|████▌     | 450/1,000 [00:02<00:03, 210/s, 0 failed]`."""

    WIDTH = 20

    def __init__(self, label: str, call_id: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.call_id = call_id
        self.stream = stream or sys.stderr

    def _line(self, counts: Counts) -> str:
        d = describe(counts)
        finished = counts.done + counts.failed
        if counts.total:
            frac = min(1.0, finished / counts.total)
            filled = int(frac * self.WIDTH)
            bar = f"{int(frac * 100):3d}%|{'█' * filled}{' ' * (self.WIDTH - filled)}|"
        else:
            bar = "    |" + " " * self.WIDTH + "|"
        eta = f"<{d['eta']}" if d["eta"] else ""
        return (
            f"{self.label}: {bar} {d['finished']}/{d['total']} "
            f"[{d['elapsed']}{eta}, {d['rate']}, {d['failed']} failed, {d['running']} running]"
        )

    def update(self, counts: Counts) -> None:
        self.stream.write("\r" + self._line(counts))
        self.stream.flush()

    def close(self, counts: Counts, state: str) -> None:
        self.stream.write("\r" + self._line(counts) + f" {state}\n")
        self.stream.flush()


def text_factory(label: str, call_id: str) -> TextProgress:
    return TextProgress(label, call_id)
