"""Client side of `%%remote`: ship the names a cell reads, run it as a real nbfan Function
call (resources, timeout, retries, telemetry, cancellation), stream its output while it
runs, and put the names it assigned back into the notebook namespace."""

from __future__ import annotations

import sys
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, cast

import cloudpickle

from nbfan.api.function import Function
from nbfan.api.options import FunctionOptions
from nbfan.cluster import get_client
from nbfan.engine import call_events
from nbfan.engine.plan import Batch, batch_outcomes, cancel_call, plan_call
from nbfan.exception import FunctionTimeoutError, InvalidError, SerializationError
from nbfan.keys import new_call_id
from nbfan.notebook.cellcode import CellCode, analyze
from nbfan.worker.cell import run_cell

POLL_SECONDS = 0.1


@dataclass
class CellJob:
    """A parsed cell ready to submit: its code, the shipped names, the names to bring back."""

    code: CellCode
    shipped: bytes
    names_back: list[str]
    label: str
    filename: str


def prepare(source: str, namespace: MutableMapping[str, Any], out: list[str] | None, label: str) -> CellJob:
    """Analyse and serialize a cell; every error here is raised before anything is submitted."""
    if not source.strip():
        raise InvalidError("%%remote: the cell is empty; write the code to run on the cluster below the %%remote line")
    filename = f"<{label}>"
    code = analyze(source, filename)
    if out is not None:
        unknown = [n for n in out if n not in code.assigns]
        if unknown:
            raise InvalidError(
                f"%%remote --out {','.join(out)}: the cell never assigns {', '.join(unknown)}; "
                f"--out names variables the cell sets (it assigns: {', '.join(code.assigns) or 'nothing'})"
            )
    values = {name: namespace[name] for name in code.reads if name in namespace}
    return CellJob(code, dumps_namespace(values), list(out) if out is not None else code.assigns, label, filename)


def dumps_namespace(values: dict[str, Any]) -> bytes:
    """Pickle the shipped names, naming the first one that cannot travel."""
    try:
        return cast(bytes, cloudpickle.dumps(values, protocol=5))
    except Exception:
        pass
    for name, value in values.items():
        try:
            cloudpickle.dumps(value, protocol=5)
        except Exception as exc:
            raise SerializationError(
                f"%%remote: the cell uses `{name}` ({type(value).__module__}.{type(value).__qualname__}), which "
                f"cannot be pickled to send it to the cluster ({type(exc).__name__}: {exc}). Create it inside the "
                f"cell instead, or rename the local variable so the cell does not refer to it."
            ) from None
    raise SerializationError("%%remote: the cell's variables could not be pickled")


class CellCall:
    """One submitted cell: its task, output queue and call id."""

    def __init__(self, job: CellJob, options: FunctionOptions, stream: bool) -> None:
        self.job = job
        self.client = get_client()
        # a cell runs in its own process (stoppable for real), and streams its output itself (worker/cell.py)
        isolated = options.with_changes(isolated=True, forward_output=False)
        self.function: Function[Any, Any] = Function(run_cell, isolated, None, name=job.label)
        self.call_id = new_call_id()
        plan = plan_call(self.function, self.client, call_id=self.call_id)
        self.queue_name = f"nbfan-cell-{self.call_id}" if stream else None
        self._queue: Any = None
        if self.queue_name is not None:
            from distributed import Queue

            self._queue = Queue(self.queue_name, client=self.client)
        args = (job.code.source, job.shipped, job.names_back, self.queue_name, job.filename)
        self.batch: Batch = plan.submit_batch([(args, {})], 0)
        call_events.call_started(self.client, self.call_id, self.function, "magic")
        call_events.call_total(self.client, self.call_id, 1)
        self.ended = False

    @property
    def future(self) -> Any:
        return self.batch.future

    def stream_until_done(self, write: Callable[[str, str], None]) -> None:
        """Relay output chunks as they arrive until the task ends (then drain what is left)."""
        assert self._queue is not None, "stream_until_done needs a cell submitted with stream=True"
        while True:
            done = self.future.done()
            # a batch get returns at once (a blocking get that times out logs an error on the scheduler)
            for chunks in self._queue.get(batch=True):
                for stream, text in chunks:
                    write(stream, text)
            if done:
                return
            try:
                self.future.result(timeout=POLL_SECONDS)  # returns early when the cell ends
            except Exception:  # a timeout, or a task error that outcome() reports
                pass

    def outcome(self, timeout: float | None = None) -> dict[str, Any]:
        """The runner's result dict, or raise the cell's exception (remote traceback attached)."""
        ok, value = batch_outcomes(self.future, 0, 1, timeout=timeout)[0]
        if ok:
            self.end("done")
            return cast(dict[str, Any], value)
        self.end("failed")
        raise remote_exception(value, self.job.filename)

    def cancel(self) -> None:
        cancel_call(self.client, self.call_id, [self.future])
        self.end("cancelled")

    def end(self, state: str) -> None:
        if self.ended:
            return
        self.ended = True
        call_events.call_ended(self.client, self.call_id, state)
        if self._queue is not None:
            try:
                self._queue.close()
            except Exception:
                pass


