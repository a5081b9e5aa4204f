"""Remote tracebacks that read like local ones.

Three steps, one per place the code runs:

1. **Caller, shipping a function** (`pickle_function`): code objects travel with their real
   `co_filename` (cloudpickle >= 3.1 rewrites it to "<dynamic-code>"), and the source text of
   every file they come from travels beside them (a notebook cell's text lives only in the
   kernel's `linecache`; a script may not exist on the workers).
2. **Worker, capturing a failure** (`capture_frames`): the user's frames (nbfan's task wrapper
   left out) as (file, line number, function, source line, module), read through `linecache`,
   which `unpickle_function` seeded with the shipped sources.
3. **Caller, raising it** (`remote_traceback_object`, `hide_nbfan_frames`): the frames become a
   real traceback (`types.TracebackType`), so `traceback.format_exception`, loggers, pytest and
   IPython (which names notebook files `Cell In[3]`) all show them with their source lines;
   the public method that raises strips nbfan's own local frames and re-raises bare, so the
   user sees their call line, then the remote user frames (Python >= 3.11: a bare `raise`
   keeps the traceback we set; 3.10 shows nbfan's frames too).

Set NBFAN_TRACEBACK=full to keep nbfan's frames (for debugging nbfan itself).
"""

from __future__ import annotations

import io
import linecache
import marshal
import os
import traceback
import types
from collections import ChainMap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import cloudpickle

_NBFAN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def is_nbfan_file(filename: str) -> bool:
    """Whether a frame's file is part of nbfan itself (hidden from users' tracebacks)."""
    return filename.startswith(_NBFAN_DIR)


# -- 1. shipping functions with their file names and sources ----------------------------------


def _load_code(data: bytes) -> types.CodeType:
    code = marshal.loads(data)
    assert isinstance(code, types.CodeType)
    return code


class _SourcePickler(cloudpickle.Pickler):  # type: ignore[misc]  # cloudpickle ships no types: Pickler is Any
    """cloudpickle, except that code objects keep `co_filename` (marshal keeps everything a
    .pyc keeps) and the files they come from are noted, to ship their sources."""

    def __init__(self, file: io.BytesIO) -> None:
        self.filenames: set[str] = set()
        # set before the pickler initialises: it reads its dispatch table then
        self.dispatch_table = ChainMap({types.CodeType: self._reduce_code}, cloudpickle.Pickler.dispatch_table)
        super().__init__(file, protocol=5)

    def _reduce_code(self, code: types.CodeType) -> tuple[Callable[[bytes], types.CodeType], tuple[bytes]]:
        self.filenames.add(code.co_filename)
        return _load_code, (marshal.dumps(code),)


def pickle_function(fn: Any) -> bytes:
    """`fn` pickled by cloudpickle with real file names, plus the sources of those files."""
    buffer = io.BytesIO()
    pickler = _SourcePickler(buffer)
    pickler.dump(fn)
    sources: dict[str, str] = {}
    for filename in pickler.filenames:
        lines = linecache.getlines(filename)
        if lines and not is_nbfan_file(filename):
            sources[filename] = "".join(lines)
    return cast(bytes, cloudpickle.dumps((buffer.getvalue(), sources), protocol=5))


#: Sources that arrived with functions, by file name (so failures can quote them).
_shipped_sources: dict[str, str] = {}


def unpickle_function(blob: bytes) -> Any:
    """The function of a `pickle_function` blob; its sources go into this process's linecache
    (a file that exists here with other contents is left alone)."""
    fn_bytes, sources = cloudpickle.loads(blob)
    for filename, text in sources.items():
        _shipped_sources[filename] = text
        if not os.path.isfile(filename) or linecache.getlines(filename) != text.splitlines(True):
            lines = text.splitlines(True)
            linecache.cache[filename] = (len(text), None, lines, filename)
    return cloudpickle.loads(fn_bytes)


# -- 2. capturing the user's frames on the worker -----------------------------------------------


@dataclass(frozen=True)
class RemoteFrame:
    """One frame of a remote traceback."""

    filename: str
    lineno: int
    name: str
    line: str  # the source line, stripped ("" when unknown)
    module: str
    firstlineno: int = 1  # where the function starts (IPython shows the lines around it)


