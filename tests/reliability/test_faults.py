"""Fault drills on real clusters: workers SIGKILLed mid-map, an input that kills its worker,
the caller killed mid-map, the scheduler gone mid-map. Numbers are printed (`pytest -s`)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import pytest
from distributed import Client
from waiting import wait_until

import nbfan
from nbfan.cluster.local import start_local_cluster
from nbfan.exception import ClusterConnectionError, ExecutionError
from tests.reliability.helpers import child_env, kill_group, nbfan_cli

app = nbfan.App("fault-drills")
WORKERS = 3


@app.function
def double_and_log(x: int, log: str) -> int:
    time.sleep(0.002)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, f"{x}\n".encode())
    os.close(fd)
    return 2 * x


@app.function
def poison_37(x: int) -> int:
    if x == 37:
        os._exit(1)  # kills its own worker process, every time
    time.sleep(0.001)
    return x


@app.function
def slow(x: int) -> int:
    time.sleep(0.2)
    return x


@app.function
def frames(x: int) -> Iterator[int]:
    for i in range(300):
        time.sleep(0.2)
        yield x * 1000 + i


@app.function
def sleepy(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def nbfan_tasks(client: Client) -> int:
    """nbfan tasks the scheduler still holds (any call)."""
    return client.run_on_scheduler(
        lambda dask_scheduler: sum(1 for k in dask_scheduler.tasks if str(k).startswith("nbfan-"))
    )


@pytest.fixture(scope="module")
def drill_cluster() -> Iterator[Any]:
    """Three single-thread nanny workers; a dead worker is restarted by its nanny.
    allowed-failures=1: the poison drill kills at most 2 workers in a row per phase, so one
    always stays up however slowly the others restart on a loaded machine (with Dask's default
    of 3, four deaths in a row can leave no worker, and queued tasks hit no-workers-timeout).
    worker-saturation=1.0: each worker holds only the task it runs, so a death is charged to
    that task alone, not to an innocent task queued behind it."""
    settings = {"distributed.scheduler.allowed-failures": 1, "distributed.scheduler.worker-saturation": 1.0}
    with dask.config.set(settings):
        cluster = start_local_cluster(WORKERS, gpus=[])
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def drill_client(drill_cluster: Any) -> Iterator[Client]:
    client = nbfan.connect(drill_cluster)
    client.wait_for_workers(WORKERS, timeout=120)
    try:
        yield client
    finally:
        nbfan.disconnect()


def test_map_survives_three_worker_kills(drill_client: Client, tmp_path: Path) -> None:
    """10,000 inputs, 3 worker processes SIGKILLed at random moments: every result exactly once, in order."""
    log = str(tmp_path / "executions.log")
    seed = random.randrange(2**32)
    rnd = random.Random(seed)
    kills: list[tuple[float, int]] = []
    started = time.monotonic()

    def killer() -> None:
        for _ in range(3):
            time.sleep(rnd.uniform(0.3, 1.0))
            pids = drill_client.run(os.getpid)
            _, pid = rnd.choice(sorted(pids.items()))
            os.kill(pid, signal.SIGKILL)
            kills.append((time.monotonic() - started, pid))

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    results = list(double_and_log.map(range(10_000), kwargs={"log": log}))
    elapsed = time.monotonic() - started
    thread.join(timeout=30)

    assert results == [2 * x for x in range(10_000)], f"seed {seed}"
    assert len(kills) == 3 and kills[-1][0] < elapsed, f"the kills must land during the map (seed {seed})"
    executions = [int(line) for line in Path(log).read_text().split()]
    assert set(executions) == set(range(10_000))
    print(
        f"\nDRILL worker-kills: inputs=10000 kills={len(kills)} at {[round(t, 2) for t, _ in kills]}s "
        f"results=10000 in order, re-executions={len(executions) - 10_000} map_s={elapsed:.1f} seed={seed}"
    )
    wait_until(lambda: nbfan_tasks(drill_client) == 0, timeout=10)  # releases travel asynchronously


@app.function
def sized_and_log(nbytes: int, log: str) -> bytes:
    with open(log, "a") as out:
        out.write(f"{nbytes}\n")
    return bytes(nbytes)


@pytest.fixture
def lone_worker(tmp_path: Path) -> Iterator[tuple[Any, Client]]:
    """A cluster of one in-process worker, connected: closing that worker loses what it keeps."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        client = nbfan.connect(cluster)
        try:
            yield cluster, client
        finally:
            nbfan.disconnect()


