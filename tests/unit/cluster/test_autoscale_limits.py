"""The limits of an adaptive local cluster (cluster/autoscale.py), checked before it starts, and
the backlog of unfinished inputs its autoscaler sizes for (scheduler/tracker.py)."""

from __future__ import annotations

import pytest

from nbfan.cluster.autoscale import AdaptiveLimits
from nbfan.exception import InvalidError
from nbfan.scheduler.tracker import CallTracker, unknown_caller


def test_limits() -> None:
    assert AdaptiveLimits(1, 4, 30).checked() == AdaptiveLimits(1, 4, 30.0)
    assert AdaptiveLimits().checked().maximum >= 1  # one a core by default
    assert AdaptiveLimits(0, 2, 5).describe() == "adaptive: 0 to 2 CPU workers, each stopped after 5s unneeded"
    for bad, why in ((AdaptiveLimits(3, 1), "below --min-workers"), (AdaptiveLimits(-1, 2), "whole number"),
                     (AdaptiveLimits(0, 2, 0), "seconds > 0")):
        with pytest.raises(InvalidError, match=why):
            bad.checked()


def test_the_backlog_is_the_unfinished_inputs_of_running_calls() -> None:
    tracker = CallTracker()
    assert tracker.backlog(unknown=8) == 0
    for call_id in ("a", "b", "c"):
        tracker.call_started(call_id, function="f", app=None, kind="map", caller=unknown_caller(), started=None,
                             owner=None)
    tracker.call_total("a", 40)
    tracker.task_processing("a", 15)
    tracker.task_left_processing("a", 0, 15, "memory", "tcp://w:1")  # a batch of 15 finished
    tracker.call_total("c", 5)
    tracker.call_ended("c", "done")  # b: its inputs are still being read (total unknown)
    assert tracker.backlog(unknown=8) == 25 + 8
