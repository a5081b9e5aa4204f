"""Kept `@app.cls` instances (worker/instances.py): retired when idle past their window (not
while an input uses them), all at process end; and the deadline on `@enter`."""

from __future__ import annotations

import time

import pytest

from nbfan.exception import FunctionTimeoutError
from nbfan.worker import instances


class Owner:
    def __init__(self) -> None:
        self.instance: object | None = object()
        self.exited: list[str] = []

    def forget(self) -> None:
        self.instance = None


def test_an_idle_instance_is_retired_and_a_busy_one_is_not() -> None:
    idle, busy = Owner(), Owner()
    instances.keep(idle, [lambda: idle.exited.append("exit")], 0.5, idle.forget)
    instances.keep(busy, [lambda: busy.exited.append("exit")], 0.5, busy.forget)
    later = time.monotonic() + 1
    with instances.using(busy):
        assert instances.retire_idle(now=later) >= 1
        assert idle.instance is None and idle.exited == ["exit"]
        assert busy.instance is not None and busy.exited == []  # in use: kept
    instances.retire_all()
    assert busy.exited == ["exit"] and busy.instance is None


def test_an_exit_that_raises_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    owner = Owner()

    def boom() -> None:
        raise RuntimeError("exit failed")

    instances.keep(owner, [boom, lambda: owner.exited.append("second")], 60, owner.forget)
    instances.retire_all()
    assert owner.exited == ["second"] and "@exit method raised" in caplog.text


def test_the_startup_deadline() -> None:
    with instances.deadline(5, "@enter of Quick"):
        pass  # within it: nothing raised, later either
    time.sleep(0.01)
    with pytest.raises(FunctionTimeoutError, match=r"@enter of Slow ran past its startup_timeout of 0.2s"):
        with instances.deadline(0.2, "@enter of Slow"):
            while True:  # Python bytecode: the deadline lands in it
                time.sleep(0.01)
