"""Remote tracebacks without a cluster: shipping code with its file names and sources, capturing
the user's frames, and rebuilding them as a real traceback on the caller."""

from __future__ import annotations

import linecache
import traceback

from nbfan.worker.tracebacks import (
    RemoteFrame,
    capture_frames,
    pickle_function,
    remote_traceback_object,
    unpickle_function,
)

SOURCE = """\
def helper(v):
    total = v + 1
    return total / 0

def entry(v):
    return helper(v) * 2
"""
FILENAME = "/nowhere/on/this/machine/notebook_cell.py"


def _define() -> dict:
    namespace: dict = {"__name__": "__main__"}
    linecache.cache[FILENAME] = (len(SOURCE), None, SOURCE.splitlines(True), FILENAME)
    exec(compile(SOURCE, FILENAME, "exec"), namespace)
    return namespace


def test_shipped_functions_keep_their_file_names_and_bring_their_sources() -> None:
    entry = _define()["entry"]
    blob = pickle_function(entry)
    del linecache.cache[FILENAME]  # a worker that has never seen the cell
    shipped = unpickle_function(blob)
    assert shipped.__code__.co_filename == FILENAME
    assert shipped.__globals__["helper"].__code__.co_filename == FILENAME  # helpers too
    assert linecache.getline(FILENAME, 3).strip() == "return total / 0"
    try:
        shipped(1)
    except ZeroDivisionError as exc:
        frames = capture_frames(exc.__traceback__)
    names = [(f.name, f.lineno, f.line) for f in frames if f.filename == FILENAME]
    assert names == [("entry", 6, "return helper(v) * 2"), ("helper", 3, "return total / 0")]


def test_rebuilt_traceback_formats_like_a_local_one_without_stray_carets() -> None:
    frames = [
        RemoteFrame(FILENAME, 6, "entry", "return helper(v) * 2", "__main__", 5),
        RemoteFrame(FILENAME, 3, "helper", "return total / 0", "__main__", 1),
    ]
    _define()
    exc = ZeroDivisionError("division by zero")
    text = "".join(traceback.format_exception(type(exc), exc, remote_traceback_object(frames)))
    assert text.splitlines() == [
        "Traceback (most recent call last):",
        f'  File "{FILENAME}", line 6, in entry',
        "    return helper(v) * 2",
        f'  File "{FILENAME}", line 3, in helper',
        "    return total / 0",
        "ZeroDivisionError: division by zero",
    ]


def test_a_file_this_process_cannot_read_shows_the_line_the_worker_read() -> None:
    missing = "/deployed/elsewhere/job.py"
    linecache.cache.pop(missing, None)
    frames = [RemoteFrame(missing, 40, "work", "raise KeyError(key)", "job", 38)]
    exc = KeyError("k")
    text = "".join(traceback.format_exception(type(exc), exc, remote_traceback_object(frames)))
    assert f'File "{missing}", line 40, in work\n    raise KeyError(key)\n' in text
