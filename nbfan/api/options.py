"""Function options: parsed and validated once, at decoration time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from nbfan.engine.resources import GpuRequest, parse_cpu, parse_gpu, parse_memory, positive_number
from nbfan.exception import InvalidError
from nbfan.worker.retries import Retries

__all__ = ["ACCEPTED_WITHOUT_EFFECT", "KNOWN_OPTIONS", "FunctionOptions", "Retries", "Scaling", "parse_options",
           "parse_scaling"]

def _parse_retries(retries: Any) -> Retries | None:
    if retries is None:
        return None
    if isinstance(retries, Retries):
        return retries
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidError(
            f"invalid retries={retries!r}: give an int >= 0 or nbfan.Retries(max_retries, backoff_coefficient=2.0, "
            f"initial_delay=1.0, max_delay=60.0)"
        )
    return Retries(retries) if retries else None


def _parse_timeout(timeout: Any) -> float | None:
    return positive_number("timeout", timeout, "give seconds as a number greater than 0, e.g. timeout=600")


def _whole_number(name: str, value: Any, least: int, meaning: str) -> int | None:
    """`value` (None stays None) when it is an int >= `least`; else InvalidError naming it."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InvalidError(f"invalid {name}={value!r}: give a whole number >= {least} ({meaning})")
    return value


def _parse_limit(name: str, value: Any) -> int | None:
    return _whole_number(name, value, 1, "how many inputs may run at once")


KNOWN_OPTIONS = frozenset(
    {"gpu", "cpu", "memory", "concurrency_limit", "max_containers", "retries", "timeout", "secrets", "image", "volumes",
     "forward_output", "schedule", "allow_concurrent_inputs", "min_containers", "buffer_containers",
     "scaledown_window", "keep_warm", "container_idle_timeout"}
)
#: Modal options that have no meaning on a Dask cluster: accepted so Modal scripts run unchanged.
ACCEPTED_WITHOUT_EFFECT = frozenset(
    {
        "cloud", "region", "enable_memory_snapshot", "serialized", "mounts", "network_file_systems",
        "proxy", "name", "max_inputs", "block_network", "i6pn",
        "single_use_containers", "ephemeral_disk", "restrict_modal_access", "include_source", "startup_timeout",
    }
)


@dataclass(frozen=True)
class Scaling:
    """A function's autoscaling knobs, as Modal's (acted on where the cluster autoscales:
    `nbfan cluster up --adaptive`, `nbfan.autoscale(cluster)`; scheduler/demand.py)."""

    min_containers: int = 0  # workers kept for it while its app is deployed or a caller is attached
    buffer_containers: int = 0  # workers beyond its backlog while it has inputs
    scaledown_window: float | None = None  # seconds its demand is held after its last input

    def as_dict(self) -> dict[str, Any]:
        """The knobs as the scheduler plugin takes them (`autoscaler.set`, a deployed app's record)."""
        return {"min_containers": self.min_containers, "buffer_containers": self.buffer_containers,
                "scaledown_window": self.scaledown_window}


def _count(name: str, value: Any) -> int | None:
    return _whole_number(name, value, 0, "a number of workers")


def _one_of(new: str, old: str, values: Mapping[str, Any]) -> Any:
    """Modal's option `new`, or its older name `old`; both given must agree."""
    if values.get(new) is not None and values.get(old) is not None and values[new] != values[old]:
        raise InvalidError(f"{new}={values[new]!r} and {old}={values[old]!r} disagree: {old} is the old name "
                           f"of {new}, give one")
    return values[new] if values.get(new) is not None else values.get(old)


def parse_scaling(knobs: Mapping[str, Any], max_containers: int | None = None, base: Scaling = Scaling()) -> Scaling:
    """Check `min_containers` (or `keep_warm`), `buffer_containers` and `scaledown_window` (or
    `container_idle_timeout`) over `base`; InvalidError naming the bad one."""
    minimum = _count("min_containers", _one_of("min_containers", "keep_warm", knobs))
    buffer = _count("buffer_containers", knobs.get("buffer_containers"))
    window = positive_number("scaledown_window", _one_of("scaledown_window", "container_idle_timeout", knobs),
                             "give seconds as a number greater than 0, e.g. scaledown_window=300")
    scaling = Scaling(base.min_containers if minimum is None else minimum,
                      base.buffer_containers if buffer is None else buffer,
                      base.scaledown_window if window is None else window)
    if max_containers is not None and scaling.min_containers > max_containers:
        raise InvalidError(f"min_containers={scaling.min_containers} is above max_containers={max_containers}: "
                           f"keep at most as many workers as the function may use")
    return scaling


