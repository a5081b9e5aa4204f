"""`nbfan run` (entrypoints, options, detach), `nbfan calls` and `nbfan cancel`, as real subprocesses
against the session's cluster (NBFAN_SCHEDULER), plus the option parser in-process."""

from __future__ import annotations

import datetime
import sys
import time
import uuid

import pytest
from clitools import SCRIPTS, run_nbfan
from waiting import no_input_running_on_workers, nothing_running, wait_until

import nbfan
from nbfan.cli.entrypoint import Entry, parse_entry_args
from nbfan.cli.main import main as cli_main
from nbfan.exception import InvalidError

app = nbfan.App("test-cli-run")


@app.function
def linger(seconds: float) -> str:
    for _ in range(int(seconds * 20)):
        time.sleep(0.05)
    return "done"


@pytest.fixture
def scheduler(local_cluster) -> str:
    return local_cluster.scheduler_address


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """In-process CLI calls: keep sys.path/argv/modules as they were, no cluster configured."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.delenv("NBFAN_SCHEDULER", raising=False)
    monkeypatch.setenv("NBFAN_HOME", str(tmp_path / "home"))
    return tmp_path


# -- running scripts --------------------------------------------------------------------------


def test_run_modal_hello_world_with_progress(scheduler):
    result = run_nbfan("run", str(SCRIPTS / "hello_world.py"), scheduler=scheduler, env={"NBFAN_PROGRESS": "1"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # f.local's print, its result, f.remote's print (forwarded from the worker, as Modal shows it), its result
    assert lines[:4] == ["hello 1000", "1000000", "hello 1000", "1000000"]
    assert sorted(lines[4:-1]) == sorted(f"hello {i}" for i in range(0, 200, 2))  # the map's prints, once each
    assert lines[-1] == str(sum(i * i for i in range(200)))
    assert sorted(line for line in result.stderr.splitlines() if line.startswith("world")) == sorted(
        f"world {i}" for i in range(1, 200, 2))
    # the map's progress bar, drawn on stderr
    assert "f.map" in result.stderr and "200/200" in result.stderr


def test_detach_lets_spawned_work_finish_after_the_cli_exits(scheduler, tmp_path, client):
    tag = f"d-{uuid.uuid4().hex[:8]}"
    env = {"TEST_MOUNT": str(tmp_path / "mnt" / "results")}
    result = run_nbfan("run", "--detach", str(SCRIPTS / "detached_job.py"), "--tag", tag, "--seconds", "2",
                       "--maps", "2", scheduler=scheduler, env=env)
    assert result.returncode == 0, result.stderr
    assert "detached" in result.stderr
    ids = dict(line.split() for line in result.stdout.splitlines() if line.startswith(("CALL", "MAP")))
    folder = nbfan.Volume.from_name("detach-results").path
    # the CLI has exited; the work goes on and finishes on the cluster
    wait_until(lambda: {tag, f"{tag}-map-0", f"{tag}-map-1"} <= {p.name for p in folder.iterdir()}, what="the detached work's files")
    assert nbfan.FunctionCall.from_id(ids["CALL"]).get(timeout=60) == tag
    assert nbfan.MapCall.from_id(ids["MAP"]).get(timeout=60) == [f"{tag}-map-0", f"{tag}-map-1"]
    # telemetry (the panel, `nbfan calls`) saw the detached call finish, not "cancelled" with its caller
    from nbfan.api import queries as query

    def detached_state():
        return next((c["state"] for c in query.calls_snapshot(client)["calls"] if c["call_id"] == ids["CALL"]), None)

    wait_until(lambda: detached_state() == "done", what="the detached map to finish")


def test_without_detach_spawned_work_is_cancelled_when_the_script_ends(scheduler, tmp_path):
    tag = f"c-{uuid.uuid4().hex[:8]}"
    env = {"TEST_MOUNT": str(tmp_path / "mnt" / "results")}
    result = run_nbfan("run", str(SCRIPTS / "detached_job.py"), "--tag", tag, "--seconds", "2", "--maps", "1",
                       scheduler=scheduler, env=env)
    assert result.returncode == 0, result.stderr
    ids = dict(line.split() for line in result.stdout.splitlines() if line.startswith(("CALL", "MAP")))
    client = nbfan.connect(scheduler)
    try:
        for call_id in ids.values():  # cancelled when the script ended
            assert nothing_running(client, call_id)["state"] == "cancelled"
        no_input_running_on_workers(client, ids.values())  # each input ended: raised, or wrote its file
    finally:
        nbfan.disconnect()
    folder = nbfan.Volume.from_name("detach-results").path
    assert not [p for p in folder.iterdir() if p.name.startswith(tag)]


def test_run_a_function_by_name(scheduler, tmp_path):
    script = tmp_path / "several.py"
    script.write_text(SEVERAL)
    result = run_nbfan("run", f"{script}::double", "--x", "21", scheduler=scheduler)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


def test_detach_on_an_embedded_cluster_is_an_error(isolated, capsys):
    script = isolated / "job.py"
    script.write_text("import nbfan\napp = nbfan.App('x')\n@app.local_entrypoint()\ndef main():\n    print('RAN')\n")
    assert cli_main(["run", "--detach", str(script)]) == 1
    err = capsys.readouterr()
    assert "nbfan cluster up" in err.err and "NBFAN_SCHEDULER" in err.err
    assert "RAN" not in err.out


# -- choosing the entrypoint and bad input -------------------------------------------------


SEVERAL = """
import nbfan
app = nbfan.App("several")

