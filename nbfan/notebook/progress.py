"""Fan-out progress under the cell: a live ipywidgets bar with done/total, failures, running,
rate, elapsed and ETA. When the call ends the output is rewritten as a plain HTML bar (and
text) with the final figures and the widgets are closed: a saved notebook shows the outcome
without needing widget state, and a kernel running thousands of maps keeps no widgets alive."""

from __future__ import annotations

import html
from typing import Any

from nbfan.engine.progress import Counts, ProgressFactory, set_progress_factory
from nbfan.notebook.progress_text import describe, summary_line, text_factory

_COLOR = {"done": "#4caf50", "failed": "#e53935", "cancelled": "#fb8c00"}  # ipywidgets' bar_style colours
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
        """The live output: the widget, with a text line for frontends without widgets."""
        return {
            "application/vnd.jupyter.widget-view+json": {
                "version_major": 2,
                "version_minor": 0,
                "model_id": self.box.model_id,
            },
            "text/plain": summary_line(self.label, counts, state),
        }

    def _final_bundle(self, counts: Counts, state: str) -> dict[str, Any]:
        """The output kept in the notebook: the same bar drawn in plain HTML, and text."""
        finished = counts.done + counts.failed
        total = counts.total if counts.total is not None else finished + counts.running
        pct = 100.0 * finished / total if total else 100.0
        bar = (
            "<div style='width:35%;min-width:120px;height:14px;background:#eeeeee;border-radius:2px;overflow:hidden'>"
            f"<div style='width:{pct:.1f}%;height:100%;background:{_COLOR.get(state, '#2196f3')}'></div></div>"
        )
        return {
            "text/plain": summary_line(self.label, counts, state),
            "text/html": (
                "<div class='nbfan-progress' style='display:flex;align-items:center;gap:6px'>"
                f"<b>{html.escape(self.label)}</b>{bar}<span>{self._stats_html(counts, state)}</span></div>"
            ),
        }

    def update(self, counts: Counts) -> None:
        finished = counts.done + counts.failed
        top = counts.total if counts.total is not None else finished + counts.running
        with self.bar.hold_sync():
            self.bar.max = max(top, 1)
            self.bar.value = min(finished, self.bar.max)
            if counts.failed:
                self.bar.bar_style = "warning"
        self.stats.value = self._stats_html(counts, None)

    def close(self, counts: Counts, state: str) -> None:
        self.handle.update(self._final_bundle(counts, state), raw=True)
        for widget in (self.box, self.bar, self.title, self.stats):
            for part in (widget, getattr(widget, "layout", None), getattr(widget, "style", None)):
                if part is not None:
                    part.close()


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
