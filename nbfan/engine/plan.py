"""Turning one call of a Function into Dask tasks: keys, payloads, resources, results."""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from distributed import Client, Future
from distributed.client import FutureCancelledError
from distributed.scheduler import KilledWorker

from nbfan import compat, compat_logs
from nbfan.cluster.connect import drop_lost_connection
from nbfan.config import config
from nbfan.engine import output
from nbfan.engine.placement import plan_resources, task_concurrency
from nbfan.engine.same_host import sharer
from nbfan.engine.target import CallTarget
from nbfan.exception import ClusterConnectionError, ExecutionError, InputCancellation
from nbfan.keys import new_call_id, parse_task_key, task_key
from nbfan.scheduler.rpc import ensure_scaling, request
from nbfan.worker.gcpause import gc_paused
from nbfan.worker.generator import run_generator
from nbfan.worker.payload import Args, Payload, dumps_function, dumps_inputs, loads
from nbfan.worker.shared import SharedFrame
from nbfan.worker.shared import recycle as recycle_shared
from nbfan.worker.shared import release as release_shared
from nbfan.worker.task import TaskSpec, cancel_running, current_lineage, run_batch

#: the Dask priority of a one-input call's task (.remote, .spawn): above every map's tasks,
#: whose priorities start at 0 and fall as they get tasks (map_loop.MapLoop._priority)
INTERACTIVE_PRIORITY = 1


@dataclass
class Batch:
    """One submitted task: inputs [start, start + count) of a call (kept while it runs, so a
    batch killed with its worker can be re-run one input per task)."""

    future: Future[Any]
    start: int
    count: int
    payload_bytes: int
    inputs: Sequence[Args] = ()
    shared: tuple[str, ...] = ()  # its inputs' shared-memory files: removed when the task is over

    def done_with(self, result: Any = None) -> None:
        """The task is over for the caller (its result is here, or it failed or was cancelled):
        Dask may forget it, and its shared-memory files go, or are kept for the next inputs
        where the worker says it no longer maps them (`result.unmapped`)."""
        self.future.release()
        if self.shared:
            unmapped = [(name, size) for name, size in getattr(result, "unmapped", ()) if name in self.shared]
            recycle_shared(unmapped)
            reused = {name for name, _ in unmapped}
            release_shared([name for name in self.shared if name not in reused])


@dataclass
class CallPlan:
    """Everything needed to submit the tasks of one call (a .remote, a map...)."""

    client: Client
    call_id: str
    fn_blob: bytes
    spec: TaskSpec
    resources: dict[str, float] | None
    inputs_per_list: int = 1  # a @batched function's max_batch_size: its tasks carry at least that many
    snapshot_inputs: bool = True  # copy arrays at submit (see payload.dumps); not where the caller waits
    share: Callable[[memoryview], SharedFrame | None] | None = None  # large buffers via shared memory
    priority: int = 0  # Dask's: higher runs first among the tasks waiting for a slot

    def submit_batch(self, inputs: Sequence[Args], start: int) -> Batch:
        """One task running inputs [start, start + len(inputs)) of a plain function."""
        return self._submit_one(run_batch, inputs, start, priority=self.priority)

    def submit_batches(self, chunks: Sequence[tuple[int, Sequence[Args]]], *, priority: int = 0) -> list[Batch]:
        """One task per (start, inputs) chunk, all in one graph update (one message for the
        scheduler to unpack, however many tasks)."""
        if len(chunks) == 1:  # Client.submit does a little less than a map of one
            start, inputs = chunks[0]
            return [self._submit_one(run_batch, inputs, start, priority=priority)]
        payloads = []
        try:
            for start, inputs in chunks:
                payloads.append(dumps_inputs(inputs, start, snapshot=self.snapshot_inputs, share=self.share))
            count = len(payloads)
            futures = self.client.map(
                run_batch, [self.fn_blob] * count, payloads, [self.spec] * count,
                key=[task_key(self.call_id, start, len(inputs)) for start, inputs in chunks],
                resources=self.resources, pure=False, retries=0, priority=priority,
            )
        except BaseException:
            for payload in payloads:
                release_shared(payload.shared)
            raise
        return [
            Batch(future, start, len(inputs), payload.nbytes, inputs, payload.shared)
            for future, (start, inputs), payload in zip(futures, chunks, payloads, strict=True)
        ]

    def submit_generator(self, inputs: Sequence[Args], start: int, queue_name: str, *, priority: int = 0) -> Batch:
        """One task streaming the yields of a generator function's inputs to `queue_name`."""
        return self._submit_one(run_generator, inputs, start, queue_name, start, priority=priority)

    def _submit_one(self, task: Any, inputs: Sequence[Args], start: int, *extra: Any, priority: int) -> Batch:
        payload = dumps_inputs(inputs, start, snapshot=self.snapshot_inputs, share=self.share)
        try:
            future = self.client.submit(
                task, self.fn_blob, payload, self.spec, *extra, key=task_key(self.call_id, start, len(inputs)),
                resources=self.resources, pure=False, retries=0, priority=priority,
            )
        except BaseException:
            release_shared(payload.shared)
            raise
        return Batch(future, start, len(inputs), payload.nbytes, inputs, payload.shared)