@app.function
def double(x: int = 2) -> int:
    return 2 * x

@app.local_entrypoint()
def first():
    print("FIRST")

@app.local_entrypoint()
def second(word: str):
    print("SECOND", word)
"""


def test_entrypoint_selection_and_errors(isolated, capsys):
    script = isolated / "several.py"
    script.write_text(SEVERAL)
    assert cli_main(["run", f"{script}::second", "--word", "hi"]) == 0
    assert "SECOND hi" in capsys.readouterr().out

    assert cli_main(["run", str(script)]) == 1
    err = capsys.readouterr().err
    assert "several entrypoints" in err and "first, second" in err and "::NAME" in err

    assert cli_main(["run", f"{script}::nope"]) == 1
    err = capsys.readouterr().err
    assert "no entrypoint or function named 'nope'" in err and "double" in err

    assert cli_main(["run", str(isolated / "missing.py")]) == 1
    assert "no such file" in capsys.readouterr().err
    (isolated / "notes.txt").write_text("x")
    assert cli_main(["run", str(isolated / "notes.txt")]) == 1
    assert "Python file" in capsys.readouterr().err

    bare = isolated / "bare.py"
    bare.write_text("import nbfan\napp = nbfan.App('bare')\n")
    assert cli_main(["run", str(bare)]) == 1
    assert "no @app.local_entrypoint()" in capsys.readouterr().err

    with pytest.raises(SystemExit) as exc:  # argparse: unknown option of the entrypoint
        cli_main(["run", f"{script}::second", "--word", "hi", "--colour", "red"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --colour red" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # required option missing
        cli_main(["run", f"{script}::second"])
    assert "--word" in capsys.readouterr().err


def test_typed_parameters_become_options():
    def main(n: int, rate: float = 0.5, name: str = "x", when: datetime.datetime = datetime.datetime(2020, 1, 1),
             dry_run: bool = False, verbose: bool = True):
        pass

    entry = Entry("main", main, remote=False)
    got = parse_entry_args(entry, ["--n", "20", "--rate", "1.5", "--when", "2025-02-03T04:05:06", "--dry-run",
                                   "--no-verbose"], "nbfan run x.py")
    assert got == {"n": 20, "rate": 1.5, "name": "x", "when": datetime.datetime(2025, 2, 3, 4, 5, 6),
                   "dry_run": True, "verbose": False}
    assert parse_entry_args(entry, ["--n", "1", "--dry_run"], "p")["dry_run"] is True
    with pytest.raises(SystemExit):
        parse_entry_args(entry, ["--n", "twenty"], "p")

    def bad(items: list[int]):
        pass

    with pytest.raises(InvalidError, match="str, int, float, bool and datetime"):
        parse_entry_args(Entry("bad", bad, remote=False), [], "p")


# -- nbfan calls / nbfan cancel -----------------------------------------------------------------


def test_calls_table_and_cancel(scheduler, client):
    call = linger.spawn(30)
    wait_until(lambda: call.object_id in run_nbfan("calls", "--once", scheduler=scheduler).stdout, timeout=30,
               what="the call in `nbfan calls`")
    table = run_nbfan("calls", "--once", scheduler=scheduler).stdout
    row = next(line for line in table.splitlines() if call.object_id in line)
    assert "linger" in row and "running" in row

    result = run_nbfan("cancel", call.object_id, scheduler=scheduler)
    assert result.returncode == 0, result.stderr
    assert f"cancelled call {call.object_id}" in result.stdout
    with pytest.raises(nbfan.exception.InputCancellation):
        call.get(timeout=30)
    row = next(line for line in run_nbfan("calls", "--once", scheduler=scheduler).stdout.splitlines()
               if call.object_id in line)
    assert "cancelled" in row

    unknown = run_nbfan("cancel", "0123456789abcdef0123", scheduler=scheduler)
    assert unknown.returncode == 1 and "no call 0123456789abcdef0123" in unknown.stderr
