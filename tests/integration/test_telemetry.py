"""Telemetry on a real cluster: the scheduler plugin counts INPUTS of every call (not Dask
tasks), failures and retries reported by workers, cancellation, late joiners, two clients."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from distributed import Client
from waiting import nothing_running, stays

import nbfan
from nbfan.api import queries as query
from nbfan.exception import InputCancellation, NotFoundError
from nbfan.scheduler.rpc import PLUGIN_NAME
from nbfan.scheduler.tracker import MAX_FINISHED, CallTracker

app = nbfan.App("test-telemetry")


@app.function
def tele_square(x: int) -> int:
    return x * x


@app.function
def tele_fails_on_sevens(x: int) -> int:
    if x % 7 == 0:
        raise ValueError(f"seven: {x}")
    return x


@app.function
def tele_boom() -> None:
    raise RuntimeError("boom")


@app.function(retries=nbfan.Retries(max_retries=2, initial_delay=0.0, backoff_coefficient=1.0))
def tele_flaky(marker_dir: str, x: int) -> int:
    """Fails on the first attempt of every input, then succeeds."""
    marker = Path(marker_dir) / str(x)
    if not marker.exists():
        marker.touch()
        raise OSError("first attempt fails")
    return x


@app.function
def tele_slow(x: int) -> int:
    for _ in range(20):
        time.sleep(0.05)
    return x


def wait_for_call(client: Any, pred: Callable[[dict], bool], timeout: float = 30) -> dict:
    """The first call in the snapshot matching `pred` once it does (bounded wait)."""
    deadline = time.monotonic() + timeout
    last: list[dict] = []
    while time.monotonic() < deadline:
        last = query.calls_snapshot(client)["calls"]
        for call in last:
            if pred(call):
                return call
        time.sleep(0.05)
    raise AssertionError(f"no call matched within {timeout}s; calls: {last}")


def ended(function: str, **fields: Any) -> Callable[[dict], bool]:
    return lambda c: c["function"] == function and c["ended"] is not None and all(c[k] == v for k, v in fields.items())


def test_map_counts_inputs_not_tasks(client: Client) -> None:
    n = 600
    assert list(tele_square.map(range(n))) == [x * x for x in range(n)]
    call = wait_for_call(client, ended("tele_square"))
    assert call["state"] == "done"
    assert call["kind"] == "map" and call["app"] == "test-telemetry"
    assert (call["total"], call["done"], call["failed"], call["running"]) == (n, n, 0, 0)
    assert sum(call["per_worker"].values()) == n
    assert set(call["per_worker"]) <= set(client.scheduler_info(n_workers=-1)["workers"])
    assert call["ended"] >= call["started"]
    # the caller is this test process (a script), on this host
    assert call["caller"]["kind"] == "script" and call["caller"]["pid"] > 0
    # batches: fewer Dask tasks than inputs, yet the counts above are inputs
    tasks = client.run_on_scheduler(
        lambda dask_scheduler, cid=call["call_id"]: sum(
            1 for t in dask_scheduler.transition_log if isinstance(t[0], str) and cid in t[0] and t[2] == "memory"
        )
    )
    assert 0 < tasks < n


def test_failures_with_return_exceptions_are_counted(client: Client) -> None:
    n = 210
    results = list(tele_fails_on_sevens.map(range(n), return_exceptions=True))
    n_failed = sum(isinstance(r, ValueError) for r in results)
    assert n_failed == len(range(0, n, 7))
    call = wait_for_call(client, ended("tele_fails_on_sevens"))
    assert (call["done"], call["failed"], call["total"]) == (n - n_failed, n_failed, n)
    assert call["state"] == "done"  # the caller asked for exceptions as results


def test_failed_spawn_and_remote_kinds(client: Client) -> None:
    with pytest.raises(RuntimeError):
        tele_boom.spawn().get(timeout=30)
    call = wait_for_call(client, ended("tele_boom"))
    assert (call["kind"], call["state"], call["failed"], call["done"], call["total"]) == ("spawn", "failed", 1, 0, 1)
    assert tele_square.remote(7) == 49
    call = wait_for_call(client, lambda c: c["function"] == "tele_square" and c["kind"] == "remote" and c["ended"])
    assert (call["state"], call["done"], call["total"]) == ("done", 1, 1)


def test_one_input_calls_end_done_or_failed_never_cancelled(client: Client) -> None:
    """A small outcome reaches the caller before the scheduler hears that the task ended (it is
    pushed): the caller must not release or cancel the task before then."""
    earlier = {c["call_id"] for c in query.calls_snapshot(client)["calls"]}
    calls = [tele_square.spawn(i) for i in range(10)]
    assert [tele_square.remote(i) for i in range(20)] == [i * i for i in range(20)]
    assert [asyncio.run(tele_square.remote.aio(i)) for i in range(5)] == [i * i for i in range(5)]
    assert [call.get(timeout=30) for call in calls] == [i * i for i in range(10)]
    for _ in range(5):
        with pytest.raises(RuntimeError):
            tele_boom.remote()
    records: list[dict] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        records = [c for c in query.calls_snapshot(client)["calls"] if c["call_id"] not in earlier
                   and c["function"] in ("tele_square", "tele_boom") and c["kind"] in ("remote", "spawn")]
        if len(records) >= 40 and all(c["ended"] and c["running"] == 0 for c in records):
            break
        time.sleep(0.05)
    squares = [(c["state"], c["done"]) for c in records if c["function"] == "tele_square"]
    booms = [(c["state"], c["failed"]) for c in records if c["function"] == "tele_boom" and c["kind"] == "remote"]
    assert squares == [("done", 1)] * 35
    assert booms == [("failed", 1)] * 5


def test_retries_are_counted(client: Client, tmp_path: Path) -> None:
    assert list(tele_flaky.map([str(tmp_path)] * 5, range(5))) == list(range(5))
    call = wait_for_call(client, ended("tele_flaky"))
    assert (call["done"], call["failed"], call["retried"], call["state"]) == (5, 0, 5, "done")


def test_cancel_from_another_client_stops_the_map(client: Client, local_cluster: Any) -> None:
    errors: list[BaseException] = []
    results: list[int] = []

    def consume() -> None:
        try:
            results.extend(tele_slow.map(range(200)))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    running = wait_for_call(client, lambda c: c["function"] == "tele_slow" and c["state"] == "running" and c["running"] > 0)
    with Client(local_cluster.scheduler_address, set_as_default=False) as other:  # e.g. the JupyterLab server
        assert query.cancel(other, running["call_id"]) is True
        assert query.cancel(other, running["call_id"]) is False  # already over
        with pytest.raises(NotFoundError):
            query.cancel(other, "0123456789abcdef0123")
    thread.join(30)
    assert not thread.is_alive()
    assert errors and isinstance(errors[0], InputCancellation), errors
    call = nothing_running(client, running["call_id"])
    assert call["state"] == "cancelled"
    done = stays(lambda: wait_for_call(client, lambda c: c["call_id"] == running["call_id"])["done"])
    assert done < 200  # the cluster starts no more of its inputs


def test_spawn_cancel_is_seen_as_cancelled(client: Client) -> None:
    call = tele_slow.spawn(1)
    wait_for_call(client, lambda c: c["call_id"] == call.object_id and c["running"] == 1)
    call.cancel()
    seen = wait_for_call(client, lambda c: c["call_id"] == call.object_id and c["ended"] is not None)
    assert seen["state"] == "cancelled"


def test_late_joiner_and_second_client_see_the_same_calls(client: Client, local_cluster: Any) -> None:
    list(tele_square.map(range(50)))
    mine = wait_for_call(client, ended("tele_square"))
    with Client(local_cluster.scheduler_address, set_as_default=False) as late:
        theirs = query.calls_snapshot(late)
        assert theirs["version"] == 1
        assert [c["call_id"] for c in theirs["calls"]][:5] == [c["call_id"] for c in query.calls_snapshot(client)["calls"]][:5]
        seen = {c["call_id"]: c for c in theirs["calls"]}
        assert seen[mine["call_id"]]["done"] == mine["done"]
        cluster = query.cluster_snapshot(late)
        assert cluster["workers"] == 2 and cluster["threads"] == 2 and cluster["memory"] > 0
        assert cluster["address"] == local_cluster.scheduler_address and cluster["gpus"] == []


def test_plugin_installed_once(client: Client, local_cluster: Any) -> None:
    """Every nbfan connection installs the plugin idempotently: the counts survive reconnects."""
    list(tele_square.map(range(20)))
    before = query.calls_snapshot(client)["calls"]
    nbfan.connect(local_cluster.scheduler_address)
    again = nbfan.connect(local_cluster.scheduler_address)
    names = again.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.plugins))
    assert names.count(PLUGIN_NAME) == 1
    after = query.calls_snapshot(again)["calls"]
    # the most recent calls are still there (older ones may leave the bounded finished history)
    assert {c["call_id"] for c in before[:20]} <= {c["call_id"] for c in after}


def test_finished_history_is_bounded() -> None:
    now = [1000.0]
    tracker = CallTracker(clock=lambda: now[0])
    caller = {"label": "x", "kind": "process", "host": "h", "pid": 1, "notebook": None}
    for i in range(MAX_FINISHED + 50):
        cid = f"{i:020x}"
        tracker.call_started(cid, function="f", app=None, kind="spawn", caller=caller, started=now[0], owner=None)  # type: ignore[arg-type]
        tracker.call_total(cid, 1)
        tracker.task_processing(cid, 1)
        tracker.task_left_processing(cid, 0, 1, "memory", "tcp://w:1")
        now[0] += 1
    tracker.task_processing("f" * 20, 3)  # one still running
    calls = tracker.snapshot()["calls"]
    assert len(calls) == MAX_FINISHED + 1
    assert calls[0]["call_id"] == "f" * 20 and calls[0]["state"] == "running" and calls[0]["running"] == 3
    assert calls[1]["call_id"] == f"{MAX_FINISHED + 49:020x}"  # most recently finished next
    assert all(c["state"] == "done" for c in calls[1:])


def test_telemetry_off_announces_nothing(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def announced() -> int:
        return sum(c["function"] == "tele_square" for c in query.calls_snapshot(client)["calls"])

    before = announced()
    monkeypatch.setattr(nbfan.config, "telemetry", False)
    assert list(tele_square.map(range(10))) == [x * x for x in range(10)]
    assert tele_square.remote(3) == 9
    monkeypatch.setattr(nbfan.config, "telemetry", True)
    marker = tele_slow.spawn(0)  # announced on the same client stream, after anything the calls above sent
    wait_for_call(client, lambda c: c["call_id"] == marker.object_id)
    marker.cancel()
    assert announced() == before


def test_kernel_caller_is_its_notebook(client: Client, local_cluster: Any) -> None:
    """A call from a Jupyter kernel is labelled with the notebook's file name (Jupyter tells
    kernels it launches their notebook's path in JPY_SESSION_NAME)."""
    import os

    from conftest import REPO
    from jupyter_client.manager import start_new_kernel

    env = {
        **os.environ,
        "NBFAN_SCHEDULER": local_cluster.scheduler_address,
        "JPY_SESSION_NAME": "/home/someone/work/analysis.ipynb",
        "PYTHONPATH": str(REPO),
    }
    km, kc = start_new_kernel(kernel_name="python3", env=env, startup_timeout=60)
    try:
        code = (
            "import nbfan\napp = nbfan.App('kernel-app')\n"
            "@app.function\ndef tele_in_kernel(x):\n    return x + 1\n"
            "assert tele_in_kernel.remote(1) == 2\n"
        )
        reply = kc.execute_interactive(code, timeout=90)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    call = wait_for_call(client, ended("tele_in_kernel"))
    assert call["caller"]["kind"] == "kernel"
    assert call["caller"]["label"] == call["caller"]["notebook"] == "analysis.ipynb"
    assert call["state"] == "done" and call["app"] == "kernel-app"


