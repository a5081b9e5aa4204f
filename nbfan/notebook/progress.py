"""Fan-out progress under the cell: an ipywidgets bar with done/total, failures, running,
rate, elapsed and ETA. The output also carries text/plain and text/html, rewritten with the
final figures when the call ends, so a saved notebook shows the outcome without widgets."""

from __future__ import annotations

import html
from typing import Any

from ..fanout.progress import Counts, ProgressFactory, set_progress_factory
from .progress_text import describe, summary_line, text_factory

_STYLE = {"done": "success", "failed": "danger", "cancelled": "warning"}
_ICON = {"done": "✔", "failed": "✘", "cancelled": "■"}


class WidgetProgress:
    """Progress of one blocking fan-out, displayed under the running cell."""

    def __init__(self, label: str, call_id: str) -> None:
        import ipywidgets as w
        from IPython.display import display

        self.label = label
        self.call_id = call_id
        self.bar = w.IntProgress(value=0, min=0, max=1, bar_style="info", layout=w.Layout(width="35%"))
        self.title = w.HTML(f"<b>{html.escape(label)}</b>&nbsp;")
        self.stats = w.HTML("starting…")
        self.box = w.HBox([self.title, self.bar, self.stats])
        self.handle = display(self._bundle(Counts(), None), raw=True, display_id=True)

    def _stats_html(self, counts: Counts, state: str | None) -> str:
        d = describe(counts)
        parts = [f"{d['finished']} / {d['total']} inputs"]
        if counts.failed:
            parts.append(f"<span style='color:var(--jp-error-color1,#d32f2f)'>{d['failed']} failed</span>")
        else:
            parts.append("0 failed")
        if state is None:
            parts += [f"{d['running']} running", d["rate"], f"{d['elapsed']} elapsed"]
            if d["eta"]:
                parts.append(f"ETA {d['eta']}")
        else:
            parts += [d["rate"], f"{d['elapsed']} elapsed", f"{_ICON.get(state, '')} {state}"]
        return "&nbsp;" + " · ".join(parts)

    def _bundle(self, counts: Counts, state: str | None) -> dict[str, Any]:
        line = summary_line(self.label, counts, state)
        return {
            "application/vnd.jupyter.widget-view+json": {"version_major": 2, "version_minor": 0, "model_id": self.box.model_id},
            "text/plain": line,
            "text/html": f"<div class='nbfan-progress'><b>{html.escape(self.label)}</b>{self._stats_html(counts, state)}</div>",
        }

    def _set(self, counts: Counts, state: str | None) -> None:
        finished = counts.done + counts.failed
        top = counts.total if counts.total is not None else finished + counts.running
        with self.bar.hold_sync():
            self.bar.max = max(top, 1)
            self.bar.value = min(finished, self.bar.max)
            if state is not None:
                self.bar.bar_style = _STYLE.get(state, "info")
            elif counts.failed:
                self.bar.bar_style = "warning"
        self.stats.value = self._stats_html(counts, state)

    def update(self, counts: Counts) -> None:
        self._set(counts, None)

    def close(self, counts: Counts, state: str) -> None:
        self._set(counts, state)
        self.handle.update(self._bundle(counts, state), raw=True)


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _widgets_available() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def choose_factory() -> ProgressFactory:
    """Widgets inside a kernel that has ipywidgets; the text bar everywhere else."""
    if _in_kernel() and _widgets_available():
        return _widget_or_text
    return text_factory


def _widget_or_text(label: str, call_id: str) -> Any:
    try:
        return WidgetProgress(label, call_id)
    except Exception:  # a frontend without a widget manager must never break a map
        return text_factory(label, call_id)


def install() -> None:
    """Show progress for blocking fan-outs started from this process (the extension calls it)."""
    set_progress_factory(choose_factory())
