"""How many inputs go into one Dask task, learnt from how long tasks take to compute.

Small first batches make the first result quick; then each batch aims at `target_seconds` of
compute, so per-task overhead (a few ms) stays small next to the work, and big inputs go one
per task (`max_bytes`). A `@batched` function's tasks carry at least `floor` inputs (its
`max_batch_size`): its compute time includes waiting for lists to fill, which says nothing of
how long an input takes, and a task with fewer inputs than a list could never fill one.

While the sizes still ramp up (`ramping`), the map loop keeps fewer tasks in flight: a task
costs the scheduler and the caller about a millisecond whatever its size, and a window of
tasks of one input each is mostly that cost.

Wide clusters (`slots`: the worker threads that can run the function) get longer batches:
a task costs the scheduler about a millisecond, so 100 slots each ending a 0.1 s batch would
be ~1,000 tasks a second, more than a scheduler on a small machine sends. The target grows
with the slots (`target_for`), so that a slot frees up about every `target_seconds / 10`
seconds whatever the width (what an interactive call waits for a slot). And a batch never
takes more than its share of the inputs still to submit (`next_size(remaining)`), so the last
inputs of a map are spread over every slot instead of queued on a few; but it is not cut below
`min_task_seconds` of compute: a shorter task costs more than it spreads, and halving the
rest of a map of trivial inputs down to single inputs would add a round trip for each halving."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

#: slots per `target_seconds` of batch: up to this many slots a batch aims at `target_seconds`
SLOTS_PER_TARGET = 10


def target_for(slots: int, seconds: float = 0.1) -> float:
    """Compute seconds a batch aims at on a cluster of `slots` slots."""
    return seconds * max(1.0, slots / SLOTS_PER_TARGET)


@dataclass
class BatchSizer:
    target_seconds: float = 0.1
    max_batch: int = 16384  # trivial inputs: ~10 ms of work per task, so Dask's per-task cost stays small
    max_bytes: int = 8 * 2**20
    growth: int = 16  # fast inputs reach full batches in a few results; slow ones stay at 1
    size: int = 1
    floor: int = 1
    min_task_seconds: float = 0.01  # the tail of a map is not split into tasks shorter than this
    slots: int = 1  # the worker threads that can run this function
    ramping: bool = True  # no batch observed yet, or the last size was held back by `growth`
    _seconds_per_input: float | None = None
    _seconds_seen: float = 0.0  # compute seconds and inputs of the batches seen, older ones fading
    _inputs_seen: float = 0.0
    _bytes_per_input: float = 0.0
    _seen_this_map: bool = False  # a batch of this map was observed (not only an earlier map's rate)

    def start(self, total: int | None) -> None:
        """Size the first round of a map of `total` inputs (when known) before anything is seen:
        a slot's share of them, up to `slots / SLOTS_PER_TARGET` inputs (the factor by which
        `target_for` lengthens batches on this width), so a wide cluster's first round is
        one task per slot that already carries its share, and a narrow one's starts at 1."""
        if total is None or self._seconds_per_input is not None:
            return
        self.size = max(1, min(total // max(self.slots, 1), self.slots // SLOTS_PER_TARGET))

    def next_size(self, remaining: int | None = None) -> int:
        """The next batch's size; no more than a slot's share of `remaining` (the inputs not
        yet submitted, when known) once sizes are learnt."""
        size = self.size
        if remaining is not None and self._seconds_per_input is not None:
            # an earlier map's rate is not trusted to keep inputs together: this map's may be slower
            worth_a_task = int(self.min_task_seconds / self._seconds_per_input) if self._seen_this_map else 1
            size = min(size, max(-(-remaining // max(self.slots, 1)), worth_a_task))
        return max(size, self.floor, 1)

    def observe(self, inputs: int, compute_seconds: float, payload_bytes: int) -> None:
        """Fold in one finished batch: `inputs` took `compute_seconds`; their payload had `payload_bytes`."""
        if inputs <= 0:
            return
        self._seen_this_map = True
        per_input = max(compute_seconds / inputs, 1e-7)
        # Per input, over the inputs seen: a batch counts as much as it has inputs, so the fixed
        # cost of a task (~0.1 ms) read off the first one-input batches does not hold big
        # batches back; a batch slower per input than that is believed at once (slow inputs).
        self._seconds_seen = 0.7 * self._seconds_seen + compute_seconds
        self._inputs_seen = 0.7 * self._inputs_seen + inputs
        self._seconds_per_input = max(per_input, self._seconds_seen / self._inputs_seen, 1e-7)
        self._bytes_per_input = max(self._bytes_per_input * 0.7, payload_bytes / inputs)
        wanted = self._wanted()
        self.ramping = wanted > self.size * self.growth
        self.size = min(wanted, self.size * self.growth) if wanted > self.size else wanted

    def _wanted(self) -> int:
        """The size the inputs seen so far call for (time and bytes per input)."""
        by_time = target_for(self.slots, self.target_seconds) / (self._seconds_per_input or 1e-7)
        by_bytes = self.max_bytes / max(self._bytes_per_input, 1.0)
        return int(max(1, min(by_time, by_bytes, self.max_batch)))

    def learnt(self) -> tuple[float, float, float] | None:
        """What was learnt of the function's inputs (to start its next map from), None before any."""
        if self._seconds_per_input is None:
            return None
        return self._seconds_seen, self._inputs_seen, self._bytes_per_input

    def resume(self, learnt: tuple[float, float, float] | None) -> None:
        """Start from what an earlier map of the same function learnt: its first batches are two
        growth steps below the size it reached (under a ms of work by its rate, so the first
        result stays quick if this map's inputs are slower: 0.09 s, against 1.2 s one step below,
        for 20 ms inputs after trivial ones), instead of ramping up from one input.
        Until this map's first batch is seen, a batch still takes no more than a slot's share of
        what is left: the same function's inputs may be far slower this time (a grid of cheap
        then of costly settings), and one task holding them all would run them one by one.
        For sized inputs only (the caller's choice): an iterator's inputs are read lazily."""
        if learnt is None or self._seconds_per_input is not None:
            return
        self._seconds_seen, self._inputs_seen, self._bytes_per_input = learnt
        self._seconds_per_input = max(self._seconds_seen / max(self._inputs_seen, 1e-9), 1e-7)
        self.size = max(self.size, self._wanted() // self.growth**2, 1)


_LEARNT_KEPT = 256
_learnt: OrderedDict[bytes, tuple[float, float, float]] = OrderedDict()
_learnt_lock = threading.Lock()


def recall(function_key: bytes) -> tuple[float, float, float] | None:
    """What the last map of a function (by its key: a digest of the pickled function) learnt."""
    with _learnt_lock:
        return _learnt.get(function_key)


def remember(function_key: bytes, sizer: BatchSizer) -> None:
    """Keep what `sizer` learnt for the function's next map in this process (the last few functions)."""
    learnt = sizer.learnt()
    if learnt is None:
        return
    with _learnt_lock:
        _learnt[function_key] = learnt
        _learnt.move_to_end(function_key)
        while len(_learnt) > _LEARNT_KEPT:
            _learnt.popitem(last=False)