@dataclass(frozen=True)
class FunctionOptions:
    """Everything `@app.function(...)` accepts, in parsed form."""

    gpu: tuple[GpuRequest, ...] = ()
    cpu: float | None = None
    memory: int | None = None  # MiB
    concurrency_limit: int | None = None
    retries: Retries | None = None
    timeout: float | None = None
    secrets: tuple[Any, ...] = ()
    image: Any = None
    volumes: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    isolated: bool = False  # each input in a child process even without secrets or timeout (%%remote cells)
    forward_output: bool = True  # what inputs print and log is kept per call and shown to the caller
    schedule: Any = None  # nbfan.Period / nbfan.Cron: the scheduler runs the function while it is deployed
    concurrent_inputs: int | None = None  # inputs a worker slot runs at once (@nbfan.concurrent(max_inputs=N)); None: 1
    scaling: Scaling = Scaling()

    def with_changes(self, **changes: Any) -> FunctionOptions:
        """A copy with some fields replaced (the options are frozen); give parsed values: they are not checked again."""
        return replace(self, **changes)


def _check_shapes(secrets: Any, volumes: Any, forward_output: Any, schedule: Any, extra: Mapping[str, Any]) -> None:
    """The options that are only checked (InvalidError naming the bad one)."""
    if secrets is not None and not isinstance(secrets, (list, tuple)):
        raise InvalidError(f"invalid secrets={secrets!r}: give a list, e.g. secrets=[nbfan.Secret.from_dict({{...}})]")
    if volumes is not None:
        if not isinstance(volumes, Mapping):
            raise InvalidError(
                f'invalid volumes={volumes!r}: give a dict of mount path to Volume, e.g. {{"/data": vol}}'
            )
        for path in volumes:
            if not isinstance(path, str) or not path.startswith("/"):
                raise InvalidError(f"invalid volumes key {path!r}: mount paths must be absolute strings like '/data'")
    if not isinstance(forward_output, bool):
        raise InvalidError(f"invalid forward_output={forward_output!r}: give True or False")
    if extra.get("startup_timeout") is not None:  # acted on by @app.cls
        positive_number("startup_timeout", extra["startup_timeout"], "give seconds as a number greater than 0")
    from nbfan.api.modal_names import Cron, Period

    if schedule is not None and not isinstance(schedule, (Period, Cron)):
        raise InvalidError(f"invalid schedule={schedule!r}: give nbfan.Period(hours=1) or nbfan.Cron('0 3 * * *')")


def parse_options(
    *,
    gpu: Any = None,
    cpu: Any = None,
    memory: Any = None,
    concurrency_limit: Any = None,
    max_containers: Any = None,
    retries: Any = None,
    timeout: Any = None,
    secrets: Sequence[Any] | None = None,
    image: Any = None,
    volumes: Mapping[str, Any] | None = None,
    forward_output: Any = True,
    schedule: Any = None,
    allow_concurrent_inputs: Any = None,
    min_containers: Any = None,
    buffer_containers: Any = None,
    scaledown_window: Any = None,
    keep_warm: Any = None,
    container_idle_timeout: Any = None,
    **extra: Any,
) -> FunctionOptions:
    """Validate `@app.function` keyword options; raise InvalidError naming the bad one."""
    unknown = sorted(set(extra) - ACCEPTED_WITHOUT_EFFECT)
    if unknown:
        raise InvalidError(
            f"unknown option(s) {', '.join(unknown)} for @app.function; valid options are "
            f"{', '.join(sorted(KNOWN_OPTIONS))} (and Modal's {', '.join(sorted(ACCEPTED_WITHOUT_EFFECT))}, "
            f"accepted with no effect)"
        )
    limit = _parse_limit("concurrency_limit", concurrency_limit)
    containers = _parse_limit("max_containers", max_containers)
    if limit is not None and containers is not None and limit != containers:
        raise InvalidError(
            f"concurrency_limit={limit} and max_containers={containers} disagree: they are the same option, give one"
        )
    _check_shapes(secrets, volumes, forward_output, schedule, extra)
    scaling = parse_scaling({"min_containers": min_containers, "keep_warm": keep_warm,
                             "buffer_containers": buffer_containers, "scaledown_window": scaledown_window,
                             "container_idle_timeout": container_idle_timeout},
                            limit if limit is not None else containers)
    return FunctionOptions(
        scaling=scaling,
        forward_output=forward_output,
        schedule=schedule,
        concurrent_inputs=_parse_limit("allow_concurrent_inputs", allow_concurrent_inputs),
        gpu=parse_gpu(gpu),
        cpu=parse_cpu(cpu),
        memory=parse_memory(memory),
        concurrency_limit=limit if limit is not None else containers,
        retries=_parse_retries(retries),
        timeout=_parse_timeout(timeout),
        secrets=tuple(secrets or ()),
        image=image,
        volumes=dict(volumes or {}),
        extra=extra,
    )
