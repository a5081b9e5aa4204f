"""Progress bars for maps in a terminal (`nbfan run`, `enable_output()`), drawn with rich on
stderr. One rich display is shared by every map running at once (rich allows only one)."""

from __future__ import annotations

import sys
import threading
from typing import Any

from nbfan.engine.progress import Counts, set_progress_factory

_lock = threading.Lock()
_display: Any = None
_open = 0


def _shared_display() -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        # prints during a map appear above the bars, but only when stdout is the terminal too:
        # `nbfan run job.py > out.txt` keeps every print in out.txt
        redirect_stdout=sys.stdout.isatty(),
    )


class RichSink:
    """One map's bar: inputs done (+ failed) of the total, once the total is known."""

    def __init__(self, label: str, call_id: str) -> None:
        global _display, _open
        with _lock:
            if _display is None:
                _display = _shared_display()
                _display.start()
            _open += 1
            self._display = _display
            self._task = _display.add_task(label, total=None, failed=0)

    def update(self, counts: Counts) -> None:
        """Redraw the bar with the map's latest counts."""
        self._display.update(
            self._task, completed=counts.done + counts.failed, total=counts.total, failed=counts.failed
        )

    def close(self, counts: Counts, state: str) -> None:
        """Draw the final counts, with the state unless done, and stop the display after the last map."""
        global _display, _open
        total = counts.total if counts.total is not None else counts.done + counts.failed
        suffix = "" if state == "done" else f" ({state})"
        self._display.update(self._task, completed=counts.done + counts.failed, total=total, failed=counts.failed,
                             description=self._display.tasks[self._task].description + suffix)
        with _lock:
            _open -= 1
            if _open == 0 and _display is not None:
                _display.stop()
                _display = None


def install_terminal_progress() -> None:
    """Show maps' progress on stderr from now on in this process."""
    set_progress_factory(RichSink)
