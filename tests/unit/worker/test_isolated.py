"""Child processes for isolated inputs, driven directly from this process (no cluster)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from waiting import wait_until

from nbfan.exception import InputCancellation
from nbfan.worker import isolated, stopping
from nbfan.worker.payload import dumps_function
from nbfan.worker.runners import InChild

pytestmark = pytest.mark.skipif(not isolated.available(), reason="child processes need POSIX fork")


def read_env() -> tuple[str | None, int]:
    return os.environ.get("NBFAN_UNIT_SECRET"), os.getpid()


@pytest.fixture
def fresh() -> Iterator[None]:
    isolated.close_all()
    yield
    isolated.close_all()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_an_input_sees_its_environment_and_this_process_never_does(fresh: None) -> None:
    runner = InChild(dumps_function(read_env), "call-1", ("call-1",), {"NBFAN_UNIT_SECRET": "s"}, None)
    ok, (value, pid) = runner.call((), {})
    assert ok and value == "s" and pid != os.getpid()
    assert "NBFAN_UNIT_SECRET" not in os.environ
    assert runner.call((), {})[1][1] == pid  # the idle child is reused for the next input


def test_an_idle_child_is_closed_after_the_idle_time(fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolated, "IDLE_SECONDS", 0.2)
    _ok, (_value, pid) = InChild(dumps_function(read_env), "call-2", ("call-2",), {}, None).call((), {})
    wait_until(lambda: _gone(pid), timeout=30, what="the idle child to be closed")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_children_die_with_the_fork_server(fresh: None) -> None:
    _ok, (_value, pid) = InChild(dumps_function(read_env), "call-3", ("call-3",), {}, None).call((), {})
    server = isolated._server
    assert server is not None
    server.process.kill()
    wait_until(lambda: _gone(pid), timeout=30, what="the child to die with its fork server")


def test_an_idle_child_that_died_is_replaced(fresh: None) -> None:
    runner = InChild(dumps_function(read_env), "call-4", ("call-4",), {}, None)
    _ok, (_value, pid) = runner.call((), {})
    psutil.Process(pid).kill()
    wait_until(lambda: _gone(pid), timeout=30, what="the idle child to die")
    ok, (_value, new_pid) = runner.call((), {})
    assert ok and new_pid != pid


def test_a_healthy_idle_child_of_a_function_with_a_timeout_is_reused(fresh: None) -> None:
    runner = InChild(dumps_function(read_env), "call-5", ("call-5",), {}, timeout=600)
    _ok, (_value, first) = runner.call((), {})
    _ok, (_value, second) = runner.call((), {})  # its channel still has the first input's timeout set
    assert second == first


def write_marker(path: str) -> str:
    with open(path, "w") as f:
        f.write("ran")
    return "ran"


def test_a_cancel_that_lands_while_the_child_is_made_stops_the_input_before_it_runs(
    fresh: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The cancel arrives after the batch checked for one and before the input registered its
    # child (making the first child starts the fork server: seconds on a loaded machine).
    make_child = isolated.acquire

    def acquire_then_cancel(digest: bytes, env: dict[str, str]) -> isolated.Child:
        child = make_child(digest, env)
        asyncio.run(stopping.cancel_running("call-6"))
        return child

    monkeypatch.setattr(isolated, "acquire", acquire_then_cancel)
    marker = tmp_path / "marker"
    ok, failure = InChild(dumps_function(write_marker), "call-6", ("call-6",), {}, timeout=60).call((str(marker),), {})
    assert not ok and failure.exc_type is InputCancellation
    assert not marker.exists()
    assert len(isolated._idle) == 1  # the unused child is kept for the next input
