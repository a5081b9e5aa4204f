"""What a user sees of a remote failure: `traceback.format_exception`, as loggers and pytest show it."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import nbfan

NBFAN_DIR = str(Path(nbfan.__file__).resolve().parent)


def assert_reads_like_local(exc: BaseException, *source_lines: str) -> str:
    """The formatted traceback names real files (never "<dynamic-code>"), quotes every given
    source line (the call line here, then the remote user frames, in this order) and, on
    Python >= 3.11, shows none of nbfan's own frames. Returns the text."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    assert "<dynamic-code>" not in text, text
    position = 0
    for line in source_lines:
        found = text.find(line, position)
        assert found >= 0, f"{line!r} not in the traceback (after position {position}):\n{text}"
        position = found + len(line)
    if sys.version_info >= (3, 11):
        assert NBFAN_DIR not in text, f"nbfan's own frames are shown:\n{text}"
    return text
