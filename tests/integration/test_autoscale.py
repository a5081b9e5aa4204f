"""An adaptive local cluster (`nbfan cluster up --adaptive`): no worker while idle, workers up to
the maximum while a map waits for slots, none again once they were not needed for the
scale-down window; `nbfan cluster status` says so, with why."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.reliability.helpers import child_env, nbfan_cli
from tests.waiting import stays, wait_until

pytestmark = pytest.mark.timeout(300)

MAP = """\
import json
import nbfan

app = nbfan.App("autoscale")

@app.function
def where(x):
    import time
    from distributed import get_worker
    time.sleep(0.3)
    return get_worker().address

print(json.dumps(sorted(set(where.map(range(40))))))
"""


def workers(home: Path) -> int:
    status = nbfan_cli("cluster", "status", home=home)
    assert status.returncode == 0, status.stderr
    return int(next(line.split()[1] for line in status.stdout.splitlines() if line.startswith("workers:")))


def test_an_adaptive_cluster_goes_from_none_to_its_maximum_and_back(tmp_path: Path) -> None:
    import subprocess
    import sys

    home = tmp_path / "home"
    up = nbfan_cli("cluster", "up", "--adaptive", "--min-workers", "0", "--max-workers", "2",
                   "--scaledown-window", "2", home=home)
    assert up.returncode == 0, up.stderr
    assert "adaptive: 0 to 2 CPU workers, each stopped after 2s unneeded" in up.stdout
    try:
        assert workers(home) == 0  # nothing held while idle
        script = tmp_path / "map.py"
        script.write_text(textwrap.dedent(MAP))
        state = json.loads((home / "cluster.json").read_text())
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240,
                                env=child_env(NBFAN_SCHEDULER=state["address"], NBFAN_HOME=str(home)))
        assert result.returncode == 0, result.stderr
        assert len(json.loads(result.stdout)) == 2  # the map ran on the maximum
        wait_until(lambda: workers(home) == 0, timeout=60, interval=0.5, what="the idle workers to stop")
        status = nbfan_cli("cluster", "status", home=home).stdout
        assert "start workers" in status and "not needed for the scale-down window" in status, status
    finally:
        nbfan_cli("cluster", "down", home=home)


def test_bad_limits_are_refused_before_anything_starts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for args, why in ((["--max-workers", "1", "--min-workers", "3"], "below --min-workers"),
                      (["--scaledown-window", "0"], "seconds > 0"),
                      (["--min-workers", "-1"], "whole number"),):
        refused = nbfan_cli("cluster", "up", "--adaptive", *args, home=home)
        assert refused.returncode != 0 and why in refused.stderr, refused.stderr
    both = nbfan_cli("cluster", "up", "--adaptive", "--workers", "2", home=home)
    assert both.returncode != 0 and "not both" in both.stderr
    assert not (home / "cluster.json").exists()


def test_a_cluster_manager_the_user_brings_scales_with_nbfans_backlog() -> None:
    from distributed import LocalCluster

    import nbfan

    app = nbfan.App("autoscale-manager")

    @app.function
    def where(x: int) -> str:
        import time

        from distributed import get_worker

        time.sleep(0.3)
        return str(get_worker().address)

    with LocalCluster(n_workers=0, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        client = nbfan.connect(cluster)
        try:
            nbfan.autoscale(cluster, minimum=0, maximum=2, scaledown_window=2)
            assert len(set(where.map(range(40)))) == 2  # from none to the maximum
            wait_until(lambda: not client.scheduler_info()["workers"], timeout=60, interval=0.5,
                       what="the idle workers to stop")
            with pytest.raises(nbfan.exception.InvalidError, match="cluster manager"):
                nbfan.autoscale("tcp://127.0.0.1:1")
        finally:
            nbfan.disconnect()


def test_workers_the_autoscaler_stops_exit_quietly(capfd: pytest.CaptureFixture[str]) -> None:
    """Each worker stopped for being idle exits when its nanny closes it: no "Received heartbeat
    from unregistered worker", no "Worker process still alive after 4.0 seconds, killing" (every
    run printed them while nbfan's short stream interval reached retiring workers). Dask's own
    rarer race of the same retirement ("Invalid Worker.status transition: closing ->
    closing_gracefully", about 1 run in 12 with or without nbfan) is not nbfan's to fix."""
    from distributed import LocalCluster

    import nbfan

    app = nbfan.App("autoscale-quiet")

    @app.function
    def same(x: int) -> int:
        return x

    with LocalCluster(n_workers=0, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        nbfan.connect(cluster)
        try:
            nbfan.autoscale(cluster, minimum=0, maximum=2, scaledown_window=1)
            assert list(same.map(range(40))) == list(range(40))
            wait_until(lambda: cluster.workers, timeout=60, interval=0.1, what="a worker to start")
            wait_until(lambda: not cluster.workers, timeout=60, interval=0.1, what="the idle workers' nannies to close")
        finally:
            nbfan.disconnect()
    err = capfd.readouterr().err
    race = ("Received heartbeat from unregistered worker", "Scheduler was unaware of this worker", "still alive after")
    assert not [line for line in err.splitlines() if any(words in line for words in race)], err


def test_min_containers_keeps_a_worker_and_stats_count_the_backlog() -> None:
    from distributed import Event, LocalCluster

    import nbfan
    from nbfan.api.deploy import deploy_app, stop_app

    app = nbfan.App("autoscale-knobs")

    @app.function(min_containers=1, scaledown_window=1)
    def square(x: int) -> int:
        return x * x

    @app.function
    def held(x: int) -> int:
        from distributed import Event

        assert Event("autoscale-knobs-go").wait(120)
        return x

    with LocalCluster(n_workers=0, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        client = nbfan.connect(cluster)
        try:
            nbfan.autoscale(cluster, minimum=0, maximum=2, scaledown_window=1)

            def workers() -> int:
                return len(client.scheduler_info()["workers"])

            assert square.remote(3) == 9  # a caller is attached: its min_containers holds from now on
            assert stays(workers, quiet=5) == 1  # five decisions past both scale-down windows
            square.update_autoscaler(min_containers=0)
            wait_until(lambda: workers() == 0, timeout=60, interval=0.5, what="the last worker to stop")

            kept = nbfan.App("autoscale-deployed")
            kept.function(min_containers=1)(lambda x: x)
            deploy_app(kept)  # a deployed app's min_containers hold with no caller
            wait_until(lambda: workers() == 1, timeout=60, interval=0.5, what="the deployed app's worker")
            stop_app("autoscale-deployed")
            wait_until(lambda: workers() == 0, timeout=60, interval=0.5, what="the stopped app's worker to stop")

            calls = [held.spawn(i) for i in range(6)]  # one input a call: 2 run, 4 wait
            expected = nbfan.api.function.FunctionStats(backlog=4, num_total_runners=2, running_inputs=2)
            wait_until(lambda: held.get_current_stats() == expected, timeout=120, interval=0.2,
                       what=f"the stats of 6 held inputs on 2 workers to be {expected}")
            Event("autoscale-knobs-go", client=client).set()
            assert sorted(call.get() for call in calls) == list(range(6))
            assert held.get_current_stats() == nbfan.api.function.FunctionStats(0, 0, 0)
            # the results read are kept for re-attaching, but off the workers: they all stop
            wait_until(lambda: workers() == 0, timeout=60, interval=0.5, what="the workers to stop after the reads")
            assert [nbfan.FunctionCall.from_id(call.object_id).get() for call in calls] == list(range(6))
        finally:
            nbfan.disconnect()


def test_a_spec_cluster_scales_its_gpu_group_only_for_gpu_inputs() -> None:
    from distributed import Scheduler, SpecCluster, Worker

    import nbfan

    app = nbfan.App("autoscale-groups")

    @app.function
    def on_cpu(x: int) -> str:
        import time

        from distributed import get_worker

        time.sleep(0.2)
        return str(get_worker().name)

    @app.function(gpu="A100")
    def on_gpu(x: int) -> str:
        import time

        from distributed import get_worker

        time.sleep(0.2)
        return str(get_worker().name)

    @app.function(gpu="H100")
    def on_h100(x: int) -> int:
        return x

    gpu_spec = {"cls": Worker, "options": {"nthreads": 1, "resources": {"GPU": 1, "GPU-A100": 1}}}
    with SpecCluster(scheduler={"cls": Scheduler, "options": {"dashboard_address": ":0"}}, workers={},
                     worker={"cls": Worker, "options": {"nthreads": 1}}) as cluster:
        client = nbfan.connect(cluster)
        try:
            scaler = nbfan.autoscale(cluster, maximum=2, scaledown_window=1,
                                     groups={"a100": nbfan.WorkerGroup(gpu_spec, maximum=2)})

            def started(group: str) -> list[str]:
                return [what for _, what in scaler.events if what.startswith("start") and group in what]

            cpu_names = set(on_cpu.map(range(20)))
            assert cpu_names and not any(name.startswith("a100-") for name in cpu_names), cpu_names
            assert started("the cluster's own") and not started("group a100"), scaler.events
            wait_until(lambda: not client.scheduler_info()["workers"], timeout=60, interval=0.5,
                       what="the CPU workers to stop")

            with pytest.warns(nbfan.exception.PlacementWarning, match="starts a worker of group 'a100' for it"):
                gpu_names = set(on_gpu.map(range(20)))
            assert gpu_names and all(name.startswith("a100-") for name in gpu_names), gpu_names
            assert len(started("group a100")) >= 1 and len(started("the cluster's own")) == 1, scaler.events
            wait_until(lambda: not client.scheduler_info()["workers"], timeout=60, interval=0.5,
                       what="the A100 workers to stop")

            with pytest.raises(nbfan.exception.ResourceUnavailableError, match=r"can start only these groups "
                               r"\(a100: GPU=1, GPU-A100=1\)"):
                on_h100.remote(1)  # no group offers it: it fails at once instead of waiting forever
            scaler.stop()
        finally:
            nbfan.disconnect()
