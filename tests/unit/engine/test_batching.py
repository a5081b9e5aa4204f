"""Batch sizes learnt from measured compute time: fast inputs grow to full batches in a few
steps, slow or large inputs go one per task."""

from __future__ import annotations

from nbfan.engine.batching import BatchSizer


def test_fast_inputs_grow_sixteenfold_per_observation_up_to_the_cap() -> None:
    sizer = BatchSizer()
    sizes = [sizer.next_size()]
    for _ in range(6):
        sizer.observe(sizer.next_size(), 1e-6 * sizer.next_size(), 10 * sizer.next_size())
        sizes.append(sizer.next_size())
    assert sizes[:4] == [1, 16, 256, 4096] and sizes[-1] == sizer.max_batch


def test_slow_or_large_inputs_stay_one_per_task() -> None:
    slow = BatchSizer()
    slow.observe(1, 0.5, 100)
    assert slow.next_size() == 1
    large = BatchSizer()
    large.observe(4, 0.0001, 4 * 16 * 2**20)  # 16 MiB each
    assert large.next_size() == 1


def test_a_slow_batch_after_fast_ones_shrinks_at_once() -> None:
    sizer = BatchSizer()
    for _ in range(4):
        sizer.observe(sizer.next_size(), 1e-6 * sizer.next_size(), 0)
    sizer.observe(100, 10.0, 0)  # 0.1 s per input now
    assert sizer.next_size() == 1


def test_a_task_s_fixed_cost_seen_on_one_input_batches_does_not_hold_big_batches_back() -> None:
    sizer = BatchSizer()
    sizes = []
    for _ in range(5):  # ~0.1 ms per task whatever its size, 0.1 us per input
        size = sizer.next_size()
        sizer.observe(size, 1e-4 + 1e-7 * size, 10 * size)
        sizes.append(sizer.next_size())
    assert sizes[:4] == [16, 256, 4096, sizer.max_batch]


def test_the_sizer_says_when_it_still_ramps_up() -> None:
    fast = BatchSizer()
    assert fast.ramping  # nothing seen yet: the map loop keeps few tasks in flight
    fast.observe(1, 1e-6, 10)
    assert fast.ramping and fast.next_size() == 16
    for _ in range(4):
        fast.observe(fast.next_size(), 1e-6 * fast.next_size(), 10)
    assert not fast.ramping and fast.next_size() == fast.max_batch
    slow = BatchSizer()
    slow.observe(1, 0.1, 10)
    assert not slow.ramping and slow.next_size() == 1  # slow inputs: the whole window at once


def test_wide_clusters_get_longer_batches_so_the_scheduler_is_not_flooded() -> None:
    narrow, wide = BatchSizer(slots=2), BatchSizer(slots=100)
    for sizer in (narrow, wide):
        sizer.observe(1, 0.1, 10)  # 0.1 s per input
    assert narrow.next_size() == 1  # 0.1 s batches on 2 slots
    assert wide.next_size() == 10  # 1 s on 100 slots: still a slot free every ~10 ms


def test_a_batch_takes_no_more_than_a_slot_s_share_of_what_is_left() -> None:
    sizer = BatchSizer(slots=100)
    sizer.observe(1, 0.01, 10)  # 10 ms an input: the size grows to 16 by time
    assert sizer.next_size() == 16
    assert sizer.next_size(remaining=250) == 3  # the tail spreads over every slot
    assert sizer.next_size(remaining=1) == 1
    assert sizer.next_size(remaining=None) == 16  # unsized inputs: by time alone


def test_the_tail_of_a_map_of_trivial_inputs_is_not_split_into_tasks_shorter_than_worth_it() -> None:
    sizer = BatchSizer(slots=2)
    for _ in range(4):
        sizer.observe(4096, 4096 * 1e-6, 4096 * 10)  # 1 us an input: full batches
    full = sizer.next_size()
    assert full == sizer.max_batch
    # halving what is left, as a slow map's tail does, would cost a round trip a halving: a task
    # keeps at least min_task_seconds (10 ms = 10,000 inputs) of work
    assert sizer.next_size(remaining=15_000) == 10_000
    assert sizer.next_size(remaining=5_000) == 10_000  # (the source hands out what is left)
    slow = BatchSizer(slots=2)
    slow.observe(1, 0.5, 10)
    assert slow.next_size(remaining=3) == 1  # slow inputs still spread one a slot


def test_a_wide_cluster_s_first_round_is_one_task_per_slot_with_its_share() -> None:
    wide = BatchSizer(slots=100)
    wide.start(1000)
    assert wide.next_size(1000) == 10  # 1,000 inputs on 100 slots: one round, nothing left over
    small = BatchSizer(slots=100)
    small.start(50)
    assert small.next_size(50) == 1  # fewer inputs than slots: one each
    narrow = BatchSizer(slots=2)
    narrow.start(100_000)
    assert narrow.next_size() == 1  # 2 slots: start at one input, as ever (learn first)
    unsized = BatchSizer(slots=100)
    unsized.start(None)
    assert unsized.next_size() == 1


def test_a_map_resumed_from_an_earlier_map_s_rate_still_spreads_its_inputs_over_the_slots() -> None:
    earlier = BatchSizer(slots=6)
    earlier.observe(2, 2e-5, 20)  # trivial inputs: 10 us each
    resumed = BatchSizer(slots=6)
    resumed.start(16)
    resumed.resume(earlier.learnt())
    assert resumed.next_size(remaining=100_000) > 16  # big maps start big, as learnt
    # 16 inputs that may be far slower this time: a slot's share each, not one task holding all
    assert resumed.next_size(remaining=16) == 3
    resumed.observe(3, 3e-5, 30)  # this map's own rate is trivial too: the tail stays together
    assert resumed.next_size(remaining=13) >= 13
