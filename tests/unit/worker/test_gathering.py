"""Dynamic batching in one process: inputs from many threads run in shared lists."""

from __future__ import annotations

import threading

import pytest

from nbfan.exception import InvalidError
from nbfan.worker.gathering import Gatherer


def test_inputs_from_many_threads_share_lists_and_get_their_own_outputs() -> None:
    gatherer = Gatherer(lambda xs: [x * 10 for x in xs], max_batch_size=4, wait_ms=5_000, name="times_ten")
    results: dict[int, int] = {}

    def caller(x: int) -> None:
        results[x] = gatherer.call((x,), {})

    threads = [threading.Thread(target=caller, args=(x,)) for x in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {x: x * 10 for x in range(8)}
    assert gatherer.sizes == [4, 4]  # full lists at once: nobody waited the 5 s


def test_a_lone_input_runs_after_wait_ms() -> None:
    gatherer = Gatherer(lambda xs: xs, max_batch_size=64, wait_ms=10, name="same")
    assert gatherer.call(("x",), {}) == "x" and gatherer.sizes == [1]


def test_keyword_arguments_travel_as_lists_too() -> None:
    gatherer = Gatherer(lambda xs, scale: [x * s for x, s in zip(xs, scale, strict=True)], 2, 0, "scaled")
    assert gatherer.call((3,), {"scale": 2}) == 6


def test_a_list_that_fails_fails_each_of_its_inputs() -> None:
    def boom(xs: list[int]) -> list[int]:
        raise ValueError("boom")

    gatherer = Gatherer(boom, 4, 0, "boom")
    with pytest.raises(ValueError, match="boom"):
        gatherer.call((1,), {})


def test_a_wrong_number_of_outputs_is_named() -> None:
    gatherer = Gatherer(lambda xs: xs + xs, 4, 0, "doubled")
    with pytest.raises(InvalidError, match="doubled must return a list with one output per input: it got 1"):
        gatherer.call((1,), {})
