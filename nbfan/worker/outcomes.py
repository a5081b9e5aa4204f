"""A batch's outcomes in a compact form: the values in input order plus the failures by offset.

A batch of 16k trivial inputs used to travel as 16k `(ok, value)` tuples; unpickling them
and picking the values out cost the caller more than the work itself. `Outcomes` pickles as
one list and one (usually empty) dict, and still reads as a sequence of `(ok, value)` pairs,
so code that indexes or iterates outcomes keeps working.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any


class Outcomes(Sequence):  # type: ignore[type-arg]
    """`values[i]` is input i's result unless `i in failures` (then its Failure)."""

    __slots__ = ("failures", "values")

    def __init__(self, values: list[Any], failures: dict[int, Any] | None = None) -> None:
        self.values = values
        self.failures = failures or {}

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[bool, Any]]) -> Outcomes:
        values: list[Any] = []
        failures: dict[int, Any] = {}
        for index, (ok, value) in enumerate(pairs):
            if ok:
                values.append(value)
            else:
                failures[index] = value
                values.append(None)
        return cls(values, failures)

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index: int) -> tuple[bool, Any]:  # type: ignore[override]
        if index < 0:
            index += len(self.values)
        failure = self.failures.get(index)
        if failure is not None:
            return False, failure
        return True, self.values[index]

    def __iter__(self) -> Iterator[tuple[bool, Any]]:
        if not self.failures:
            return ((True, value) for value in self.values)
        return (self[index] for index in range(len(self.values)))

    def __reduce__(self) -> tuple[Any, ...]:
        return Outcomes, (self.values, self.failures)

    def __repr__(self) -> str:
        return f"<Outcomes {len(self.values)} inputs, {len(self.failures)} failed>"


def ok_values(outcomes: Sequence[tuple[bool, Any]]) -> list[Any] | None:
    """The values of a batch in which every input succeeded (no per-input work), else None."""
    if isinstance(outcomes, Outcomes):
        return outcomes.values if not outcomes.failures else None
    values = [value for ok, value in outcomes if ok]
    return values if len(values) == len(outcomes) else None


def count_failed(outcomes: Sequence[tuple[bool, Any]]) -> int:
    if isinstance(outcomes, Outcomes):
        return len(outcomes.failures)
    return sum(1 for ok, _ in outcomes if not ok)
