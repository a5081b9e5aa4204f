"""`Function`: a decorated user function and the ways to call it (.local, .remote, .spawn, .map...)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, cast

from nbfan.api import deployed
from nbfan.api import map_methods as methods
from nbfan.api.calls import FunctionCall, after_spawn, unwrap_outcome
from nbfan.api.options import FunctionOptions, parse_options, parse_scaling
from nbfan.api.web import endpoint_kind, refusal
from nbfan.cluster import get_client
from nbfan.engine import call_events, pushed
from nbfan.engine.aio import aio_method, connected, iterate_in_thread, static_twin, twin, user_iterator
from nbfan.engine.caller_loop import stream_one
from nbfan.engine.plan import plan_call
from nbfan.exception import InvalidError, NotFoundError
from nbfan.scheduler.rpc import request, set_scaling
from nbfan.worker.shared import release as release_shared
from nbfan.worker.waiting import waiting_for_the_cluster

if TYPE_CHECKING:
    from nbfan.api.signatures import (
        ForEachMethod,
        MapMethod,
        RemoteGenMethod,
        SpawnMapMethod,
        StarmapMethod,
    )

P = ParamSpec("P")
R = TypeVar("R")


class Owner(Protocol):
    """What a Function knows of the App it belongs to: its name. (`App` makes Functions; a
    Function does not know the App class.)"""

    @property
    def name(self) -> str | None:
        """The App's name (None for an unnamed App)."""


@dataclass(frozen=True)
class FunctionStats:
    """A function's load now, as Modal's `FunctionStats` (`Function.get_current_stats()`)."""

    backlog: int  # its inputs waiting for a worker slot
    num_total_runners: int  # workers running its inputs
    running_inputs: int = 0  # its inputs running now


