"""A task's batch run on the worker side (`run_batch`), without a cluster: batches of inputs
that share their shape travel as columns and run in a tight loop, yet each input runs exactly
once (its retries apart), in order, with the same failure semantics as one call per input."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import pytest

from nbfan.exception import InputCancellation
from nbfan.worker.payload import Columns, dumps_function, dumps_inputs, loads
from nbfan.worker.retries import Retries
from nbfan.worker.task import TaskSpec, run_batch

#: Each run appends the inputs it ran here: the function travels by value (a copy of this
#: module's globals goes with it), so it records to a file rather than to a list.
LOG = Path(tempfile.mkdtemp()) / "calls"


def _note(x: int) -> None:
    with open(LOG, "a") as f:
        f.write(f"{x}\n")


def calls() -> list[int]:
    return [int(line) for line in LOG.read_text().split()] if LOG.exists() else []


def record(x: int, y: int = 0, *, scale: int = 1) -> int:
    _note(x)
    if x < 0:
        raise ValueError(f"negative: {x}")
    return (x + y) * scale


async def record_async(x: int) -> int:
    _note(x)
    await asyncio.sleep(0)
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x * 10


def run(fn: Any, inputs: list[tuple[tuple[Any, ...], dict[str, Any]]], **spec: Any) -> list[tuple[bool, Any]]:
    LOG.unlink(missing_ok=True)
    _elapsed, outcomes = loads(run_batch(dumps_function(fn), dumps_inputs(inputs), TaskSpec(call_id="c1", **spec)))
    return list(outcomes)


def test_inputs_of_one_shape_travel_as_columns_and_others_as_pairs() -> None:
    kwargs = {"scale": 2}
    assert isinstance(loads(dumps_inputs([((i, i), kwargs) for i in range(3)])), Columns)
    assert isinstance(loads(dumps_inputs([((i,), {}) for i in range(3)])), Columns)  # equal empty kwargs
    assert not isinstance(loads(dumps_inputs([((1,), {}), ((1, 2), {})])), Columns)
    assert not isinstance(loads(dumps_inputs([((1,), {"scale": 2}), ((2,), {"scale": 3})])), Columns)


@pytest.mark.parametrize("width", [1, 2])
def test_a_columnar_batch_gives_every_result_in_order(width: int) -> None:
    kwargs = {"scale": 3} if width == 2 else {}
    inputs = [((i,) * width, kwargs) for i in range(100)]
    outcomes = run(record, inputs)
    factor = 3 * 2 if width == 2 else 1
    assert outcomes == [(True, i * factor) for i in range(100)]
    assert calls() == list(range(100))  # each input ran once, in order


def test_a_failing_input_runs_once_and_stops_the_rest_of_its_batch() -> None:
    outcomes = run(record, [((x,), {}) for x in (1, 2, -3, 4, 5)])
    assert [ok for ok, _ in outcomes] == [True, True, False, False, False]
    assert outcomes[2][1].exc_type is ValueError
    assert all(value.exc_type is InputCancellation for _, value in outcomes[3:])  # not run
    assert calls() == [1, 2, -3]


def test_with_return_exceptions_the_inputs_after_a_failure_still_run() -> None:
    outcomes = run(record, [((x,), {}) for x in (1, -2, 3)], stop_on_error=False)
    assert [ok for ok, _ in outcomes] == [True, False, True] and outcomes[2] == (True, 3)
    assert calls() == [1, -2, 3]


def test_a_failing_input_gets_exactly_its_retries() -> None:
    outcomes = run(record, [((x,), {}) for x in (1, -2, 3)], retries=Retries(2, initial_delay=0.0), stop_on_error=False)
    assert [ok for ok, _ in outcomes] == [True, False, True]
    assert calls() == [1, -2, -2, -2, 3]  # first attempt in the tight loop, then its 2 retries


def test_an_async_function_in_a_columnar_batch_runs_each_input_once() -> None:
    outcomes = run(record_async, [((x,), {}) for x in (1, 2, -3)], stop_on_error=False)
    assert outcomes[:2] == [(True, 10), (True, 20)] and outcomes[2][1].exc_type is ValueError
    assert calls() == [1, 2, -3]
