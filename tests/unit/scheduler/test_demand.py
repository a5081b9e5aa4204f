"""The workers nbfan's functions want (scheduler/demand.py): the backlog of unfinished inputs,
and each function's min_containers, buffer_containers and scaledown_window on top of it."""

from __future__ import annotations

from nbfan.scheduler.demand import Demand, knobs_of
from nbfan.scheduler.tracker import CallTracker, unknown_caller


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def start(tracker: CallTracker, call_id: str, function: str, app: str | None = "app", total: int | None = None) -> None:
    tracker.call_started(call_id, function=function, app=app, kind="map", caller=unknown_caller(), started=None,
                         owner=None)
    if total is not None:
        tracker.call_total(call_id, total)


def test_without_knobs_the_demand_is_the_unfinished_inputs_of_running_calls() -> None:
    tracker = CallTracker()
    demand = Demand(tracker)
    assert demand.wanted(unknown=8) == 0
    start(tracker, "a", "f", total=40)
    start(tracker, "b", "g")  # its inputs are still being read (total unknown)
    start(tracker, "c", "f", total=5)
    tracker.task_processing("a", 15)
    tracker.task_left_processing("a", 0, 15, "memory", "tcp://w:1")  # a batch of 15 finished
    tracker.call_ended("c", "done")
    assert demand.wanted(unknown=8) == 25 + 8


def test_min_and_buffer_containers_add_to_a_functions_backlog() -> None:
    tracker = CallTracker()
    demand = Demand(tracker)
    demand.set_knobs("app", "f", "client-1", min_containers=2, buffer_containers=3)
    assert demand.wanted() == 2  # kept while idle, no buffer without inputs
    start(tracker, "a", "f", total=4)
    assert demand.wanted() == 4 + 3
    start(tracker, "b", "other", total=1)  # another function's backlog adds up
    assert demand.wanted() == 4 + 3 + 1
    demand.client_gone("client-1")
    assert demand.wanted() == 4 + 1


def test_the_latest_setting_wins_and_a_deployed_apps_knobs_hold_without_a_caller() -> None:
    tracker = CallTracker()
    demand = Demand(tracker, deployed=lambda: [("app", "f", knobs_of(min_containers=1))])
    assert demand.wanted() == 1
    demand.set_knobs("app", "f", "client-1", min_containers=3)
    demand.set_knobs("app", "f", "client-2", min_containers=0)
    assert demand.wanted() == 0
    demand.set_knobs("app", "f", "client-1", min_containers=3)
    assert demand.wanted() == 3
    demand.client_gone("client-1")
    demand.client_gone("client-2")
    assert demand.wanted() == 1


def test_scaledown_window_holds_a_functions_last_demand_after_its_inputs_finish() -> None:
    tracker, clock = CallTracker(), Clock()
    demand = Demand(tracker, clock=clock)
    demand.set_knobs("app", "f", "client-1", scaledown_window=30)
    start(tracker, "a", "f", total=5)
    assert demand.wanted() == 5
    tracker.task_processing("a", 5)
    tracker.task_left_processing("a", 0, 5, "memory", "tcp://w:1")
    tracker.call_ended("a", "done")
    clock.now += 29
    assert demand.wanted() == 5  # held within the window
    clock.now += 2
    assert demand.wanted() == 0


def test_stats_count_waiting_and_running_inputs_of_one_function() -> None:
    tracker = CallTracker()
    demand = Demand(tracker)
    start(tracker, "a", "f", total=10)
    start(tracker, "b", "f", app=None, total=7)  # the same name outside the App: another function
    tracker.task_processing("a", 4)  # assigned to workers; 2 of them run (their heartbeats say)
    stats = demand.stats("app", "f", executing=lambda calls: (2, 1) if calls == {"a"} else (0, 0))
    assert (stats["backlog"], stats["running"], stats["workers"], stats["knobs"]) == (8, 2, 1, None)
    assert demand.stats(None, "f")["backlog"] == 7


def test_a_pushed_outcome_counts_its_call_finished_before_its_task_ends() -> None:
    """A `.remote`/`.spawn` outcome reaches its caller (pushed) a moment before its task's end
    reaches the scheduler: stats read right after the result must not still count it."""
    tracker = CallTracker()
    demand = Demand(tracker)
    tracker.call_started("a", function="f", app="app", kind="spawn", caller=unknown_caller(), started=None, owner=None)
    tracker.call_total("a", 1)
    tracker.task_processing("a", 1)
    running = {"a"}
    stats = demand.stats("app", "f", executing=lambda calls: (len(calls & running), len(calls & running)))
    assert (stats["backlog"], stats["running"], stats["workers"]) == (0, 1, 1)
    tracker.outcome_pushed("a")  # the task still runs, as the scheduler sees it
    stats = demand.stats("app", "f", executing=lambda calls: (len(calls & running), len(calls & running)))
    assert (stats["backlog"], stats["running"], stats["workers"]) == (0, 0, 0)


def test_the_demand_splits_by_what_calls_ask_of_a_worker() -> None:
    tracker = CallTracker()
    demand = Demand(tracker)
    groups = {"a100": {"GPU": 1.0, "GPU-A100": 1.0}, "big": {"MEMORY": 65536.0}}
    start(tracker, "cpu", "f", total=5)
    start(tracker, "gpu", "g", total=3)
    start(tracker, "h100", "h", total=2)
    demand.saw_call("cpu", {"nbfan-cap-app.f": 1.0})  # a cap is not something a worker offers
    demand.saw_call("gpu", {"GPU": 1.0, "GPU-A100": 1.0})
    demand.saw_call("h100", {"GPU": 1.0, "GPU-H100": 1.0})  # no group fits: the cluster's own workers
    assert demand.wanted_by_group(groups) == {"": 5 + 2, "a100": 3, "big": 0}
    demand.set_knobs("app", "g", "client-1", min_containers=1)
    for call_id in ("cpu", "gpu", "h100"):
        tracker.call_ended(call_id, "cancelled")
    assert demand.wanted_by_group(groups) == {"": 0, "a100": 1, "big": 0}  # its last call's group keeps it