def capture_frames(tb: types.TracebackType | None) -> list[RemoteFrame]:
    """The frames of `tb` that are not nbfan's, outermost first."""
    frames: list[RemoteFrame] = []
    while tb is not None:
        code = tb.tb_frame.f_code
        if not is_nbfan_file(code.co_filename):
            lineno = tb.tb_lineno or 0
            line = linecache.getline(code.co_filename, lineno, tb.tb_frame.f_globals).strip()
            module = str(tb.tb_frame.f_globals.get("__name__", "__main__"))
            frames.append(RemoteFrame(code.co_filename, lineno, code.co_name, line, module, code.co_firstlineno))
        tb = tb.tb_next
    return frames


def format_remote(frames: list[RemoteFrame], exc: BaseException) -> str:
    """The traceback text of a remote failure (what `exc.remote_traceback` holds)."""
    summary = traceback.StackSummary.from_list(
        [traceback.FrameSummary(f.filename, f.lineno, f.name, line=f.line) for f in frames]
    )
    head = "Traceback (most recent call last):\n" if frames else ""
    return head + "".join(summary.format()) + "".join(traceback.format_exception_only(type(exc), exc))


# -- 3. raising it on the caller --------------------------------------------------------------


def _ensure_line(frame: RemoteFrame) -> str:
    """The frame's full source line from this process's linecache; when this process cannot
    read the file (a function deployed from another machine), the line the worker read."""
    line = linecache.getline(frame.filename, frame.lineno)
    if line.strip() or not frame.line:
        return line.rstrip("\n")
    entry = linecache.cache.get(frame.filename)
    lines = list(entry[2]) if entry is not None and len(entry) == 4 else []
    lines += ["\n"] * max(0, frame.lineno - len(lines))
    lines[frame.lineno - 1] = frame.line + "\n"
    linecache.cache[frame.filename] = (sum(map(len, lines)), None, lines, frame.filename)
    return frame.line


def _frame_traceback(frame: RemoteFrame, tb_next: types.TracebackType | None) -> types.TracebackType:
    """A real traceback entry for `frame`: a frame made by running code compiled at its file and
    line, which raises at once. The raising expression spans exactly the source line's text, so
    Python draws no carets under a part of it."""
    line = _ensure_line(frame)
    text = line.strip()
    indent = len(line) - len(line.lstrip())
    # a name as long as the line's text, starting where it starts (a parenthesis stands in for
    # the indentation): its NameError spans the whole line
    name = "_" * max(len(text), 1)
    statement = name if indent == 0 else "(" + " " * (indent - 1) + name + ")"
    first = min(max(frame.firstlineno, 1), max(frame.lineno, 1))
    code = compile("\n" * (max(frame.lineno, 1) - first) + statement, frame.filename, "exec")
    code = code.replace(co_name=frame.name, co_firstlineno=first)  # line numbers count from here
    if hasattr(code, "co_qualname"):
        code = code.replace(co_qualname=frame.name)
    try:
        exec(code, {"__builtins__": {}, "__name__": frame.module, "__file__": frame.filename})
    except NameError as made:
        made_tb = made.__traceback__
        assert made_tb is not None and made_tb.tb_next is not None
        inner = made_tb.tb_next
        return types.TracebackType(tb_next, inner.tb_frame, inner.tb_lasti, frame.lineno)
    raise AssertionError("unreachable: the compiled line always raises NameError")


def remote_traceback_object(frames: list[RemoteFrame]) -> types.TracebackType | None:
    """Real traceback entries for remote frames, outermost first."""
    tb: types.TracebackType | None = None
    for frame in reversed(frames):
        tb = _frame_traceback(frame, tb)
    return tb


def hide_nbfan_frames(exc: BaseException) -> None:
    """Drop nbfan's own entries from the traceback of an exception nbfan raises to the user
    (a remote failure or an nbfan error), so their call line leads straight to the cause.
    Call it in an `except` block that then re-raises with a bare `raise`."""
    if os.environ.get("NBFAN_TRACEBACK", "").strip().lower() == "full":
        return
    from nbfan.exception import Error

    if not (isinstance(exc, Error) or hasattr(exc, "remote_traceback")):
        return  # anything else may be a bug in nbfan: keep the whole story
    kept: list[types.TracebackType] = []
    tb = exc.__traceback__
    while tb is not None:
        if not is_nbfan_file(tb.tb_frame.f_code.co_filename):
            kept.append(tb)
        tb = tb.tb_next
    for current, following in zip(kept, [*kept[1:], None], strict=False):  # nothing to link when none is kept
        current.tb_next = following
    exc.__traceback__ = kept[0] if kept else None
