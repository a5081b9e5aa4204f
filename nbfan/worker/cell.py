"""Worker side of `%%remote`: run a cell in a fresh namespace, stream what it prints, and
hand back the names it assigned. Imports no Jupyter machinery (workers need none).

A cell runs in a child process of the worker (`TaskSpec.isolated`), so it can be stopped for
real and the swap of `sys.stdout` / `sys.stderr` that captures its prints is that process's
own: the worker's streams are never touched. Prints are routed through a context variable,
and the cell's chunks are pushed to a Dask Queue (through the worker) every `FLUSH_SECONDS`
while it runs (or collected and returned, for a spawned cell nobody watches).
"""

from __future__ import annotations

import ast
import builtins
import contextvars
import linecache
import sys
import threading
import types
from typing import Any, cast

import cloudpickle

FLUSH_SECONDS = 0.1
_NO_VALUE = "nbfan:no-value"


class _Capture:
    """One cell's output: buffered, and pushed to `queue_name` by a flusher thread."""

    def __init__(self, queue_name: str | None) -> None:
        self.chunks: list[list[str]] = []  # [stream, text]; kept when there is no queue
        self._pending: list[list[str]] = []
        self._lock = threading.Lock()
        self._queue: Any = None  # called with each list of chunks
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if queue_name:
            self._queue = _queue_put(queue_name)
            self._thread = threading.Thread(target=self._flush_loop, name="nbfan-cell-output", daemon=True)
            self._thread.start()

    def write(self, stream: str, text: str) -> None:
        with self._lock:
            target = self._pending if self._queue is not None else self.chunks
            if target and target[-1][0] == stream:
                target[-1][1] += text
            else:
                target.append([stream, text])

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        if pending and self._queue is not None:
            try:
                self._queue(pending)
            except Exception:  # the client went away: nobody is listening any more
                pass

    def _flush_loop(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()


def _queue_put(queue_name: str) -> Any:
    """Push to the cell's queue: through the worker from a child process, directly otherwise."""
    from nbfan.worker import child

    if child.in_child():
        return lambda payload: child.tell_worker("put", queue_name, payload)
    from distributed import Queue, get_client

    return Queue(queue_name, client=get_client()).put


_capture: contextvars.ContextVar[_Capture | None] = contextvars.ContextVar("nbfan_cell_capture", default=None)


class _Router:
    """Stands in for sys.stdout / sys.stderr on the worker: writes from a cell go to its
    capture, everything else to the original stream."""

    def __init__(self, stream: str, original: Any) -> None:
        self._stream = stream
        self._original = original

    def write(self, text: str) -> int:
        capture = _capture.get()
        if capture is None:
            return cast(int, self._original.write(text))
        capture.write(self._stream, str(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if _capture.get() is None:
            self._original.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


_install_lock = threading.Lock()


def _install_routers() -> None:
    with _install_lock:
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router("stdout", sys.stdout)
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router("stderr", sys.stderr)


def _pack(namespace: dict[str, Any], names: list[str]) -> tuple[dict[str, bytes], dict[str, str]]:
    """Pickle each name on its own, so one value that cannot travel never loses the others."""
    packed: dict[str, bytes] = {}
    skipped: dict[str, str] = {}
    for name in names:
        if name not in namespace:
            continue
        value = namespace[name]
        if isinstance(value, types.ModuleType):
            continue  # modules are never shipped back
        try:
            packed[name] = cloudpickle.dumps(value, protocol=5)
        except Exception as exc:
            skipped[name] = f"{type(value).__qualname__} cannot be pickled ({type(exc).__name__}: {exc})"
    return packed, skipped


def run_cell(
    source: str, shipped: bytes, names_back: list[str], queue_name: str | None, filename: str
) -> dict[str, Any]:
    """The task body of a `%%remote` cell (called through nbfan's run_batch, so the call's
    timeout, retries and cancellation apply). Returns the assigned names (pickled one by
    one), those that could not travel, the last expression's value, and the output when
    there was no queue to stream it to."""
    _install_routers()
    capture = _Capture(queue_name)
    token = _capture.set(capture)
    try:
        namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        namespace.update(cloudpickle.loads(shipped))
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        body, last = split_last_expression(source, filename)
        exec(compile(body, filename, "exec"), namespace)
        value: Any = _NO_VALUE
        if last is not None:
            value = eval(compile(last, filename, "eval"), namespace)
    finally:
        _capture.reset(token)
        capture.close()
    packed, skipped = _pack(namespace, names_back)
    value_blob: bytes | None = None
    value_repr = ""
    if value is not _NO_VALUE and value is not None:
        try:
            value_blob = cloudpickle.dumps(value, protocol=5)
        except Exception:
            value_repr = repr(value)
    return {"vars": packed, "skipped": skipped, "value": value_blob, "value_repr": value_repr, "output": capture.chunks}


def split_last_expression(source: str, filename: str) -> tuple[ast.Module, ast.Expression | None]:
    """The cell as statements to exec plus, like IPython, its last expression to evaluate."""
    tree = ast.parse(source, filename=filename)
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not source.rstrip().endswith(";"):
        last = tree.body.pop()
        return tree, ast.Expression(last.value)  # type: ignore[attr-defined]
    return tree, None