class Function(Generic[P, R]):
    """A user function registered on an App. Call it here (`.local`), on the cluster
    (`.remote`, `.spawn`), or over many inputs (`.map`, `.starmap`, `.for_each`, `.spawn_map`)."""

    def __init__(
        self, raw_f: Callable[P, R], options: FunctionOptions, app: Owner | None = None, name: str | None = None
    ):
        if not callable(raw_f):
            raise InvalidError(f"@app.function decorates functions; got {type(raw_f).__name__}")
        self.raw_f = raw_f
        marked = getattr(raw_f, "nbfan_concurrent_inputs", None)  # @nbfan.concurrent(max_inputs=N)
        self.options = options.with_changes(concurrent_inputs=marked) if marked and options.concurrent_inputs is None \
            else options
        self.app = app
        self.name: str = name or cast(str, getattr(raw_f, "__name__", "function"))
        self.is_generator = inspect.isgeneratorfunction(raw_f) or inspect.isasyncgenfunction(raw_f)
        self.__doc__ = raw_f.__doc__
        self.__wrapped__ = raw_f

    @property
    def app_name(self) -> str | None:
        """The name of the function's App; None when it has no App or the App has no name."""
        return self.app.name if self.app is not None else None

    def __repr__(self) -> str:
        where = f"{self.app_name}." if self.app_name else ""
        return f"<nbfan.Function {where}{self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Calling the decorated function directly runs it here, like `.local()`."""
        return self.raw_f(*args, **kwargs)

    def local(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run in this process, as a plain call."""
        return self.raw_f(*args, **kwargs)

    def with_options(self, **options: Any) -> Function[P, R]:
        """A copy of this function with some options changed (validated like the decorator's)."""
        merged = parse_options(**options)
        changes = {k: getattr(merged, k) for k in options if hasattr(merged, k)}
        if "max_containers" in options:
            changes["concurrency_limit"] = merged.concurrency_limit
        return Function(self.raw_f, self.options.with_changes(**changes), self.app, self.name)

    def with_concurrency(self, *, max_inputs: int, target_inputs: int | None = None) -> Function[P, R]:
        """A copy whose worker slots run up to `max_inputs` inputs at once (Modal's
        `Function.with_concurrency`; as `@nbfan.concurrent(max_inputs=)`)."""
        from nbfan.api.modal_names import concurrent

        concurrent(max_inputs=max_inputs, target_inputs=target_inputs)  # checks the values
        return Function(self.raw_f, self.options.with_changes(concurrent_inputs=max_inputs), self.app, self.name)

    def with_batching(self, *, max_batch_size: int, wait_ms: int) -> Function[P, R]:
        """A copy with dynamic batching (Modal's `Function.with_batching`; as `@nbfan.batched`):
        the function takes lists and returns lists; callers pass single inputs."""
        from nbfan.api.modal_names import batched

        inner = getattr(self.raw_f, "fn", self.raw_f) if hasattr(self.raw_f, "nbfan_gatherer") else self.raw_f
        return Function(batched(max_batch_size=max_batch_size, wait_ms=wait_ms)(inner), self.options, self.app,
                        self.name)

    def secret_env(self) -> dict[str, str]:
        """Environment variables the function's image (`Image.env`) and secrets set on the worker."""
        env: dict[str, str] = dict(getattr(self.options.image, "environment", None) or {})
        for secret in self.options.secrets:
            env.update(getattr(secret, "env", {}) or {})
        return env

    def volume_mounts(self) -> dict[str, str]:
        """{mount path: volume folder} the worker links before running (`volumes={"/data": vol}`)."""
        if not self.options.volumes:
            return {}
        from nbfan.objects.volume import volume_mounts

        return volume_mounts(dict(self.options.volumes))

    @static_twin
    def from_name(app_name: str, name: str, *, environment_name: str | None = None,
                  version: int | None = None) -> Function[Any, Any]:
        """A function `nbfan deploy` registered on the cluster, usable from any process connected
        to it (of the app's current version, or of `version`, as `nbfan apps` lists them);
        NotFoundError lists what is deployed when there is no such app, version or function."""
        found = deployed.lookup(app_name, name, version=version)
        if not isinstance(found, Function):
            raise NotFoundError(f"{name!r} of deployed app {app_name!r} is not a function: {type(found).__name__}")
        return found

    lookup = from_name  # Modal's older name

    @twin
    def update_autoscaler(self, *, min_containers: int | None = None, max_containers: int | None = None,
                          buffer_containers: int | None = None, scaledown_window: float | None = None) -> None:
        """Change the function's scaling knobs now (Modal's `Function.update_autoscaler`); a knob
        left out keeps its value. They act where the cluster autoscales (`nbfan cluster up
        --adaptive`, `nbfan.autoscale(cluster)`), held while this process stays connected, and
        `max_containers` caps its later calls."""
        cap = parse_options(max_containers=max_containers).concurrency_limit
        scaling = parse_scaling({"min_containers": min_containers, "buffer_containers": buffer_containers,
                                 "scaledown_window": scaledown_window},
                                cap if cap is not None else self.options.concurrency_limit, base=self.options.scaling)
        changes: dict[str, Any] = {"scaling": scaling}
        if cap is not None:
            changes["concurrency_limit"] = cap
        set_scaling(get_client(), self.app_name, self.name, scaling.as_dict())
        self.options = self.options.with_changes(**changes)

    @twin
    def get_current_stats(self) -> FunctionStats:
        """The function's inputs waiting and running now, from every caller on the cluster, and
        the workers running them (Modal's `Function.get_current_stats`)."""
        stats = request(get_client(), "autoscaler.stats", app=self.app_name, function=self.name)
        return FunctionStats(backlog=int(stats["backlog"]), num_total_runners=int(stats["workers"]),
                             running_inputs=int(stats["running"]))

    def _require_plain(self, method: str, instead: str) -> None:
        if self.is_generator:
            raise InvalidError(
                f"{self.name} is a generator function: .{method}() cannot return its yields; use .{instead}() "
                f"to stream them (or .map() for a flat map over many inputs)"
            )

    def _require_generator(self, method: str) -> None:
        if not self.is_generator:
            raise InvalidError(f"{self.name} is not a generator function: .{method}() streams yields; use .remote()")

    # -- one call -------------------------------------------------------------------------

    def _submit_one(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], kind: str, *, snapshot: bool = True
    ) -> FunctionCall[R]:
        """Submit one call. `snapshot=False` where the caller blocks until the result (its
        arrays are sent before it can change them): they are not copied then."""
        self._require_plain(kind, "remote_gen")
        endpoint = endpoint_kind(self.raw_f)
        if endpoint is not None:  # before anything is submitted
            raise refusal(endpoint, self.name)
        client = get_client()
        push_to = pushed.topic_for(client)  # small outcomes come straight back: no gather
        # where the caller waits (not snapshot), large arrays may go through shared memory:
        # it removes the files when the call is over
        plan = plan_call(self, client, snapshot_inputs=snapshot, push_to=push_to, share_buffers=not snapshot)
        # announce before submitting: the events then travel ahead of the task in the same
        # client stream, so they cannot be lost if this process exits right after the result
        call_events.call_started(client, plan.call_id, self, kind)
        call_events.call_total(client, plan.call_id, 1)
        wait = pushed.expect(plan.call_id) if push_to is not None else None
        batch = plan.submit_batch([(args, kwargs)], 0)
        if wait is not None:
            wait.watch(batch.future)
        return FunctionCall(batch.future, wait, batch.shared)

    async def _spawn_aio(self, *args: P.args, **kwargs: P.kwargs) -> FunctionCall[R]:
        await connected()
        return self.spawn(*args, **kwargs)

    @twin(aio=_spawn_aio)
    def spawn(self, /, *args: P.args, **kwargs: P.kwargs) -> FunctionCall[R]:
        """Start one call on the cluster and return at once with its FunctionCall."""
        call = self._submit_one(args, kwargs, "spawn")
        after_spawn(call)
        return call

    async def _remote_aio(self, *args: P.args, **kwargs: P.kwargs) -> R:
        await connected()
        call = self._submit_one(args, kwargs, "remote")
        try:
            await call._finished()
            return cast(R, unwrap_outcome(pushed.call_outcomes(call._future, call._pushed)))
        except BaseException:
            if not call.done():
                call.cancel()
            raise
        finally:
            pushed.release_when_finished(call._future)

    @twin(aio=_remote_aio)
    def remote(self, /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run once on the cluster and return its result (or raise its exception)."""
        call = self._submit_one(args, kwargs, "remote", snapshot=False)
        try:
            with waiting_for_the_cluster():  # inside a task: leave the worker slot while waiting
                outcomes = pushed.call_outcomes(call._future, call._pushed)
            return cast(R, unwrap_outcome(outcomes))
        except BaseException:
            if not call.done():
                call.cancel()
            raise
        finally:  # a kept traceback (a notebook's last error) must not pin the task on the cluster
            pushed.release_when_finished(call._future)
            release_shared(call._shared)

    def _remote_gen(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Run a generator function once on the cluster, yielding its values as they are produced."""
        self._require_generator("remote_gen")
        return user_iterator(stream_one(self, (args, kwargs)))

    async def _remote_gen_aio(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        self._require_generator("remote_gen")
        await connected()
        async for value in iterate_in_thread(stream_one(self, (args, kwargs))):
            yield value

    if not TYPE_CHECKING:  # typed below
        remote_gen = aio_method(_remote_gen, _remote_gen_aio)

    # -- many calls: the fan-out engine ----------------------------------------------------

    if TYPE_CHECKING:  # what type checkers see of these pairs of a call and its `.aio` twin

        @property
        def remote_gen(self) -> RemoteGenMethod[P, Any]:
            """Stream a generator function's yields."""
        @property
        def map(self) -> MapMethod[R]:
            """Run over many inputs in parallel, results in input order."""
        @property
        def starmap(self) -> StarmapMethod[R]:
            """Run over tuples of positional arguments."""
        @property
        def for_each(self) -> ForEachMethod:
            """Run over many inputs for their side effects."""
        @property
        def spawn_map(self) -> SpawnMapMethod[R]:
            """Start a map that goes on after this process; returns its MapCall."""
    else:
        map = methods.map_method
        starmap = methods.starmap_method
        for_each = methods.for_each_method
        spawn_map = methods.spawn_map_method


Y = TypeVar("Y")


class GeneratorFunction(Function[P, Iterator[Y]]):
    """A generator function registered on an App: `.remote_gen()` streams its yields and
    `.map()` flat-maps them (the same object as a Function; a type of its own so that type
    checkers see yields where a plain function has results)."""

    if TYPE_CHECKING:

        @property
        def remote_gen(self) -> RemoteGenMethod[P, Y]:
            """Stream the yields."""
        @property
        def map(self) -> MapMethod[Y]:  # type: ignore[override]
            """Every yield of every input, flat."""
        @property
        def starmap(self) -> StarmapMethod[Y]:  # type: ignore[override]
            """Every yield of every input, flat."""

