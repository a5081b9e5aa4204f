"""Drills for isolation on the workers (issue 16): secrets never leak between functions, a
timeout or a cancel really stops code stuck in a C call, and nothing is left behind."""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from clitools import run_nbfan
from waiting import wait_until

import nbfan
from nbfan.exception import FunctionTimeoutError, InputCancellation

app = nbfan.App("test-isolation")
KEY = "NBFAN_DRILL_SECRET"


def _seen() -> tuple[str | None, str | None]:
    """The secret as Python sees it and as C code (getenv) sees it."""
    libc = ctypes.CDLL(None)
    libc.getenv.restype = ctypes.c_char_p
    raw = libc.getenv(KEY.encode())
    return os.environ.get(KEY), raw.decode() if raw is not None else None


@app.function(secrets=[nbfan.Secret.from_dict({KEY: "alpha"})])
def with_alpha() -> tuple[str | None, str | None]:
    return _seen()


@app.function()
def without_secret() -> tuple[str | None, str | None]:
    return _seen()


def _meet(folder: str, me: str, other: str) -> list[tuple[str | None, str | None]]:
    """Check in, wait for the other function to be running too, then read the secret while it runs."""
    Path(folder, me).touch()
    deadline = time.monotonic() + 60
    while not Path(folder, other).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    seen = []
    for _ in range(200):
        seen.append(_seen())
        time.sleep(0.001)
    Path(folder, f"{me}.done").touch()
    while not Path(folder, f"{other}.done").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return seen


@app.function(secrets=[nbfan.Secret.from_dict({KEY: "alpha"})])
def alpha_meets(folder: str) -> list[tuple[str | None, str | None]]:
    return _meet(folder, "alpha", "beta")


@app.function(secrets=[nbfan.Secret.from_dict({KEY: "beta"})])
def beta_meets(folder: str) -> list[tuple[str | None, str | None]]:
    return _meet(folder, "beta", "alpha")


@app.function(timeout=1)
def sleeps_past_timeout(folder: str) -> None:
    Path(folder, "pid").write_text(str(os.getpid()))
    time.sleep(30)  # one C call: no Python bytecode runs until it returns
    Path(folder, "woke").touch()


@app.function(timeout=600)
def stuck_in_c(folder: str, n: int) -> None:
    Path(folder, f"{n}.pid").write_text(str(os.getpid()))
    time.sleep(600)


@app.function()
def worker_pid() -> int:
    return os.getpid()


@pytest.fixture(scope="module")
def two_thread_cluster() -> Iterator[Any]:
    """One worker process with two threads: functions running side by side share its process."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster:
        yield cluster


@pytest.fixture
def two_thread_worker(two_thread_cluster: Any) -> Iterator[Any]:
    nbfan.connect(two_thread_cluster)
    yield two_thread_cluster
    nbfan.disconnect()


def test_a_secret_is_gone_after_its_function_ran(two_thread_worker: Any) -> None:
    with app.run():
        assert with_alpha.remote() == ("alpha", "alpha")
        assert without_secret.remote() == (None, None)  # same worker process: nothing was left behind
        assert os.environ.get(KEY) is None


def test_two_functions_with_conflicting_secrets_at_once_see_their_own(two_thread_worker: Any, tmp_path: Path) -> None:
    with app.run():
        alpha = alpha_meets.spawn(str(tmp_path))
        beta = beta_meets.spawn(str(tmp_path))
        seen_by_alpha, seen_by_beta = alpha.get(timeout=120), beta.get(timeout=120)
    assert (tmp_path / "alpha.done").exists() and (tmp_path / "beta.done").exists()  # they did overlap
    assert set(seen_by_alpha) == {("alpha", "alpha")}
    assert set(seen_by_beta) == {("beta", "beta")}


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_timeout_stops_code_stuck_in_a_c_call(client: Any, tmp_path: Path) -> None:
    with app.run():
        with pytest.raises(FunctionTimeoutError, match="timeout of 1s"):
            sleeps_past_timeout.remote(str(tmp_path))
        pid = int((tmp_path / "pid").read_text())
        assert not _alive(pid)  # the stuck process is gone by the time the caller hears of the timeout
        started = time.monotonic()
        assert worker_pid.remote() > 0
        print(f"\nDRILL timeout: next call ran {time.monotonic() - started:.3f}s after the timeout")
    assert not (tmp_path / "woke").exists()


def _processes_under(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def test_a_hundred_cancels_of_inputs_stuck_in_c_leave_the_worker_healthy(
    two_thread_worker: Any, tmp_path: Path
) -> None:
    with app.run():
        worker = worker_pid.remote()
        threads_before = psutil.Process(worker).num_threads()
        pids = []
        started = time.monotonic()
        for n in range(100):
            call = stuck_in_c.spawn(str(tmp_path), n)
            pid_file = tmp_path / f"{n}.pid"
            wait_until(lambda f=pid_file: f.exists() and f.read_text(), timeout=60, what=f"input {n} to start")
            call.cancel()
            with pytest.raises(InputCancellation):
                call.get(timeout=60)
            pids.append(int(pid_file.read_text()))
        elapsed = time.monotonic() - started
        assert worker_pid.remote() == worker  # the same worker process, still serving
        wait_until(lambda: not any(_alive(p) for p in pids), timeout=30, what="every stuck process to be gone")
        left = _processes_under(worker)
        threads_after = psutil.Process(worker).num_threads()
    print(f"\nDRILL cancels: 100 in {elapsed:.1f}s; processes under the worker after: {len(left)}; "
          f"threads {threads_before} -> {threads_after}")
    assert len(left) <= 1 + 8  # the fork server and at most the idle children it keeps
    assert threads_after <= threads_before + 4


def test_nbfan_cancel_kills_an_input_stuck_in_c(two_thread_worker: Any, tmp_path: Path) -> None:
    with app.run():
        call = stuck_in_c.spawn(str(tmp_path), 0)
        pid_file = tmp_path / "0.pid"
        wait_until(lambda: pid_file.exists() and pid_file.read_text(), timeout=60, what="the input to start")
        result = run_nbfan("cancel", call.object_id, scheduler=two_thread_worker.scheduler_address)
        assert result.returncode == 0, result.stderr
        with pytest.raises(InputCancellation):
            call.get(timeout=60)
        wait_until(lambda: not _alive(int(pid_file.read_text())), timeout=30, what="the stuck process to be gone")
