"""Deployed apps on the scheduler (scheduler/apps.py), driven directly: versions, rollback,
and when schedules are due (a clock the test moves)."""

from __future__ import annotations

import datetime as dt

import pytest

from nbfan.scheduler.apps import MAX_VERSIONS, Apps
from nbfan.scheduler.cron import PeriodSpec, ScheduleError, parse_cron


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def deploy(apps: Apps, name: str, tag: str, schedule: tuple[object, ...] | None = None) -> int:
    record = {"functions": {"f": tag.encode()}, "launchers": {"f": f"launch {tag}".encode()}}
    if schedule is not None:
        record["schedules"] = {"f": schedule}
    reply = apps.apps_op("deploy", name, record)
    assert reply["ok"]
    return int(reply["version"])


def test_each_deploy_is_a_version_and_rollback_copies_an_old_one() -> None:
    apps = Apps()
    assert [deploy(apps, "a", f"v{i}") for i in range(1, 4)] == [1, 2, 3]
    assert apps.apps_op("get", "a")["app"]["functions"]["f"] == b"v3"
    assert apps.apps_op("get", "a", app_version=1)["app"]["functions"]["f"] == b"v1"
    assert apps.apps_op("get", "a", app_version=9)["app"] is None
    assert apps.apps_op("rollback", "a") == {"ok": True, "version": 4, "from": 2}
    assert apps.apps_op("get", "a")["app"]["functions"]["f"] == b"v2"
    assert apps.apps_op("rollback", "a", app_version=1)["version"] == 5
    assert "no version 42" in apps.apps_op("rollback", "a", app_version=42)["error"]
    summary = apps.apps_op("list")["apps"]["a"]
    assert summary["version"] == 5 and summary["versions"] == [1, 2, 3, 4, 5] and summary["functions"] == ["f"]
    for i in range(MAX_VERSIONS):
        deploy(apps, "a", f"more {i}")
    assert len(apps.versions["a"]) == MAX_VERSIONS  # the oldest went
    assert apps.apps_op("stop", "a") == {"ok": True, "found": True}
    assert apps.apps_op("rollback", "a") == {"ok": False, "missing": True}
    deploy(apps, "b", "x")
    assert "one version" in apps.apps_op("rollback", "b")["error"]


def test_a_period_is_due_one_period_after_the_deploy_and_an_overlapping_run_is_skipped() -> None:
    apps = Apps()
    clock = Clock(1_000_000.0)
    apps.clock = clock
    deploy(apps, "a", "v1", ("period", 0, 60.0))
    running = {"now": False}
    assert apps.due(lambda app, fn: running["now"]) == []
    clock.now += 60
    assert apps.due(lambda app, fn: running["now"]) == [("a", "f", b"launch v1")]
    running["now"] = True
    clock.now += 60
    assert apps.due(lambda app, fn: running["now"]) == []  # skipped: the last run still goes
    running["now"] = False
    clock.now += 61
    assert apps.due(lambda app, fn: running["now"]) == [("a", "f", b"launch v1")]
    state = apps.apps_op("list")["apps"]["a"]["schedules"]["f"]
    assert (state["runs"], state["skipped"], state["schedule"]) == (2, 1, "every 60 s")
    assert state["next"] == 1_000_000.0 + 240  # on the deploy's grid, not the last run's
    deploy(apps, "a", "v2")  # a version without the schedule: it stops
    clock.now += 600
    assert apps.due(lambda app, fn: False) == []


def test_cron_expressions() -> None:
    t = dt.datetime(2026, 12, 6, 14, 0, tzinfo=dt.timezone.utc).timestamp()  # a Sunday

    def next_of(expr: str, zone: str = "UTC") -> str:
        return dt.datetime.fromtimestamp(parse_cron(expr, zone).next_after(t), dt.timezone.utc).strftime("%a %d %H:%M")

    assert next_of("0 3 * * *") == "Mon 07 03:00"
    assert next_of("*/20 * * * *") == "Sun 06 14:20"
    assert next_of("*/15 9-17 * * mon-fri", "Europe/Paris") == "Mon 07 08:00"  # 09:00 in Paris
    assert next_of("0 0 1 * 0") == "Sun 13 00:00"  # day 1 or a Sunday: either matches, as in cron
    assert next_of("30 14 6 dec *") == "Sun 06 14:30"
    for bad in ("* * *", "61 * * * *", "0 0 30 2 *", "0 0 * * 8", "a b c d e"):
        with pytest.raises(ScheduleError):
            parse_cron(bad)
    assert PeriodSpec(0, 3600).next_after(t + 10, t) == t + 3600
    assert PeriodSpec(1, 0).next_after(t, t) - t == 31 * 86400  # December has 31 days
