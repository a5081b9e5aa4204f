"""What a plain function changes of its worker process (os.environ, the working directory,
sys.path) is gone for the next function on that worker, as it would be in Modal's container per
function; the function itself sees its own changes while it runs.

A cluster of one worker process with one thread, so every call lands on the same process (the
tests check the pid)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nbfan
from nbfan.cluster.local import start_local_cluster

app = nbfan.App("test-process-state")

KEY = "NBFAN_TEST_SET_BY_A_FUNCTION"
MARK = "/nbfan-test/appended-by-a-function"


@pytest.fixture(scope="module")
def one_worker() -> Iterator[Any]:
    cluster = start_local_cluster(1, gpus=[])
    nbfan.connect(cluster)
    yield cluster
    nbfan.disconnect()
    cluster.close()


def state() -> tuple[int, str | None, str, bool]:
    return os.getpid(), os.environ.get(KEY), os.getcwd(), MARK in sys.path


@app.function
def changes(folder: str, value: str = "set") -> tuple[int, str | None, str, bool]:
    os.environ[KEY] = value
    os.chdir(folder)
    sys.path.append(MARK)
    return state()


@app.function
def looks(_x: int = 0) -> tuple[int, str | None, str, bool]:
    return state()


@app.function
def changes_and_yields(folder: str) -> Iterator[tuple[int, str | None, str, bool]]:
    yield state()
    os.environ[KEY] = "from a generator"
    os.chdir(folder)
    sys.path.append(MARK)
    yield state()


def test_a_later_function_on_the_worker_sees_none_of_the_changes(one_worker: Any, tmp_path: Path) -> None:
    pid, _, cwd, _ = looks.remote()
    assert cwd != str(tmp_path)
    assert changes.remote(str(tmp_path)) == (pid, "set", str(tmp_path), True)  # it sees its own changes
    assert looks.remote() == (pid, None, cwd, False)


def test_a_map_that_changes_the_process_leaves_nothing_for_the_next_map(one_worker: Any, tmp_path: Path) -> None:
    pid, _, cwd, _ = looks.remote()
    seen = list(changes.map([str(tmp_path)] * 20, [str(i) for i in range(20)]))
    assert seen == [(pid, str(i), str(tmp_path), True) for i in range(20)]
    assert set(looks.map(range(20))) == {(pid, None, cwd, False)}


def test_a_generator_function_leaves_nothing_behind(one_worker: Any, tmp_path: Path) -> None:
    pid, _, cwd, _ = looks.remote()
    assert list(changes_and_yields.remote_gen(str(tmp_path))) == [
        (pid, None, cwd, False), (pid, "from a generator", str(tmp_path), True),
    ]
    assert looks.remote() == (pid, None, cwd, False)


def test_the_same_function_called_again_starts_clean(one_worker: Any, tmp_path: Path) -> None:
    """Not only other functions: the next call of the same function finds the worker as it was."""
    pid, _, cwd, _ = looks.remote()
    changes.remote(str(tmp_path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert changes.remote(str(elsewhere), "again") == (pid, "again", str(elsewhere), True)
    assert looks.remote() == (pid, None, cwd, False)
