"""Concurrency measured from task start/end timestamps (shared by the cap and placement tests)."""

from __future__ import annotations


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end at the same instant as a start comes first)."""
    events = sorted([(end, -1) for _, end in intervals] + [(start, 1) for start, _ in intervals])
    best = running = 0
    for _, delta in events:
        running += delta
        best = max(best, running)
    return best
