"""Where a map's inputs come from: a lazy iterator (a caller's `.map`) or the ranges of a spawned
map that no stored batch covers yet (its coordinator, resuming). The map loop takes them in
chunks through `InputSource`."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from nbfan.worker.gcpause import gc_paused
from nbfan.worker.payload import Args


class InputSource(Protocol):
    """Hands out the next inputs to submit, with the index of the first."""

    def take(self, size: int) -> tuple[int, Sequence[Args]] | None:
        """Up to `size` inputs (start index, inputs), or None once there are no more."""

    def remaining(self) -> int | None:
        """How many inputs are still to take, None when not known (a lazy iterator)."""


class IteratorSource:
    """Inputs read lazily from an iterator (a `.map` in the caller): memory stays flat however
    long it is. `first_input` checks input 0 before anything is submitted."""

    def __init__(
        self, inputs: Iterator[Args], first_input: Callable[[Args], None] | None = None, total: int | None = None
    ) -> None:
        self._inputs = inputs
        self._first_input = first_input
        self.taken = 0
        self.total = total  # how many inputs there are, where known up front (sized inputs)

    def remaining(self) -> int | None:
        return None if self.total is None else max(0, self.total - self.taken)

    def take(self, size: int) -> tuple[int, Sequence[Args]] | None:
        with gc_paused():  # many small tuples would set off costly collections
            chunk = list(itertools.islice(self._inputs, size))
        if not chunk:
            return None
        if self.taken == 0 and self._first_input is not None:
            self._first_input(chunk[0])
        start, self.taken = self.taken, self.taken + len(chunk)
        return start, chunk


class RangeSource:
    """The inputs of `ranges` ([start, end) pairs, in order) out of a list held in memory (a
    spawn_map's coordinator, which skips what an earlier coordinator already stored)."""

    def __init__(self, inputs: Sequence[Args], ranges: list[tuple[int, int]]) -> None:
        self._inputs = inputs
        self._ranges = list(ranges)

    def take(self, size: int) -> tuple[int, Sequence[Args]] | None:
        while self._ranges and self._ranges[0][0] >= self._ranges[0][1]:
            self._ranges.pop(0)
        if not self._ranges:
            return None
        start, end = self._ranges[0]
        stop = min(end, start + size)
        self._ranges[0] = (stop, end)
        return start, self._inputs[start:stop]

    def remaining(self) -> int | None:
        return sum(max(0, end - start) for start, end in self._ranges)


def pending_ranges(stored: list[tuple[int, int]], total: int) -> list[tuple[int, int]]:
    """The [start, end) input ranges not covered by stored (start, count) batches, in order."""
    gaps: list[tuple[int, int]] = []
    position = 0
    for start, count in sorted(stored):
        if start > position:
            gaps.append((position, start))
        position = max(position, start + count)
    if position < total:
        gaps.append((position, total))
    return gaps