def plan_call(
    function: CallTarget, client: Client, *, stop_on_error: bool = True, call_id: str | None = None,
    snapshot_inputs: bool = True, push_to: str | None = None, share_buffers: bool = False,
) -> CallPlan:
    """Serialize the function once for the call and fix its task settings. `push_to`: the
    topic a one-input call's task pushes its outcome to (engine/pushed.py). `share_buffers`:
    large input buffers go through shared memory where the workers share this host's (only
    where the caller waits for the tasks: it removes the files when they are over)."""
    opts = function.options
    if opts.image is not None and hasattr(opts.image, "check_on_cluster"):
        opts.image.check_on_cluster(client)  # packages the image names, missing on workers: a clear error
    scaling = getattr(opts, "scaling", None)
    if scaling is not None:  # what an autoscaler keeps for it (scheduler/demand.py)
        ensure_scaling(client, function.app_name, function.name, scaling.as_dict())
    spec = TaskSpec(
        call_id=call_id or new_call_id(),
        parents=current_lineage(),  # inside a task: the calls this one is made inside
        timeout=opts.timeout,
        retries=opts.retries,
        stop_on_error=stop_on_error,
        env=function.secret_env(),
        volumes=function.volume_mounts(),
        isolated=config.isolate_all or bool(getattr(opts, "isolated", False)),
        name=function.name,
        push_to=push_to,
        concurrent_inputs=task_concurrency(opts),
        **output.spec_fields(client, bool(getattr(opts, "forward_output", True))),
    )
    return CallPlan(
        client=client,
        call_id=spec.call_id,
        fn_blob=dumps_function(function.raw_f),
        spec=spec,
        resources=plan_resources(function, client),
        # a task carries at least a @batched function's list, and what a @concurrent one runs at once
        inputs_per_list=max(int(getattr(function.raw_f, "max_batch_size", None) or 1), spec.concurrent_inputs),
        snapshot_inputs=snapshot_inputs,
        share=sharer(client) if share_buffers else None,
        # only one-input calls (.remote, .spawn) push their outcome: they are interactive
        priority=INTERACTIVE_PRIORITY if push_to is not None else 0,
    )


def describe_task_error(exc: BaseException, start: int, count: int) -> BaseException:
    """Dask-level failures (a worker died, the task was cancelled) as nbfan errors naming the inputs."""
    where = f"input {start}" if count == 1 else f"inputs {start}..{start + count - 1}"
    if isinstance(exc, KilledWorker):
        return ExecutionError(
            f"{where}: the worker running it died repeatedly ({exc}); Dask gave up after its allowed failures. "
            f"The function may crash its process (segfault, os._exit, out of memory)."
        )
    if isinstance(exc, FutureCancelledError) or type(exc).__name__ == "CancelledError":
        return InputCancellation(f"{where}: cancelled")
    return exc


