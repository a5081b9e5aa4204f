"""Resource specs (`gpu=`, `cpu=`, `memory=`) parsed and validated into Dask task resources.

The resource contract, shared with users' own clusters: a worker with GPUs advertises
`GPU=<n>` and `GPU-<MODEL>=<n>` (MODEL upper-case and short: A100, H100, L40S, T4...);
local clusters nbfan starts also advertise `CPU=<threads>` and `MEMORY=<MiB>`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dask.utils import parse_bytes

from nbfan.exception import InvalidError

GpuSpec = None | bool | int | str | Sequence[str]

_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class GpuRequest:
    """`count` GPUs, of `model` (upper-case short name) or of any model when None."""

    count: int = 1
    model: str | None = None

    def as_resources(self) -> dict[str, float]:
        res: dict[str, float] = {"GPU": float(self.count)}
        if self.model:
            res[f"GPU-{self.model}"] = float(self.count)
        return res

    def __str__(self) -> str:
        return f"{self.model or 'any'}:{self.count}"


def _gpu_error(spec: Any, why: str) -> InvalidError:
    return InvalidError(
        f"invalid gpu={spec!r}: {why}. Use gpu=1 or True (one GPU of any model), an int N, "
        f'"A100", "H100:2" (model and count), "any:2", or a list of such strings as ranked '
        f'fallbacks, e.g. gpu=["H100", "A100:2"]'
    )


def _parse_one_gpu(spec: Any, whole: Any) -> GpuRequest:
    if isinstance(spec, bool):
        return GpuRequest(1)
    if isinstance(spec, int):
        if spec < 1:
            raise _gpu_error(whole, f"the GPU count must be at least 1, got {spec}")
        return GpuRequest(spec)
    if not isinstance(spec, str):
        raise _gpu_error(whole, f"expected a bool, int or str, got {type(spec).__name__}")
    text = spec.strip()
    model, sep, count_text = text.partition(":")
    count = 1
    if sep:
        if not count_text.strip().isdigit():
            raise _gpu_error(whole, f"the count after ':' must be a whole number, got {count_text!r}")
        count = int(count_text)
        if count < 1:
            raise _gpu_error(whole, f"the GPU count must be at least 1, got {count}")
    model = model.strip()
    if not model:
        raise _gpu_error(whole, "the model name is empty")
    if model.lower() == "any":
        return GpuRequest(count)
    if not _MODEL_RE.match(model):
        raise _gpu_error(whole, f"{model!r} is not a GPU model name")
    return GpuRequest(count, model.upper())


def parse_gpu(spec: GpuSpec) -> tuple[GpuRequest, ...]:
    """Parse a `gpu=` spec into ranked alternatives; () means no GPU."""
    if spec is None or spec is False:
        return ()
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise _gpu_error(spec, "the list of fallbacks is empty")
        return tuple(_parse_one_gpu(s, spec) for s in spec)
    return (_parse_one_gpu(spec, spec),)


def positive_number(name: str, value: Any, hint: str) -> float | None:
    """`value` as a float when it is a number > 0 (None stays None); else InvalidError with `hint`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise InvalidError(f"invalid {name}={value!r}: {hint}")
    return float(value)


def parse_cpu(cpu: Any) -> float | None:
    """`cpu=` is a number of cores (float, > 0)."""
    return positive_number("cpu", cpu, "give a number of cores greater than 0, e.g. cpu=2 or cpu=0.5")


def parse_memory(memory: Any) -> int | None:
    """`memory=` is MiB (int) or a size string such as "4GiB"; returns MiB."""
    if memory is None:
        return None
    if isinstance(memory, bool):
        raise InvalidError(f"invalid memory={memory!r}: give MiB as an int (memory=2048) or a size like '4GiB'")
    if isinstance(memory, int):
        mib = memory
    elif isinstance(memory, str):
        try:
            mib = parse_bytes(memory) // 2**20
        except (ValueError, TypeError):
            raise InvalidError(
                f"invalid memory={memory!r}: not a size; use MiB as an int (memory=2048) or a string like '4GiB'"
            ) from None
    else:
        raise InvalidError(
            f"invalid memory={memory!r}: expected MiB as an int or a size string like '4GiB', "
            f"got {type(memory).__name__}"
        )
    if mib <= 0:
        raise InvalidError(f"invalid memory={memory!r}: must be at least 1 MiB")
    return int(mib)