@pytest.mark.gpu
def test_gpu_figures_come_from_dask_nvml_metrics() -> None:
    from nbfan.cluster.gpus import discover_gpus
    from nbfan.cluster.local import start_local_cluster

    gpus = discover_gpus()
    if not gpus:
        pytest.skip("no NVIDIA GPU on this machine")
    cluster = start_local_cluster(1, gpus=gpus)
    try:
        with Client(cluster, set_as_default=False) as c:
            c.wait_for_workers(len(gpus) + 1, timeout=60)
            time.sleep(1.5)  # one metrics heartbeat
            snap = query.cluster_snapshot(c)
    finally:
        cluster.close()
    assert len(snap["gpus"]) == len(gpus)
    for gpu in snap["gpus"]:
        assert gpu["memory_total"] and gpu["memory_total"] > 0
        assert gpu["utilization"] is not None and 0 <= gpu["utilization"] <= 100
        assert gpu["memory_used"] is not None and gpu["memory_used"] >= 0


def test_spawn_map_is_tracked_and_cancellable_from_anywhere(client: Client) -> None:
    call = tele_square.spawn_map(range(300))
    seen = wait_for_call(client, lambda c: c["call_id"] == call.object_id and c["ended"] is not None)
    assert (seen["kind"], seen["state"], seen["done"], seen["total"]) == ("spawn_map", "done", 300, 300)

    long = tele_slow.spawn_map(range(100))
    wait_for_call(client, lambda c: c["call_id"] == long.object_id and c["running"] > 0)
    assert query.cancel(client, long.object_id) is True
    deadline = time.monotonic() + 30
    while long.progress().state != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert long.progress().state == "cancelled"  # the map itself stopped, not just its view
    seen = wait_for_call(client, lambda c: c["call_id"] == long.object_id)
    assert seen["state"] == "cancelled" and seen["done"] < 100


