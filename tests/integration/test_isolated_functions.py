"""Functions whose inputs run in a child process of the worker (secrets, Image.env, timeout=)
behave like any other function: errors, generators, async, retries, calls made inside them."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from remote_tb import assert_reads_like_local

import nbfan
from nbfan.exception import ExecutionError, SerializationError

app = nbfan.App("test-isolated")
SECRET = nbfan.Secret.from_dict({"NBFAN_ISOLATED_TOKEN": "t0k3n"})


class Rejected(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@app.function(secrets=[SECRET])
def rejects(code: int) -> None:
    raise Rejected(f"token {os.environ['NBFAN_ISOLATED_TOKEN']} rejected", code)


@app.function(secrets=[SECRET])
def yields_token(n: int) -> Iterator[str]:
    for i in range(n):
        yield f"{i}:{os.environ['NBFAN_ISOLATED_TOKEN']}"


@app.function(timeout=30)
async def async_token() -> str | None:
    await asyncio.sleep(0)
    return os.environ.get("NBFAN_ISOLATED_TOKEN")


@app.function(timeout=0.5, retries=nbfan.Retries(max_retries=2, initial_delay=0.0))
def slow_then_fast(folder: str) -> int:
    attempts = Path(folder, "attempts")
    n = int(attempts.read_text()) + 1 if attempts.exists() else 1
    attempts.write_text(str(n))
    if n == 1:
        threading.Event().wait(30)  # the first attempt is stuck: killed at the deadline, then retried
    return n


@app.function(timeout=30)
def crashes() -> None:
    os._exit(3)


@app.function(secrets=[SECRET])
def returns_a_lock() -> Any:
    return threading.Lock()


@app.function()
def inner(x: int) -> int:
    return x * 10


@app.function(timeout=60)
def outer(x: int) -> list[int]:
    return [inner.remote(x), *inner.map([x, x + 1])]


@app.function(secrets=[SECRET])
def outer_spawns(x: int) -> int:
    return inner.spawn(x).get() + 1


@pytest.fixture(scope="module")
def one_slot() -> Iterator[Any]:
    """One worker with one thread: a function waiting for calls it made must free its slot."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster


@pytest.fixture
def single(one_slot: Any) -> Iterator[Any]:
    nbfan.connect(one_slot)
    yield one_slot
    nbfan.disconnect()


def test_errors_keep_their_type_attributes_and_source_lines(client: Any) -> None:
    with app.run(), pytest.raises(Rejected) as info:
        rejects.remote(7)
    assert info.value.code == 7 and "t0k3n" in str(info.value)
    assert_reads_like_local(info.value, "rejects.remote(7)", "raise Rejected(")


def test_generators_stream_with_their_environment(client: Any) -> None:
    with app.run():
        assert list(yields_token.remote_gen(3)) == ["0:t0k3n", "1:t0k3n", "2:t0k3n"]


def test_async_functions_run_to_completion_without_a_secret_they_were_not_given(client: Any) -> None:
    with app.run():
        assert async_token.remote() is None


def test_a_timed_out_attempt_is_retried(client: Any, tmp_path: Path) -> None:
    with app.run():
        assert slow_then_fast.remote(str(tmp_path)) == 2


def test_a_crashing_process_fails_its_input_and_the_worker_goes_on(client: Any) -> None:
    with app.run():
        with pytest.raises(ExecutionError, match="died during the input"):
            crashes.remote()
        assert inner.remote(2) == 20


def test_an_unpicklable_result_says_so(client: Any) -> None:
    with app.run(), pytest.raises(SerializationError, match="could not be serialized"):
        returns_a_lock.remote()


def test_calls_made_inside_isolated_functions_free_the_only_slot(single: Any) -> None:
    with app.run():
        assert outer.remote(1) == [10, 10, 20]
        assert outer_spawns.remote(4) == 41


@app.function()
def pid_of_input() -> int:
    return os.getpid()


def test_isolate_all_runs_every_function_in_a_child(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbfan.config import config

    with app.run():
        worker_pids = set(client.run(os.getpid).values())
        assert pid_of_input.remote() in worker_pids
        monkeypatch.setattr(config, "isolate_all", True)
        assert pid_of_input.remote() not in worker_pids
