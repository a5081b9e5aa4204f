"""Modal names that nbfan maps onto Dask, so `import nbfan as modal` runs Modal scripts:
schedules (`Period`, `Cron`: run by the scheduler plugin for deployed apps), `@concurrent`,
`@batched`, `current_function_call_id()`, `is_local()` and `enable_output()`. See README "Modal
compatibility"."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

from nbfan.exception import InvalidError
from nbfan.scheduler.cron import ScheduleError, parse_cron
from nbfan.worker.gathering import Gatherer, gatherer_for


class Period:
    """Modal's `Period(days=1)`: a deployed function runs every period, the first time one period
    after it was deployed (each redeploy starts the count again). Years and months are calendar
    ones; weeks, days, hours, minutes and seconds add up."""

    def __init__(self, *, years: int = 0, months: int = 0, weeks: float = 0, days: float = 0, hours: float = 0,
                 minutes: float = 0, seconds: float = 0) -> None:
        given = {"years": years, "months": months, "weeks": weeks, "days": days, "hours": hours, "minutes": minutes,
                 "seconds": seconds}
        for name, value in given.items():
            whole = name in ("years", "months")
            if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)) or value < 0:
                raise InvalidError(f"Period({name}={value!r}): give a {'whole ' if whole else ''}number >= 0")
        self.months = 12 * years + months
        self.seconds = float(seconds + 60 * (minutes + 60 * (hours + 24 * (days + 7 * weeks))))
        if self.months == 0 and self.seconds < 1:
            raise InvalidError("a Period shorter than a second: give e.g. Period(minutes=5) or Period(days=1)")
        self.description = f"Period({', '.join(f'{k}={v}' for k, v in given.items() if v)})"

    def spec(self) -> tuple[str, int, float]:
        """What the scheduler keeps of it."""
        return ("period", self.months, self.seconds)

    def __repr__(self) -> str:
        return self.description


class Cron:
    """Modal's `Cron("0 3 * * *", timezone="UTC")`: a deployed function runs at the times the
    five-field cron expression gives (minute hour day-of-month month day-of-week), in `timezone`."""

    def __init__(self, cron_string: str, timezone: str = "UTC") -> None:
        try:
            parse_cron(cron_string, timezone)
        except ScheduleError as exc:
            raise InvalidError(str(exc)) from None
        self.cron_string = cron_string
        self.timezone = timezone

    def spec(self) -> tuple[str, str, str]:
        """What the scheduler keeps of it."""
        return ("cron", self.cron_string, self.timezone)

    def __repr__(self) -> str:
        return f"Cron({self.cron_string!r}" + (f", timezone={self.timezone!r})" if self.timezone != "UTC" else ")")


def concurrent(_f: Any = None, *, max_inputs: int | None = None, target_inputs: int | None = None) -> Any:
    """Modal's `@modal.concurrent(max_inputs=N)`: each worker slot runs up to N inputs of the
    function at once (an `async def` function in one event loop, a plain one in N threads), for
    work that waits (I/O, a model server). `target_inputs` is accepted (Modal's autoscaler hint)."""
    for name, value in (("max_inputs", max_inputs), ("target_inputs", target_inputs)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InvalidError(f"@concurrent({name}={value!r}): give an int >= 1")
    if max_inputs is None:
        raise InvalidError("@concurrent needs max_inputs=N: how many inputs a worker slot runs at once")

    def mark(f: Any) -> Any:
        f.nbfan_concurrent_inputs = max_inputs
        return f

    return mark(_f) if _f is not None else mark


class _Batched:
    """A `@batched` function: callers pass single inputs; on the worker, inputs from every
    caller and task are gathered into lists (`worker/gathering.py`)."""

    _nbfan_method = True  # on an `@app.cls` class, a batched method is one of its methods

    def __init__(self, fn: Callable[..., Any], max_batch_size: int, wait_ms: int) -> None:
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.wait_ms = wait_ms
        functools.update_wrapper(self, fn)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        """On an instance, a batched method: bound like a plain method."""
        if instance is None:
            return self
        return _Batched(functools.partial(self.fn, instance), self.max_batch_size, self.wait_ms)

    def nbfan_gatherer(self) -> Gatherer:
        """The gatherer of the function's inputs in this process (one per function and instance)."""
        fn = self.fn
        key = (id(fn.func), id(fn.args[0])) if isinstance(fn, functools.partial) else (id(fn),)
        name = getattr(fn.func if isinstance(fn, functools.partial) else fn, "__qualname__", "function")
        return gatherer_for(key, fn, self.max_batch_size, self.wait_ms, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.nbfan_gatherer().call(args, kwargs)


def batched(_f: Any = None, *, max_batch_size: int = 1, wait_ms: int = 0) -> Any:
    """Modal's `@modal.batched(max_batch_size=..., wait_ms=...)`: the function takes lists and
    returns a list; callers pass single inputs (`f.remote(x)`, `f.map(xs)`), and each worker
    gathers the inputs it gets, from every caller, into lists of up to `max_batch_size`, waiting
    at most `wait_ms` after the first."""
    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
        raise InvalidError(f"@batched(max_batch_size={max_batch_size!r}): give an int >= 1")
    if isinstance(wait_ms, bool) or not isinstance(wait_ms, int) or wait_ms < 0:
        raise InvalidError(f"@batched(wait_ms={wait_ms!r}): give an int >= 0")

    def wrap(f: Callable[..., Any]) -> Any:
        return _Batched(f, max_batch_size, wait_ms)

    return wrap(_f) if _f is not None else wrap


def current_function_call_id() -> str | None:
    """Inside a function running on the cluster: the id of its call (as `FunctionCall.object_id`
    and `nbfan calls` show it); None elsewhere."""
    from nbfan.worker.task import CURRENT_CALL_ID

    call_id = CURRENT_CALL_ID.get()
    if call_id is not None:
        return call_id
    try:
        from distributed import get_worker

        from nbfan.keys import parse_task_key

        parsed = parse_task_key(get_worker().get_current_task())
        return parsed[0] if parsed else None
    except Exception:
        return None


def current_input_id() -> str | None:
    """Modal's per-input id; nbfan has the call id only, returned here."""
    return current_function_call_id()


def is_local() -> bool:
    """False inside a function running on a worker, True elsewhere."""
    try:
        from distributed import get_worker

        get_worker()
        return False
    except ValueError:
        return True


@contextlib.contextmanager
def enable_output(show_progress: bool = True) -> Iterator[None]:
    """Show map progress bars on stderr inside the block (Modal's `with modal.enable_output():`)."""
    from nbfan.api.terminal_progress import install_terminal_progress
    from nbfan.config import config
    from nbfan.engine import progress

    old_factory, old_flag = progress.progress_factory(), config.progress
    if show_progress:
        if old_factory is None:
            install_terminal_progress()
        config.progress = True
    try:
        yield
    finally:
        progress.set_progress_factory(old_factory)
        config.progress = old_flag
