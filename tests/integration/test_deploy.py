"""`nbfan deploy` / `nbfan apps` / `Function.from_name`: deployed functions outlive the deploying
process and are callable from other processes on the same cluster."""

from __future__ import annotations

import pytest
from clitools import SCRIPTS, run_nbfan
from conftest import run_py

import nbfan
from nbfan.cli.main import main as cli_main
from nbfan.exception import NotFoundError

DEPLOYABLE = str(SCRIPTS / "deployable.py")


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


def test_redeploy_replaces_and_stop_removes(local_cluster, client):
    scheduler = local_cluster.scheduler_address
    assert run_nbfan("deploy", DEPLOYABLE, scheduler=scheduler).returncode == 0
    again = run_nbfan("deploy", DEPLOYABLE, scheduler=scheduler, env={"DEPLOY_GREETING": "v2"})
    assert again.returncode == 0 and "redeployed (replaced)" in again.stdout
    assert nbfan.Function.from_name("deployed-math", "greeting").remote() == "v2"

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
