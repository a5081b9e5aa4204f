"""Cluster-wide concurrency caps (`concurrency_limit=N`, alias `max_containers`), measured from
the start/end timestamps the tasks themselves record, on a real multi-worker cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import LocalCluster
from overlap import max_overlap

import nbfan
from nbfan.scheduler.caps import allocate, cap_resource, function_identity, worker_capacity
from nbfan.scheduler.rpc import cap_shares

REPO = Path(__file__).resolve().parents[2]


# -- the split of a cap over workers (pure) -----------------------------------------------------


def test_allocate_sums_to_the_cap_and_spreads_over_free_slots() -> None:
    shares = allocate(4, {"a": 2, "b": 2, "c": 2}, {})
    assert sum(shares.values()) == 4
    assert max(shares.values()) == 2 and sorted(shares.values()) == [1, 1, 2]


def test_allocate_cap_smaller_than_workers_leaves_some_at_zero() -> None:
    shares = allocate(1, {"a": 1, "b": 1, "c": 1}, {})
    assert sorted(shares.values()) == [0, 0, 1]


def test_allocate_keeps_shares_and_moves_only_surplus_to_a_new_worker() -> None:
    before = allocate(6, {"a": 2, "b": 2}, {})
    assert before == {"a": 3, "b": 3}  # more units than slots: each holds one it cannot use
    after = allocate(6, {"a": 2, "b": 2, "c": 2}, before)
    assert after == {"a": 2, "b": 2, "c": 2}
    gone = allocate(6, {"a": 2, "c": 2}, {k: v for k, v in after.items() if k != "b"})
    assert sum(gone.values()) == 6 and gone["a"] >= 2 and gone["c"] >= 2


def test_allocate_lower_cap_shrinks_and_prefers_workers_without_gpus() -> None:
    assert sum(allocate(2, {"a": 4, "b": 4}, {"a": 3, "b": 3}).values()) == 2
    shares = allocate(1, {"gpu": 4, "cpu": 1}, {}, avoid={"gpu": 1, "cpu": 0})
    assert shares == {"gpu": 0, "cpu": 1}


def test_worker_capacity_counts_slots_for_the_function_asks() -> None:
    assert worker_capacity(4, {"GPU": 2, "GPU-A100": 2}, {"GPU": 1, "GPU-A100": 1}) == 2
    assert worker_capacity(4, {}, {"GPU": 1}) == 0
    assert worker_capacity(2, {"CPU": 2}, {"CPU": 0.5}) == 2


def test_function_identity_is_app_and_qualified_name() -> None:
    assert function_identity("grid", "Model.evaluate") == "grid.Model.evaluate"
    assert function_identity(None, "f", "mymod") == "mymod.f"
    assert cap_resource("grid search.f") == "nbfan-cap-grid_search.f"


# -- on a real cluster ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """Three workers with two threads each (six slots), reachable over TCP by other processes."""
    cluster = LocalCluster(
        n_workers=3, threads_per_worker=2, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    )
    yield cluster
    cluster.close()


@pytest.fixture
def capped_client(cluster: LocalCluster) -> Iterator[object]:
    client = nbfan.connect(cluster)
    yield client
    nbfan.disconnect()


app = nbfan.App("test-concurrency")


@app.function(concurrency_limit=1)
def one_at_a_time(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


@app.function
def uncapped(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


@app.function(max_containers=8)
def wide(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


CLIENT_CODE = r"""
import json, os, sys, time
import nbfan
address, ready, go, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
nbfan.connect(address)
app = nbfan.App("test-concurrency-two-clients")

@app.function(concurrency_limit=limit)
def hold(i):
    import time
    start = time.time()
    time.sleep(0.4)
    return start, time.time()