def batch_outcomes(future: Future[Any], start: int, count: int, timeout: float | None = None) -> list[tuple[bool, Any]]:
    """The (ok, value) outcomes of a finished batch task, or raise what killed the task."""
    return batch_result(future, start, count, timeout)[1]


def batch_result(
    future: Future[Any], start: int, count: int, timeout: float | None = None
) -> tuple[float, list[tuple[bool, Any]]]:
    """(compute seconds, outcomes) of a finished batch task, or raise what killed the task."""
    if future.client.status in ("closing", "closed"):  # closed after it lost its scheduler (or by the user)
        raise ClusterConnectionError(
            f"lost the Dask scheduler while waiting for the call: the client is {future.client.status}. The "
            f"scheduler stopped or the network failed; check the cluster (`nbfan cluster status`) and call again."
        )
    try:
        blob = future.result(timeout=timeout)
    except BaseException as exc:
        # the wait ran out (asyncio's TimeoutError: the builtin since Python 3.11, not on 3.10); a
        # TimeoutError the task raised (a FunctionTimeoutError) is the task's error, below
        if isinstance(exc, asyncio.TimeoutError) and timeout is not None and not future.done():
            raise TimeoutError(f"the call has not finished after {timeout}s") from None
        translated = describe_task_error(exc, start, count)
        if isinstance(translated, InputCancellation) and (
            compat.cancelled_by_lost_connection(exc) or future.client.status != "running"
        ):
            translated = ClusterConnectionError(
                f"lost the Dask scheduler at {future.client.scheduler.address} while waiting for the call (the client "
                f"is {future.client.status}). The scheduler stopped or the network failed; check the cluster "
                f"(`nbfan cluster status`) and call again."
            )
            drop_lost_connection(future.client)
        if translated is exc:
            raise
        raise translated from None
    return decode_outcomes(blob)


def decode_outcomes(blob: bytes | Payload) -> tuple[float, list[tuple[bool, Any]]]:
    """(compute seconds, outcomes) of a batch's result, as run_batch made it (or pushed it)."""
    with gc_paused():  # a batch's results are many small objects: see gcpause
        result: tuple[float, list[tuple[bool, Any]]] = loads(blob)
    return result


_cancelled_here: OrderedDict[str, None] = OrderedDict()  # the calls this process cancelled lately
_cancelled_lock = threading.Lock()  # the scheduler's log filter reads it from the scheduler's thread
_CANCELLED_KEPT = 1000


def _only_cancelled_calls(keys: set[str]) -> bool:
    """Whether every key is a task of a call this process cancelled (its results are moot)."""
    calls = {parsed[0] if parsed is not None else None for parsed in map(parse_task_key, keys)}
    with _cancelled_lock:
        return None not in calls and calls <= _cancelled_here.keys()


# a map left early cancels its tasks while results of the last ones are being fetched: the
# scheduler (in this process for the embedded cluster) would log that it could not gather them
compat_logs.quiet_failed_gathers(_only_cancelled_calls)


def cancel_call(client: Client, call_id: str, futures: Sequence[Future[Any]]) -> None:
    """Cancel a call for real: forget its tasks, and stop the inputs already running on the
    workers (Dask alone would let them run on, holding their threads)."""
    if client.status != "running":  # scheduler lost: it dropped our tasks; waiting on it would hang
        return
    with _cancelled_lock:
        _cancelled_here[call_id] = None
        while len(_cancelled_here) > _CANCELLED_KEPT:
            _cancelled_here.popitem(last=False)
    if futures:
        client.cancel(list(futures), force=True)  # for every holder: the cluster keeps spawned results (retention)
        compat.release_keys_in_order(client, [f.key for f in futures])  # in case the cancel overtook the tasks
    try:  # the calls made inside this one go with it (the scheduler knows them: telemetry)
        children = request(client, "cancel_children", call_id=call_id)
    except Exception:  # no plugin, or the cluster is gone: this call alone
        children = []
    try:
        client.run(cancel_running, call_id, *children, wait=False, callback_timeout=10)  # bounded: never hang
    except Exception:  # the cluster may be gone; nothing left to stop then
        pass
