"""Putting a worker process's environment, working directory and sys.path back after a plain
function's task (`process_state.py`), without a cluster: the restore logic, the overlap of
tasks on several threads, and `run_batch` using it for plain functions only."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbfan.worker import process_state
from nbfan.worker.payload import dumps_function, dumps_inputs, loads
from nbfan.worker.task import TaskSpec, run_batch

KEY = "NBFAN_TEST_PROCESS_STATE"


@pytest.fixture
def clean() -> Iterator[None]:
    """Whatever a test leaves behind is undone for the next one (even when it fails)."""
    environ, cwd, path = dict(os.environ), os.getcwd(), list(sys.path)
    yield
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)
    sys.path[:] = path


def test_restore_puts_back_added_changed_and_removed_keys(clean: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY + "_CHANGED", "old")
    monkeypatch.setenv(KEY + "_REMOVED", "kept")
    before = process_state.take()
    os.environ[KEY + "_ADDED"] = "new"
    os.environ[KEY + "_CHANGED"] = "new"
    del os.environ[KEY + "_REMOVED"]
    process_state.restore(before)
    assert KEY + "_ADDED" not in os.environ
    assert os.environ[KEY + "_CHANGED"] == "old"
    assert os.environ[KEY + "_REMOVED"] == "kept"
    assert process_state.take().environ == before.environ


def test_restore_without_os_environs_own_dict(clean: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where os.environ keeps no dict of its own (another Python), the decoded copy serves."""
    monkeypatch.setenv(KEY + "_CHANGED", "old")
    monkeypatch.setattr(process_state, "_environ", lambda: dict(os.environ))
    monkeypatch.setattr(process_state, "_decoded", lambda key, value: (key, value))
    before = process_state.take()
    os.environ[KEY + "_ADDED"] = "new"
    os.environ[KEY + "_CHANGED"] = "new"
    process_state.restore(before)
    assert KEY + "_ADDED" not in os.environ and os.environ[KEY + "_CHANGED"] == "old"


def test_restore_reaches_the_real_environment(clean: None) -> None:
    """Child processes (and C code calling getenv) see the restored environment, not only
    Python's `os.environ` mapping."""
    import subprocess

    before = process_state.take()
    os.environ[KEY] = "leaked"
    process_state.restore(before)
    shown = subprocess.run(["sh", "-c", f"echo ${{{KEY}:-absent}}"], capture_output=True, text=True, env=None)
    assert shown.stdout.strip() == "absent"


def test_restore_goes_back_to_the_working_directory(clean: None, tmp_path: Path) -> None:
    before = process_state.take()
    os.chdir(tmp_path)
    process_state.restore(before)
    assert os.getcwd() == before.cwd


def test_restore_survives_a_working_directory_that_was_removed(clean: None, tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    before = process_state.take()
    os.chdir(gone)
    gone.rmdir()
    process_state.restore(before)
    assert os.getcwd() == before.cwd


def test_restore_puts_back_sys_path_in_the_same_list(clean: None) -> None:
    original = sys.path
    before = process_state.take()
    sys.path.insert(0, "/nbfan/inserted")
    sys.path.remove(sys.path[-1])
    process_state.restore(before)
    assert sys.path is original and tuple(sys.path) == before.path_items
    sys.path = ["/nbfan/replaced"]  # a function may replace the list itself
    process_state.restore(before)
    assert sys.path is original and tuple(sys.path) == before.path_items


def test_restore_touches_nothing_that_did_not_change(clean: None, monkeypatch: pytest.MonkeyPatch) -> None:
    before = process_state.take()
    writes: list[str] = []
    monkeypatch.setattr(os, "putenv", lambda key, value: writes.append(key))
    monkeypatch.setattr(os, "unsetenv", lambda key: writes.append(key))
    monkeypatch.setattr(os, "chdir", lambda path: writes.append(str(path)))
    process_state.restore(before)
    assert writes == []
    os.environ[KEY] = "added"  # what did change is written (the hooks above see it)
    writes.clear()
    process_state.restore(before)
    assert len(writes) == 1 and KEY not in os.environ


def test_kept_restores_when_its_task_ends_and_the_task_sees_its_own_changes(clean: None, tmp_path: Path) -> None:
    before = process_state.take()
    with process_state.kept():
        os.environ[KEY] = "set"
        os.chdir(tmp_path)
        sys.path.append("/nbfan/appended")
        assert os.environ[KEY] == "set" and os.getcwd() == str(tmp_path)
    assert KEY not in os.environ and os.getcwd() == before.cwd and tuple(sys.path) == before.path_items
    with process_state.kept(active=False):  # a task whose inputs run in a child: nothing kept
        os.environ[KEY] = "set"
    assert os.environ.pop(KEY) == "set"


def test_overlapping_tasks_keep_each_others_changes_until_the_last_ends(clean: None) -> None:
    """On a worker with several threads, the first task's end does not undo what a task still
    running set; once neither runs, the process is as before either started."""
    first_in, second_set, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[str | None] = []

    def second() -> None:
        first_in.wait(10)
        with process_state.kept():
            os.environ[KEY] = "second"
            second_set.set()
            first_out.wait(10)
            seen.append(os.environ.get(KEY))

    thread = threading.Thread(target=second)
    thread.start()
    with process_state.kept():
        first_in.set()
        second_set.wait(10)
    first_out.set()
    thread.join(10)
    assert seen == ["second"]  # the first task ended while the second ran: its value stayed
    assert KEY not in os.environ  # both ended: put back


def leaves_traces(x: int) -> str:
    os.environ["NBFAN_TEST_PROCESS_STATE"] = str(x)
    sys.path.append(f"/nbfan/appended-{x}")
    return os.environ["NBFAN_TEST_PROCESS_STATE"]


def test_run_batch_puts_back_what_a_plain_function_changed(clean: None) -> None:
    before = process_state.take()
    _elapsed, outcomes = loads(run_batch(dumps_function(leaves_traces), dumps_inputs([((1,), {}), ((2,), {})]),
                                         TaskSpec(call_id="c-process-state")))
    assert list(outcomes) == [(True, "1"), (True, "2")]  # each input saw its own change
    assert KEY not in os.environ and tuple(sys.path) == before.path_items