def remote_exception(failure: Any, filename: str) -> BaseException:
    """The cell's exception, shown in notebooks as the remote traceback (IPython's
    `_render_traceback_` protocol) instead of the client-side frames of the magic."""
    exc = failure.to_exception()
    if isinstance(exc, FunctionTimeoutError) and " ran past " in str(exc):  # named after the cell, not run_cell
        exc = FunctionTimeoutError("the %%remote cell" + str(exc)[str(exc).index(" ran past "):])
    if filename in failure.traceback:  # raised by the cell's code: show where
        header = "Remote traceback (from the nbfan worker that ran the %%remote cell):"
        lines = [header, *failure.traceback.rstrip().splitlines()]
    else:  # stopped from outside the cell's code (timeout, cancel): nbfan's frames would only confuse
        lines = [f"{type(exc).__name__}: {exc}"]
    try:
        exc._render_traceback_ = lambda: lines
    except Exception:
        pass
    return cast(BaseException, exc.with_traceback(None))


def write_stream(stream: str, text: str) -> None:
    target = sys.stderr if stream == "stderr" else sys.stdout
    target.write(text)
    target.flush()


class RemoteValue:
    """A last-expression value that could not travel back: shown by its remote repr."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def apply_result(result: dict[str, Any], namespace: MutableMapping[str, Any]) -> Any:
    """Put the returned names into the namespace; return the last expression's value (or None)."""
    for name, reason in result["skipped"].items():
        sys.stderr.write(f"nbfan: `{name}` stayed on the worker: its {reason}\n")
    for name, blob in result["vars"].items():
        try:
            namespace[name] = cloudpickle.loads(blob)
        except Exception as exc:
            sys.stderr.write(f"nbfan: `{name}` came back but cannot be loaded here ({type(exc).__name__}: {exc})\n")
    if result["value"] is not None:
        try:
            return cloudpickle.loads(result["value"])
        except Exception as exc:
            return RemoteValue(f"<value that cannot be loaded here: {type(exc).__name__}: {exc}>")
    if result["value_repr"]:
        return RemoteValue(result["value_repr"])
    return None


def run_blocking(job: CellJob, options: FunctionOptions, namespace: MutableMapping[str, Any]) -> Any:
    """Run the cell, streaming its output; interrupting (KeyboardInterrupt) cancels it on the cluster."""
    call = CellCall(job, options, stream=True)
    try:
        call.stream_until_done(write_stream)
        result = call.outcome()
    except KeyboardInterrupt:
        call.cancel()
        sys.stderr.write("nbfan: interrupted; the remote cell was cancelled on the cluster\n")
        raise
    except BaseException:
        if not call.future.done():
            call.cancel()
        raise
    return apply_result(result, namespace)


class RemoteCell:
    """A cell started with `%%remote --spawn`: `.get()` brings its variables back into the
    notebook (and shows its output); `.cancel()` stops it."""

    def __init__(self, job: CellJob, options: FunctionOptions, namespace: MutableMapping[str, Any]) -> None:
        self._call = CellCall(job, options, stream=False)
        self._namespace = namespace
        self.object_id = self._call.call_id
        self.names = list(job.names_back)
        self._value: Any = None
        self._collected = False

    def __repr__(self) -> str:
        status = "collected" if self._collected else self._call.future.status
        back = ", ".join(self.names) or "nothing"
        return f"<RemoteCell {self.object_id} {status}: {self._call.job.label}; .get() brings back {back}>"

    def done(self) -> bool:
        return cast(bool, self._call.future.done())

    def get(self, timeout: float | None = None) -> Any:
        """Wait for the cell, print its output, put its variables in the namespace, and return
        the value of its last expression. Raises the cell's exception, or TimeoutError."""
        if self._collected:
            return self._value
        try:
            result = self._call.outcome(timeout=timeout)
        except TimeoutError:
            raise TimeoutError(
                f"the remote cell {self.object_id} has not finished after {timeout}s; it is still running"
            ) from None
        for stream, text in result["output"]:
            write_stream(stream, text)
        self._value = apply_result(result, self._namespace)
        self._collected = True
        return self._value

    def cancel(self) -> None:
        """Stop the cell on the cluster (running Python code stops at its next bytecode)."""
        self._call.cancel()