def replace_the_worker(cluster: Any, client: Client) -> None:
    (worker,) = cluster.workers.values()
    cluster.sync(worker.close)
    cluster.scale(2)  # the closed one still counts in the spec: this starts one more
    client.wait_for_workers(1, timeout=60)


def reattached(object_id: str) -> bytes | str:
    """The call's result by its id, or why the cluster no longer has it."""
    try:
        return nbfan.FunctionCall.from_id(object_id).get(timeout=60)
    except nbfan.exception.NotFoundError as exc:
        return str(exc)


def test_a_small_spawn_result_is_kept_off_the_workers(lone_worker: tuple[Any, Client], tmp_path: Path) -> None:
    """A spawned call's small outcome is kept on the scheduler for re-attaching, not on a worker:
    its task goes as soon as it finished (a worker holding it could never be retired), even while
    the caller keeps its handle, and its worker leaving runs nothing again."""
    cluster, client = lone_worker
    log = str(tmp_path / "executions.log")
    call = sized_and_log.spawn(100, log)
    assert call.get(timeout=60) == bytes(100)
    wait_until(lambda: nbfan_tasks(client) == 0, timeout=30, what="the finished task to go")
    replace_the_worker(cluster, client)
    assert reattached(call.object_id) == bytes(100)
    assert call.get() == bytes(100)  # the handle reads it again
    assert Path(log).read_text().split() == ["100"]  # it ran once


def test_a_large_read_spawn_result_is_not_run_again_after_its_worker_left(lone_worker: tuple[Any, Client],
                                                                          tmp_path: Path) -> None:
    """A result too large to push stays on its worker for re-attaching; once read, that worker
    leaving lets it go (a later from_id says why) instead of Dask running the call again on the
    next worker (an autoscaled cluster would even start one for it)."""
    cluster, client = lone_worker
    log = str(tmp_path / "executions.log")
    call = sized_and_log.spawn(200_000, log)
    assert len(call.get(timeout=60)) == 200_000
    object_id = call.object_id
    del call  # only the cluster's retention holds the result now
    wait_until(lambda: nbfan_tasks(client) == 1, timeout=30, what="the result kept on the worker")
    replace_the_worker(cluster, client)

    def why_gone() -> str:
        result = reattached(object_id)
        return result if isinstance(result, str) else ""

    assert "worker that kept it left the cluster" in wait_until(why_gone, timeout=60)
    wait_until(lambda: nbfan_tasks(client) == 0, timeout=30, what="the dropped result's task to go")
    assert Path(log).read_text().split() == ["200000"]  # it ran once


def test_input_that_kills_its_worker_fails_alone(drill_client: Client) -> None:
    started = time.monotonic()
    results = list(poison_37.map(range(200), return_exceptions=True))
    elapsed = time.monotonic() - started
    failed = {i: r for i, r in enumerate(results) if isinstance(r, BaseException)}
    assert list(failed) == [37], "only the poisoned input fails; its batch-mates are re-run one by one"
    error = failed[37]
    assert isinstance(error, ExecutionError) and "input 37" in str(error) and "died" in str(error)
    assert "os._exit" in str(error)  # says what kind of code does this
    assert [r for i, r in enumerate(results) if i != 37] == [x for x in range(200) if x != 37]

    started_raise = time.monotonic()
    with pytest.raises(ExecutionError, match="input 37") as info:
        list(poison_37.map(range(100)))
    detect = time.monotonic() - started_raise
    assert getattr(info.value, "input_index", None) == 37
    wait_until(lambda: nbfan_tasks(drill_client) == 0, timeout=10)
    drill_client.wait_for_workers(WORKERS, timeout=120)  # the nannies brought every worker back
    print(f"\nDRILL poison-input: inputs=200 failed=[37] return_exceptions_s={elapsed:.1f} raise_s={detect:.1f}")