open(ready, "w").close()
deadline = time.time() + 60
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.01)
print("RESULT" + json.dumps(list(hold.map(range(8)))))
"""


def _two_clients(address: str, limit: int, tmp_path: Path) -> list[list[tuple[float, float]]]:
    """Two client processes map the same capped function at the same moment."""
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))}
    procs = []
    try:
        for i in range(2):
            ready = tmp_path / f"ready-{i}"
            procs.append(
                (ready, subprocess.Popen(
                    [sys.executable, "-c", CLIENT_CODE, address, str(ready), str(go), str(limit)],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                ))
            )
        deadline = time.time() + 90
        while not all(r.exists() for r, _ in procs):
            assert time.time() < deadline, "client processes did not start"
            assert all(p.poll() is None for _, p in procs), [p.communicate() for _, p in procs]
            time.sleep(0.05)
        go.touch()
        results = []
        for _, proc in procs:
            out, err = proc.communicate(timeout=90)
            assert proc.returncode == 0, err
            line = next(line for line in out.splitlines() if line.startswith("RESULT"))
            results.append([tuple(x) for x in json.loads(line[len("RESULT"):])])
        return results
    finally:
        for _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


@pytest.mark.parametrize("limit", [2, 1])
def test_two_client_processes_share_one_cap(
    cluster: LocalCluster, capped_client: object, tmp_path: Path, limit: int
) -> None:
    first, second = _two_clients(cluster.scheduler_address, limit, tmp_path)
    assert len(first) == len(second) == 8
    both = first + second
    # the two maps really ran at the same time (their spans overlap)...
    assert max(s for s, _ in first) > min(s for s, _ in second) and max(s for s, _ in second) > min(s for s, _ in first)
    # ...and together never had more than `limit` inputs running, on six free threads
    assert max_overlap(both) <= limit
    assert max_overlap(both) >= limit  # the cap is a cap, not a serialisation
    shares = cap_shares(capped_client)[cap_resource("test-concurrency-two-clients.hold")]
    assert sum(shares.values()) == limit  # registered by two processes, still one cap


def test_cap_below_worker_count_and_no_parked_threads(capped_client: object) -> None:
    """Cap 1 on three workers: one input at a time; the waiting ones hold no worker thread,
    so an uncapped map runs alongside on the other slots."""
    calls = [one_at_a_time.spawn(0.5) for _ in range(4)]
    free = list(uncapped.map([0.3] * 5))
    capped = [call.get(timeout=60) for call in calls]
    assert max_overlap(capped) == 1
    assert max_overlap(free) >= 4  # five free slots while three capped inputs wait
    assert min(s for s, _ in free) < max(s for s, _ in capped)  # ran while capped work was still queued


def test_shares_follow_workers_joining_and_leaving(cluster: LocalCluster, capped_client: object, tmp_path: Path) -> None:
    """Cap 8 on six slots: two units sit where they cannot run; a joining worker gets them, a
    restarted one gets them back, and when it leaves they return, so the cap stays 8 and no unit
    is lost on a dead worker."""
    name = cap_resource("test-concurrency.wide")
    list(wide.map([0.0] * 2))
    client = capped_client
    assert sum(cap_shares(client)[name].values()) == 8
    worker = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address, "--nthreads", "2",
         "--no-dashboard", "--name", "joiner"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        client.wait_for_workers(4, timeout=60)

        def joiner_share() -> int:
            info = client.scheduler_info(n_workers=-1)["workers"]
            addr = next(a for a, w in info.items() if w.get("name") == "joiner")
            return int(cap_shares(client)[name].get(addr, 0))

        def assert_joiner_has_its_share() -> None:
            deadline = time.time() + 20
            while joiner_share() != 2:
                assert time.time() < deadline, cap_shares(client)
                time.sleep(0.1)
            totals = client.run(lambda dask_worker: dask_worker.state.total_resources.get(name, 0))
            assert sum(totals.values()) == 8

        assert_joiner_has_its_share()
        runs = list(wide.map([0.3] * 16))
        assert 2 <= max_overlap(runs) <= 8
        # a restarted worker (its nanny starts a fresh process) gets its share again
        joiner = next(a for a, w in client.scheduler_info(n_workers=-1)["workers"].items() if w.get("name") == "joiner")
        client.restart_workers([joiner], timeout=60)
        assert_joiner_has_its_share()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    deadline = time.time() + 30
    while len(client.scheduler_info(n_workers=-1)["workers"]) != 3 or sum(cap_shares(client)[name].values()) != 8:
        assert time.time() < deadline, cap_shares(client)
        time.sleep(0.1)
    runs = list(wide.map([0.2] * 12))
    assert max_overlap(runs) <= 8 and len(runs) == 12


@app.function(concurrency_limit=3)
def lowered(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def test_lowering_a_cap_with_work_queued_strands_nothing(capped_client: object) -> None:
    """Cap 3 spreads one unit per worker; lowering it to 1 mid-run takes two workers' units,
    and the inputs already queued on them move to the worker that kept one."""
    calls = [lowered.spawn(0.4) for _ in range(9)]
    time.sleep(0.6)  # the first inputs run; the rest wait on their workers
    calls.append(lowered.with_options(concurrency_limit=1).spawn(0.4))  # registers the lower cap first
    lowered_at = time.time()
    runs = [call.get(timeout=60) for call in calls]
    assert len(runs) == 10 and max_overlap(runs) >= 2  # three ran at once before
    late = [r for r in runs if r[0] > lowered_at + 0.45]  # inputs begun before have ended by then
    assert len(late) >= 2 and max_overlap(late) == 1


DETACHED_CODE = r"""
import sys, time
import nbfan
nbfan.connect(sys.argv[1])
app = nbfan.App("test-concurrency-detached")

