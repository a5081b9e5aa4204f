"""The code that runs on a worker: one Dask task runs a batch of inputs of one function.

Retries and timeouts are applied per input here, so a batch of many inputs behaves exactly
like that many separate calls. Where an input runs (this thread or a child process) is
`runners.py`'s business; stopping inputs is `stopping.py`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbfan.exception import ExecutionError, InputCancellation
from nbfan.worker import batch_report, isolated, output, process_state
from nbfan.worker.concurrent import run_concurrently
from nbfan.worker.context import CURRENT_CALL_ID, CURRENT_LINEAGE, current_lineage
from nbfan.worker.outcomes import Outcomes
from nbfan.worker.output_lines import task_start
from nbfan.worker.payload import Args, Columns, Failure, Payload, dumps_outcomes, loads
from nbfan.worker.push import push_outcome
from nbfan.worker.retries import Retries
from nbfan.worker.runners import InChild, InThread, load_function
from nbfan.worker.shared import SharedFrame
from nbfan.worker.stopping import (  # noqa: F401  re-exported: where the engine and tests find them
    any_cancelled,
    cancel_running,
    cancellation_deferred,
    is_cancelled,
)

__all__ = ["CURRENT_CALL_ID", "TaskSpec", "cancel_running", "current_lineage", "is_cancelled", "load_function",
           "run_batch"]


@dataclass(frozen=True)
class TaskSpec:
    """Per-call settings every task of the call carries (small; pickled with the task)."""

    call_id: str
    timeout: float | None = None
    retries: Retries | None = None
    stop_on_error: bool = True
    parents: tuple[str, ...] = ()  # the calls this call was made inside, outermost first
    env: dict[str, str] = field(default_factory=dict)
    volumes: dict[str, str] = field(default_factory=dict)  # mount path -> volume folder
    name: str = "the function"  # for messages
    isolated: bool = False  # run in a child process even without env or timeout (%%remote cells)
    push_to: str | None = None  # the event topic of the client waiting for this one-input call (push.py)
    capture_output: bool = False  # what inputs print and log is captured and kept per call (output.py)
    output_to: str | None = None  # the topic of the client shown that output live (None: kept only)
    concurrent_inputs: int = 1  # inputs of the task run at once (@nbfan.concurrent: concurrent.py)

    @property
    def lineage(self) -> tuple[str, ...]:
        return (*self.parents, self.call_id)

    @property
    def in_child(self) -> bool:
        """Inputs run in a child process: their environment must not reach the worker, or they
        must be stoppable for real (a timeout; a cell)."""
        return self.isolated or self.timeout is not None or bool(self.env)


def call_cancelled(spec: TaskSpec) -> bool:
    """Whether the call, or a call it was made inside, was cancelled: a cancelled parent's
    children start no new input."""
    return any_cancelled(spec.lineage)


def runner_for(fn_blob: bytes, spec: TaskSpec) -> InThread | InChild:
    """Where the call's inputs run on this worker."""
    if not spec.in_child:
        return InThread(fn_blob, spec.call_id)
    if not isolated.available():
        raise ExecutionError(
            "this function has secrets, an environment or a timeout, which nbfan enforces by running it in a "
            "child process of the worker: that needs a POSIX worker (Linux or macOS)."
        )
    return InChild(fn_blob, spec.call_id, spec.lineage, spec.env, spec.timeout, spec.name)


def run_input(
    runner: InThread | InChild, args: tuple[Any, ...], kwargs: dict[str, Any], spec: TaskSpec,
    first: tuple[bool, Any] | None = None,
) -> tuple[bool, Any]:
    """One input with the call's retries: (True, result) or (False, Failure). `first`: the
    outcome of its first attempt, when that already ran (`InThread.call_columns`)."""
    attempt = 0
    while True:
        ok, value = first if first is not None else runner.call(args, kwargs)
        first = None
        if ok:
            return ok, value
        if value.exc_type is InputCancellation or call_cancelled(spec):
            return False, Failure.capture(InputCancellation("the call was cancelled"))
        if spec.retries is None or attempt >= spec.retries.max_retries:
            return False, value
        note_retry(spec.call_id)
        time.sleep(spec.retries.delay(attempt))
        attempt += 1


def note_retry(call_id: str) -> None:
    """Hook for telemetry: an input of `call_id` is being retried (reported with its batch)."""
    batch_report.note_retry(call_id)


@contextlib.contextmanager
def call_context(spec: TaskSpec) -> Iterator[None]:
    """While a task's inputs run: the call's volume mounts are in place, and the current call
    and lineage are set (reset when the task ends). Its environment is never set here: inputs
    with one run in a child process that has it (`runners.InChild`). What inputs run here change
    of the process (environment, working directory, sys.path) is put back (`process_state.py`)."""
    if spec.volumes:
        from nbfan.worker.mounts import mount_volumes

        mount_volumes(spec.volumes)
    call_token = CURRENT_CALL_ID.set(spec.call_id)
    lineage_token = CURRENT_LINEAGE.set(spec.lineage)
    try:
        with process_state.kept(not spec.in_child):
            yield
    finally:
        CURRENT_LINEAGE.reset(lineage_token)
        CURRENT_CALL_ID.reset(call_token)