CALLER = """
import os, time, nbfan
app = nbfan.App("killed-caller")

@app.function
def mark(x):
    fd = os.open({marks!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, f"{{x}} {{time.time()}}\\n".encode())
    os.close(fd)
    time.sleep(0.2)
    return x

if __name__ == "__main__":
    for _ in mark.map(range(100_000)):
        pass
"""


def test_killed_caller_stops_its_map_within_5s(drill_client: Client, drill_cluster: Any, tmp_path: Path) -> None:
    marks = tmp_path / "marks.txt"
    script = tmp_path / "caller.py"
    script.write_text(CALLER.format(marks=str(marks)))
    proc = subprocess.Popen(
        [sys.executable, str(script)], env=child_env(NBFAN_SCHEDULER=drill_cluster.scheduler_address),
        start_new_session=True,
    )
    try:
        wait_until(lambda: marks.exists() and len(marks.read_text().splitlines()) >= 20, timeout=60)
        killed_at = time.time()
        kill_group(proc)
        gone_s = time.time() - killed_at
        wait_until(lambda: nbfan_tasks(drill_client) == 0, timeout=5)
        gone_s = time.time() - killed_at
        time.sleep(max(0.0, 5.5 - (time.time() - killed_at)))
    finally:
        kill_group(proc)
    starts = [float(line.split()[1]) for line in marks.read_text().splitlines()]
    late = [t - killed_at for t in starts if t > killed_at + 5]
    after = [t - killed_at for t in starts if t > killed_at]
    assert not late, f"inputs still started {late} s after the caller died"
    print(f"\nDRILL killed-caller: inputs_started={len(starts)} started_after_kill={len(after)} tasks_gone_s={gone_s:.2f}")


def test_scheduler_gone_mid_map_raises_within_30s(tmp_path: Path) -> None:
    home = tmp_path / "home"
    up = nbfan_cli("cluster", "up", "--workers", "3", home=home)  # one each: the call, the stream, the map
    try:
        assert up.returncode == 0, up.stderr
        state = json.loads((home / "cluster.json").read_text())
        nbfan.connect(state["address"])
        pending = sleepy.spawn(60)  # a single call waiting when the scheduler goes
        streamed: dict[str, Any] = {}

        def stream() -> None:  # a generator flat-map streaming when the scheduler goes
            try:
                for _ in frames.map([1]):  # one long stream: one worker, the map has another
                    pass
            except BaseException as exc:
                streamed["error"], streamed["at"] = exc, time.monotonic()

        streamer = threading.Thread(target=stream, daemon=True)
        streamer.start()
        results: list[int] = []
        killed: dict[str, float] = {}

        def kill_scheduler() -> None:
            try:
                wait_until(lambda: len(results) >= 5, timeout=30)
            finally:  # kill in any case: the map must not wait forever
                killed["at"] = time.monotonic()
                os.killpg(state["pid"], signal.SIGKILL)  # the daemon: scheduler, nannies and workers

        threading.Thread(target=kill_scheduler, daemon=True).start()
        with pytest.raises(ClusterConnectionError, match="lost the Dask scheduler") as info:
            for r in slow.map(range(1000)):
                results.append(r)
        detect = time.monotonic() - killed["at"]
        assert detect < 30, f"took {detect:.1f}s to notice the scheduler was gone"
        assert len(results) >= 5 and results == list(range(len(results)))  # what arrived is right and in order
        assert state["address"] in str(info.value) and "run the map again" in str(info.value)
        with pytest.raises(ClusterConnectionError, match="lost the Dask scheduler"):
            pending.get(timeout=30)
        streamer.join(timeout=30)
        assert isinstance(streamed.get("error"), ClusterConnectionError), streamed
        stream_detect = streamed["at"] - killed["at"]
        assert stream_detect < 30
        print(f"\nDRILL scheduler-gone: results_before={len(results)} map_detect_s={detect:.1f} "
              f"generator_map_detect_s={stream_detect:.1f}")
    finally:
        nbfan.disconnect()
        nbfan_cli("cluster", "down", home=home)
