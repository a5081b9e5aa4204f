"""How many inputs go into one Dask task, learnt from how long tasks take to compute.

Small first batches make the first result quick; then each batch aims at `target_seconds` of
compute, so per-task overhead (a few ms) stays small next to the work, and big inputs go one
per task (`max_bytes`). A `@batched` function's tasks carry at least `floor` inputs (its
`max_batch_size`): its compute time includes waiting for lists to fill, which says nothing of
how long an input takes, and a task with fewer inputs than a list could never fill one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BatchSizer:
    target_seconds: float = 0.1
    max_batch: int = 16384  # trivial inputs: ~10 ms of work per task, so Dask's per-task cost stays small
    max_bytes: int = 8 * 2**20
    growth: int = 16  # fast inputs reach full batches in a few results; slow ones stay at 1
    size: int = 1
    floor: int = 1
    _seconds_per_input: float | None = None
    _bytes_per_input: float = 0.0

    def next_size(self) -> int:
        return max(self.size, self.floor)

    def observe(self, inputs: int, compute_seconds: float, payload_bytes: int) -> None:
        """Fold in one finished batch: `inputs` took `compute_seconds`; their payload had `payload_bytes`."""
        if inputs <= 0:
            return
        per_input = max(compute_seconds / inputs, 1e-7)
        if self._seconds_per_input is None:
            self._seconds_per_input = per_input
        else:  # smooth, but react quickly to slow inputs
            self._seconds_per_input = max(per_input, 0.7 * self._seconds_per_input + 0.3 * per_input)
        self._bytes_per_input = max(self._bytes_per_input * 0.7, payload_bytes / inputs)
        by_time = self.target_seconds / self._seconds_per_input
        by_bytes = self.max_bytes / max(self._bytes_per_input, 1.0)
        wanted = int(max(1, min(by_time, by_bytes, self.max_batch)))
        self.size = min(wanted, self.size * self.growth) if wanted > self.size else wanted
