"""Where the map loop's inputs come from: a lazy iterator (the caller's .map) or the ranges a
spawn_map's coordinator still has to run."""

from __future__ import annotations

import itertools

import pytest

from nbfan.engine.sources import IteratorSource, RangeSource, pending_ranges


def args(i: int) -> tuple[tuple[int], dict]:
    return ((i,), {})


def test_iterator_source_reads_lazily_and_checks_the_first_input_once() -> None:
    seen: list[object] = []
    source = IteratorSource((args(i) for i in itertools.count()), seen.append)  # endless: must stay lazy
    assert source.take(1) == (0, [args(0)])
    assert source.take(3) == (1, [args(1), args(2), args(3)])
    assert seen == [args(0)] and source.taken == 4


def test_iterator_source_ends_and_a_bad_first_input_stops_before_anything() -> None:
    assert IteratorSource(iter([])).take(5) is None

    def refuse(first: object) -> None:
        raise ValueError("bad input 0")

    with pytest.raises(ValueError, match="bad input 0"):
        IteratorSource(iter([args(0)]), refuse).take(1)


def test_pending_ranges_are_the_gaps_between_stored_batches() -> None:
    assert pending_ranges([], 10) == [(0, 10)]
    assert pending_ranges([(0, 4), (6, 2)], 10) == [(4, 6), (8, 10)]
    assert pending_ranges([(6, 4), (0, 6)], 10) == []
    assert pending_ranges([(2, 2)], 3) == [(0, 2)]  # overlapping the end: nothing past the total


def test_range_source_hands_out_only_the_gaps_in_sizes_asked() -> None:
    inputs = [args(i) for i in range(10)]
    source = RangeSource(inputs, [(2, 5), (8, 10)])
    assert source.take(2) == (2, inputs[2:4])
    assert source.take(2) == (4, inputs[4:5])  # a batch never spans a gap
    assert source.take(5) == (8, inputs[8:10])
    assert source.take(5) is None
