"""Progress as text (notebook/progress_text.py), what scripts and kernels without widgets show."""

from __future__ import annotations

import io

from nbfan.engine.progress import Counts
from nbfan.notebook.progress_text import TextProgress, describe, summary_line


def test_the_figures_every_view_shows() -> None:
    counts = Counts(done=450, failed=50, running=2, total=1000, started=100.0)
    figures = describe(counts, now=110.0)
    assert figures == {"finished": "500", "total": "1,000", "failed": "50", "running": "2", "rate": "50.0/s",
                       "elapsed": "10.0s", "eta": "10.0s"}
    assert describe(Counts(done=1, started=0.0), now=1.0)["total"] == "?"


def test_a_summary_line_and_a_bar_that_redraws_itself() -> None:
    counts = Counts(done=3, total=3)
    assert summary_line("f.map", counts, "done").startswith("f.map: 3/3 inputs, 0 failed, ")
    stream = io.StringIO()
    bar = TextProgress("f.map", "abc", stream=stream)
    bar.update(Counts(done=1, total=4))
    bar.close(Counts(done=4, total=4), "done")
    text = stream.getvalue()
    assert "\r" in text and text.endswith("\n") and "4/4" in text