@app.function(concurrency_limit=2)
def hold(seconds):
    import time
    start = time.time()
    time.sleep(seconds)
    return start, time.time()

print("ID" + hold.spawn_map([1.5] * 8).object_id, flush=True)  # ~6 s at cap 2: still running when this exits
"""

detached_app = nbfan.App("test-concurrency-detached")


@detached_app.function(concurrency_limit=2)
def hold(seconds: float) -> tuple[float, float]:  # the same function (app + name) as the script's
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def test_a_detached_spawn_map_obeys_the_cap_after_its_caller_exits(cluster: LocalCluster, capped_client: object) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))}
    script = subprocess.run(
        [sys.executable, "-c", DETACHED_CODE, cluster.scheduler_address],
        capture_output=True, text=True, env=env, timeout=120,
    )
    caller_gone = time.time()
    assert script.returncode == 0, script.stderr
    object_id = next(line[2:] for line in script.stdout.splitlines() if line.startswith("ID"))
    local_submitted = time.time()
    here = list(hold.map([0.5] * 6))
    detached = [tuple(r) for r in nbfan.MapCall.from_id(object_id).get(timeout=60)]
    assert len(detached) == 8 and any(start > caller_gone for start, _ in detached)  # went on without its caller
    assert local_submitted < max(e for _, e in detached)  # the local map was asked for while the detached one ran...
    assert max_overlap(here + detached) == 2  # ...and both together never ran more than the cap


# -- @nbfan.concurrent: several inputs at once per worker slot ---------------------------------


@app.function
@nbfan.concurrent(max_inputs=4)
def waits(seconds: float) -> tuple[float, float, str]:
    from distributed import get_worker

    start = time.time()
    time.sleep(seconds)
    print(f"waited {seconds}")
    return start, time.time(), get_worker().address


@app.function
@nbfan.concurrent(max_inputs=3)
async def waits_async(seconds: float) -> tuple[float, float, str]:
    import asyncio

    from distributed import get_worker

    start = time.time()
    await asyncio.sleep(seconds)
    return start, time.time(), get_worker().address


def per_worker_overlap(results: list[tuple[float, float, str]]) -> int:
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for start, end, worker in results:
        by_worker.setdefault(worker, []).append((start, end))
    return max(max_overlap(intervals) for intervals in by_worker.values())


def test_a_concurrent_function_runs_several_inputs_at_once_per_slot(client: object) -> None:
    threads = per_worker_overlap(list(waits.map([0.3] * 16)))
    coroutines = per_worker_overlap(list(waits_async.map([0.3] * 12)))
    assert threads == 4 and coroutines == 3  # each worker has one slot: max_inputs at once, never more
    capped = waits.with_options(concurrency_limit=2)  # the cap counts inputs, not tasks
    results = list(capped.map([0.2] * 8))
    assert max_overlap([(start, end) for start, end, _ in results]) == 2
    plain = waits.with_concurrency(max_inputs=1)
    assert per_worker_overlap(list(plain.map([0.05] * 6))) == 1
    with pytest.raises(nbfan.exception.InvalidError, match="max_inputs"):
        nbfan.concurrent(max_inputs=0)


def test_with_batching_gathers_single_inputs_into_lists(client: object) -> None:
    @app.function
    def doubles(xs: list[int]) -> list[int]:
        return [2 * x for x in xs]

    batched = doubles.with_batching(max_batch_size=4, wait_ms=50)
    assert batched.remote(5) == 10 and list(batched.map(range(10))) == [2 * x for x in range(10)]