def test_worker_reports_count_with_their_batch_whatever_the_order() -> None:
    """Failures reach the scheduler apart from the batch's end: they count once the batch ends,
    in either order, and not at all for a batch that never ends (cancelled meanwhile)."""
    tracker = CallTracker()
    cid = "ab" * 10
    for start in (0, 10, 20):
        tracker.task_processing(cid, 10)
    tracker.batch_report(cid, 0, failed=2, skipped=1, retried=3)  # before its batch ends
    tracker.task_left_processing(cid, 0, 10, "memory", "tcp://w:1")
    tracker.task_left_processing(cid, 10, 10, "memory", "tcp://w:1")
    tracker.batch_report(cid, 10, failed=1)  # after its batch ended
    tracker.batch_report(cid, 20, skipped=10)  # its batch is then forgotten, unfinished
    tracker.task_left_processing(cid, 20, 10, "released", None)
    tracker.task_forgotten(cid, 20, 10)
    call = tracker.snapshot()["calls"][0]
    assert (call["done"], call["failed"], call["retried"], call["running"]) == (20 - 4, 3, 3, 0)


@app.generator
def tele_gen_fails(n: int):
    yield 1
    raise ValueError(f"generator {n} broke")


def test_remote_gen_that_raises_is_failed_not_cancelled(client: Client) -> None:
    with pytest.raises(ValueError, match="generator 3 broke"):
        list(tele_gen_fails.remote_gen(3))
    call = wait_for_call(client, ended("tele_gen_fails"))
    assert (call["kind"], call["state"]) == ("remote_gen", "failed")