def run_batch(fn_blob: bytes, inputs: Payload, spec: TaskSpec) -> Payload:
    """The Dask task body: run every input of the batch, return all outcomes as one blob.

    With `stop_on_error`, the inputs after a failure are not run (they are cancelled)."""
    started = time.perf_counter()
    with call_context(spec), output.capture(spec.call_id, spec.output_to, spec.capture_output) as captured:
        runner = runner_for(fn_blob, spec)
        values, failures, n_failed, n_skipped = _run_inputs(runner, loads(inputs), spec)
    if n_failed and spec.capture_output:
        report_failures(spec, captured.start if captured is not None else None, failures)
    batch_report.report_batch(spec.call_id, n_failed, n_skipped, batch_report.take_retries(spec.call_id))
    payload = dumps_outcomes(Outcomes(values, failures), time.perf_counter() - started)
    if spec.push_to is not None:
        push_outcome(spec.push_to, spec.call_id, payload)
    # the caller may write its next inputs into the files no array uses now; inputs run in a
    # child process are not reported (whether a child still maps a file is not known here)
    if not spec.in_child:
        unmapped = tuple((f.name, f.nbytes) for f in inputs.frames if isinstance(f, SharedFrame) and f.unmap())
        if unmapped:
            payload = dataclasses.replace(payload, unmapped=unmapped)
    return payload


def report_failures(spec: TaskSpec, start: int | None, failures: dict[int, Failure]) -> None:
    """The failed inputs of a task, for `nbfan logs --failed` (skipped and cancelled ones are not failures)."""
    real = {position: f for position, f in failures.items() if f.exc_type is not InputCancellation}
    output.report_failures(spec.call_id, start, real, 1 + (spec.retries.max_retries if spec.retries else 0))


def _run_concurrently(runner: InThread, inputs: Sequence[Args], spec: TaskSpec
                      ) -> tuple[list[Any], dict[int, Failure], int, int]:
    """A `@concurrent` function's inputs, up to `spec.concurrent_inputs` at once (concurrent.py)."""
    start = task_start() if spec.capture_output else 0

    def capture(position: int) -> Any:
        return output.capture(spec.call_id, spec.output_to, spec.capture_output, start=start + position)

    outcomes = run_concurrently(runner.fn, list(inputs), spec.concurrent_inputs, spec.call_id,
                                lambda: call_cancelled(spec), capture, spec.retries, lambda: note_retry(spec.call_id))
    values: list[Any] = []
    failures: dict[int, Failure] = {}
    n_failed = n_skipped = 0
    for position, (ok, value) in enumerate(outcomes):
        values.append(value if ok else None)
        if not ok:
            failures[position] = value
            if value.exc_type is InputCancellation:
                n_skipped += 1
            else:
                n_failed += 1
    return values, failures, n_failed, n_skipped


def _run_inputs(
    runner: InThread | InChild, inputs: Sequence[Args], spec: TaskSpec
) -> tuple[list[Any], dict[int, Failure], int, int]:
    """(values, failures by position, inputs failed, inputs skipped) of a batch's inputs."""
    values: list[Any] = []  # input order; a failed input's slot holds None and its Failure is in `failures`
    failures: dict[int, Failure] = {}
    failed = False
    n_failed = n_skipped = 0
    if spec.concurrent_inputs > 1 and isinstance(runner, InThread) and len(inputs) > 1:
        return _run_concurrently(runner, inputs, spec)
    gatherer = runner.gatherer() if isinstance(runner, InThread) else None
    if gatherer is not None and isinstance(runner, InThread):  # a @batched function: the inputs join its
        # lists all at once. Not registered for cancels: the thread may run a list of other calls' inputs.
        outcomes = runner.call_gathered(gatherer, inputs)
        for position, (ok, value) in enumerate(outcomes):
            values.append(value if ok else None)
            if not ok:
                failures[position] = value
                n_failed += 1
        return values, failures, n_failed, n_skipped
    try:
        with runner.registered():
            rest: Iterable[Args] = inputs
            first: tuple[bool, Any] | None = None  # the failed first attempt of the next input
            if isinstance(inputs, Columns) and isinstance(runner, InThread) and not call_cancelled(spec):
                values, first = runner.call_columns(inputs)
                rest = itertools.islice(inputs, len(values), None)
            output.track_position(values.__len__)  # lines printed are of input `len(values)` of the batch
            for args, kwargs in rest:
                if (failed and spec.stop_on_error) or call_cancelled(spec):
                    skipped = InputCancellation(
                        "not run: the call was cancelled or an earlier input of the batch failed"
                    )
                    failures[len(values)] = Failure.capture(skipped)
                    values.append(None)
                    n_skipped += 1
                    continue
                ok, value = run_input(runner, args, kwargs, spec, first)
                first = None
                if ok:
                    values.append(value)
                    continue
                failures[len(values)] = value
                values.append(None)
                if value.exc_type is InputCancellation:
                    n_skipped += 1
                else:
                    n_failed += 1
                failed = True
    except InputCancellation:  # the cancel landed between two inputs: the rest do not run
        cancelled = Failure.capture(InputCancellation("the call was cancelled"))
        n_skipped += len(inputs) - len(values)
        while len(values) < len(inputs):
            failures[len(values)] = cancelled
            values.append(None)
    return values, failures, n_failed, n_skipped
