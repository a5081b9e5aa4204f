"""`nbfan deploy` / `nbfan apps` / `Function.from_name`: deployed functions outlive the deploying
process and are callable from other processes on the same cluster."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import pytest
from clitools import SCRIPTS, run_nbfan
from conftest import run_py

import nbfan
from nbfan.cli.main import main as cli_main
from nbfan.exception import NotFoundError

DEPLOYABLE = str(SCRIPTS / "deployable.py")
MARKS_DIR = tempfile.mkdtemp(prefix="nbfan-schedule-")  # a global: it travels with the function


def test_deploy_then_call_by_name_from_other_processes(local_cluster, client):
    scheduler = local_cluster.scheduler_address
    result = run_nbfan("deploy", DEPLOYABLE, scheduler=scheduler)
    assert result.returncode == 0, result.stderr
    assert "app 'deployed-math'" in result.stdout and "greeting, square" in result.stdout

    listing = run_nbfan("apps", scheduler=scheduler)
    assert listing.returncode == 0, listing.stderr
    assert "deployed-math" in listing.stdout and "greeting, square" in listing.stdout

    # a second, unrelated process (not in the script's folder) calls the deployed function
    code = (
        "import nbfan\n"
        "sq = nbfan.Function.from_name('deployed-math', 'square')\n"
        "print(sq.remote(7), list(sq.map(range(4))), sq.spawn(5).get(timeout=60))\n"
    )
    other = run_py(code, env={"NBFAN_SCHEDULER": scheduler, "NBFAN_PROGRESS": "0"})
    assert other.returncode == 0, other.stderr
    assert other.stdout.split() == ["49", "[0,", "1,", "4,", "9]", "25"]

    # and from this process too
    assert nbfan.Function.from_name("deployed-math", "greeting").remote() == "v1"

    # a deployed class, with parameters and its set-up, from another process
    code = (
        "import nbfan\n"
        "Scaler = nbfan.Cls.from_name('deployed-math', 'Scaler')\n"
        "print(Scaler().scale.remote(5), list(Scaler(factor=10).scale.map([1, 2])))\n"
    )
    other = run_py(code, env={"NBFAN_SCHEDULER": scheduler, "NBFAN_PROGRESS": "0"})
    assert other.returncode == 0, other.stderr
    assert other.stdout.split() == ["12", "[12,", "22]"]
    with pytest.raises(NotFoundError, match="Scaler"):
        nbfan.Cls.from_name("deployed-math", "Missing")


def test_redeploy_makes_a_version_rollback_restores_one_and_stop_removes(local_cluster, client):
    scheduler = local_cluster.scheduler_address
    first = run_nbfan("deploy", DEPLOYABLE, scheduler=scheduler)
    assert first.returncode == 0, first.stderr
    version = int(first.stdout.split("as version ")[1].split(":")[0])
    again = run_nbfan("deploy", DEPLOYABLE, scheduler=scheduler, env={"DEPLOY_GREETING": "v2"})
    assert again.returncode == 0 and f"redeployed as version {version + 1}" in again.stdout, again.stdout
    assert nbfan.Function.from_name("deployed-math", "greeting").remote() == "v2"
    assert nbfan.Function.from_name("deployed-math", "greeting", version=version).remote() == "v1"
    with pytest.raises(NotFoundError, match="no version 999"):
        nbfan.Function.from_name("deployed-math", "greeting", version=999)

    rolled = run_nbfan("apps", "rollback", "deployed-math", scheduler=scheduler)
    assert rolled.returncode == 0, rolled.stderr
    assert f"now version {version + 2}, a copy of version {version}" in rolled.stdout
    assert nbfan.Function.from_name("deployed-math", "greeting").remote() == "v1"
    listing = run_nbfan("apps", scheduler=scheduler)
    assert f"{version + 2} (kept:" in listing.stdout, listing.stdout

    stopped = run_nbfan("apps", "stop", "deployed-math", scheduler=scheduler)
    assert stopped.returncode == 0, stopped.stderr
    with pytest.raises(NotFoundError, match="no deployed app 'deployed-math'"):
        nbfan.Function.from_name("deployed-math", "greeting")


def test_unknown_names_list_what_is_deployed(local_cluster, client):
    assert run_nbfan("deploy", DEPLOYABLE, scheduler=local_cluster.scheduler_address).returncode == 0
    with pytest.raises(NotFoundError) as exc:
        nbfan.Function.from_name("deployed-math", "cube")
    assert "no deployed function 'cube' in app 'deployed-math'" in str(exc.value)
    assert "deployed-math: greeting, square" in str(exc.value)


def test_deploy_needs_a_shared_cluster_and_a_named_app(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("NBFAN_SCHEDULER", raising=False)
    monkeypatch.setenv("NBFAN_HOME", str(tmp_path / "home"))
    assert cli_main(["deploy", DEPLOYABLE]) == 1
    assert "nbfan cluster up" in capsys.readouterr().err

    from nbfan.api.deploy import deploy_app

    with pytest.raises(nbfan.exception.InvalidError, match="named app"):
        deploy_app(nbfan.App())


schedule_app = nbfan.App("scheduled-app")


@schedule_app.function(schedule=nbfan.Period(seconds=1))
def every_second(marks: str = MARKS_DIR) -> None:
    import os
    import time

    with open(os.path.join(marks, "runs"), "a") as fh:
        fh.write("run\n")
    time.sleep(2.5)  # longer than the period: the runs due meanwhile are skipped


def runs() -> int:
    try:
        with open(os.path.join(MARKS_DIR, "runs")) as fh:
            return len(fh.read().split())
    except FileNotFoundError:
        return 0


def test_a_scheduled_function_runs_while_deployed_skipping_overlaps(local_cluster, client):
    from waiting import stays, wait_until

    from nbfan.api.deploy import deploy_app, stop_app
    from nbfan.api.deployed import list_apps
    from nbfan.api.queries import calls_snapshot

    result = deploy_app(schedule_app, source="test_deploy.py")
    assert result["schedules"] == {"every_second": "Period(seconds=1)"}
    try:
        wait_until(lambda: runs() >= 2, timeout=60, what="two scheduled runs")
        state = wait_until(lambda: list_apps()["scheduled-app"]["schedules"]["every_second"]["skipped"] > 0 and
                           list_apps()["scheduled-app"]["schedules"]["every_second"], timeout=30,
                           what="a run skipped while the last one went on")
        assert state["schedule"] == "every 1 s" and state["runs"] >= 2 and state["next"] > state["last"]
        spawned = [c for c in calls_snapshot(client)["calls"] if c["function"] == "every_second"]
        assert len(spawned) >= 2 and {c["kind"] for c in spawned} == {"spawn"}  # each run is a call
        listing = run_nbfan("apps", scheduler=local_cluster.scheduler_address, env={"COLUMNS": "400"})
        assert "every_second: every 1 s (next" in listing.stdout, listing.stdout
    finally:
        stop_app("scheduled-app")

    def launchers(dask_scheduler: Any) -> list[str]:
        return [str(k) for k in dask_scheduler.tasks if str(k).startswith("nbfan-schedule-scheduled-app-")]

    wait_until(lambda: not client.run_on_scheduler(launchers), timeout=30, what="the last scheduled run to end")
    assert stays(runs, quiet=1.5) and not client.run_on_scheduler(launchers)  # stopped: no run starts any more


def test_a_scheduled_job_as_modals_docs_write_it_runs_once_deployed(local_cluster, client):
    from waiting import wait_until

    from nbfan.api.queries import calls_snapshot

    scheduler = local_cluster.scheduler_address
    deployed = run_nbfan("deploy", str(SCRIPTS / "modal_scheduled.py"), scheduler=scheduler)
    assert deployed.returncode == 0, deployed.stderr
    assert "print_time_1 runs on the cluster: Period(seconds=2)" in deployed.stdout
    assert "weekly_report runs on the cluster: Cron('0 9 * * mon', timezone='America/New_York')" in deployed.stdout
    try:
        run = wait_until(lambda: next((c for c in calls_snapshot(client)["calls"]
                                       if c["function"] == "print_time_1" and c["state"] == "done"), None),
                         timeout=60, what="a scheduled run")
        logs = run_nbfan("logs", run["call_id"], "--raw", scheduler=scheduler)
        assert logs.returncode == 0 and logs.stdout.startswith("Printing with period 2 seconds: "), logs.stdout
    finally:
        assert run_nbfan("apps", "stop", "example-schedule", scheduler=scheduler).returncode == 0
