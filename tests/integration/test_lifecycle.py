"""A program that uses nbfan ends as quietly as one that does not, on every exit path.

Each test runs a real script in a fresh interpreter (on the embedded cluster, and on a
cluster from `nbfan cluster up` where it matters) and asserts that its stderr holds only what
the script itself wrote, and that it exits promptly: `slow` inputs block until the test ends
(they wait for a file the `marks` fixture makes at teardown), so a script that waited for its
running inputs at exit would never end (EXIT_GUARD is a guard against that hang, not a timing
goal)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.waiting import wait_until

NOISE = (
    "Traceback", "ERROR", "Exception ignored", "Task was destroyed", "leaked semaphore", "Exception in callback",
    "CancelledError", "Failed to reconnect", "RuntimeWarning", "coroutine", "WARNING",
)
EXIT_GUARD = 60  # seconds: a script that takes longer to end has hung

PRELUDE = """\
import os, sys, time
import nbfan

app = nbfan.App("lifecycle")
MARKS = os.environ["MARKS"]  # a global of the script: it travels with the function to any worker

@app.function
def double(x):
    return 2 * x

@app.function
def slow(x):
    open(os.path.join(MARKS, f"started-{x}"), "w").close()
    deadline = time.monotonic() + 600
    while not os.path.exists(os.path.join(MARKS, "release")) and time.monotonic() < deadline:
        time.sleep(0.05)  # blocked until the test is over: exiting must not wait for it
    return x
"""


def noise(stderr: str) -> list[str]:
    """Lines of stderr a quiet program would not print."""
    return [line for line in stderr.splitlines() if any(word in line for word in NOISE)]


def script_env(home: Path, marks: Path, scheduler: str | None = None) -> dict[str, str]:
    env = {**os.environ, "NBFAN_HOME": str(home), "MARKS": str(marks), "NBFAN_PROGRESS": "0"}
    env.pop("NBFAN_SCHEDULER", None)
    if scheduler:
        env["NBFAN_SCHEDULER"] = scheduler
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


def start(body: str, env: dict[str, str], tmp_path: Path) -> subprocess.Popen[str]:
    path = tmp_path / "script.py"
    path.write_text(PRELUDE + textwrap.dedent(body))
    return subprocess.Popen([sys.executable, str(path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=EXIT_GUARD)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the script did not exit within {EXIT_GUARD}s\nstdout:\n{out}\nstderr:\n{err}")
    return proc.returncode, out, err


def nbfan_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = script_env(home, home)
    return subprocess.run([sys.executable, "-m", "nbfan.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@contextlib.contextmanager
def cluster_up(home: Path) -> Iterator[None]:
    """A one-worker `nbfan cluster up` in `home` for one test (it may kill it), always taken down."""
    up = nbfan_cli("cluster", "up", "--workers", "1", home=home)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield
    finally:
        nbfan_cli("cluster", "down", home=home)


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A home with a running `nbfan cluster up` (two worker processes)."""
    home = tmp_path_factory.mktemp("cluster-up-home")
    up = nbfan_cli("cluster", "up", "--workers", "2", home=home)
    assert up.returncode == 0, up.stdout + up.stderr
    yield home
    nbfan_cli("cluster", "down", home=home)


@pytest.fixture(params=["embedded", "cluster-up"])
def home(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "embedded":
        embedded = tmp_path / "home"
        embedded.mkdir()
        return embedded
    return request.getfixturevalue("shared_home")


@pytest.fixture
def marks(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "marks"
    folder.mkdir()
    yield folder
    (folder / "release").touch()  # inputs still blocked on a shared cluster end now


def run(body: str, home: Path, marks: Path, tmp_path: Path) -> tuple[int, str, str]:
    return finish(start(body, script_env(home, marks), tmp_path))


def assert_quiet(rc: int, out: str, err: str, *, expect_rc: int = 0) -> None:
    assert rc == expect_rc, f"exit status {rc}\nstdout:\n{out}\nstderr:\n{err}"
    assert not noise(err), "stderr holds what the script did not write:\n" + err


def test_normal_end_is_quiet(home: Path, marks: Path, tmp_path: Path) -> None:
    rc, out, err = run("""
        print(double.remote(2), list(double.map(range(4))), double.spawn(6).get())
    """, home, marks, tmp_path)
    assert_quiet(rc, out, err)
    assert out.split() == ["4", "[0,", "2,", "4,", "6]", "12"]
    assert err == ""


def test_an_unread_spawn_at_exit_is_quiet(home: Path, marks: Path, tmp_path: Path) -> None:
    rc, out, err = run("""
        call = double.spawn(6)
        print("spawned", call.object_id)
    """, home, marks, tmp_path)
    assert_quiet(rc, out, err)
    assert out.startswith("spawned ") and err == ""


def test_a_spawn_map_then_exit_is_quiet(home: Path, marks: Path, tmp_path: Path) -> None:
    rc, out, err = run("""
        job = double.spawn_map(range(20))
        print("spawned", job.object_id)
    """, home, marks, tmp_path)
    assert out.startswith("spawned "), out
    if home.name == "home":  # embedded: the one notice that the work dies with the process, at the user's line
        warning, source = err.splitlines()
        assert "script.py:" in warning and "EmbeddedClusterWarning: spawn_map is running on an embedded" in warning
        assert source.strip() == "job = double.spawn_map(range(20))"
        err = ""
    assert_quiet(rc, out, err)
    assert err == ""


def test_sys_exit_inside_a_map_loop_is_quiet(home: Path, marks: Path, tmp_path: Path) -> None:
    rc, out, err = run("""
        for result in double.map(range(100)):
            if result >= 10:
                print("leaving at", result)
                sys.exit(3)
    """, home, marks, tmp_path)
    assert_quiet(rc, out, err, expect_rc=3)
    assert out.strip() == "leaving at 10" and err == ""


def test_an_exception_escaping_the_script_prints_only_its_traceback(home: Path, marks: Path, tmp_path: Path) -> None:
    rc, out, err = run("""
        print(double.remote(1))
        raise ValueError("the script's own error")
    """, home, marks, tmp_path)
    assert rc == 1, err
    assert err.count("Traceback") == 1 and err.rstrip().endswith("ValueError: the script's own error"), err
    lines = err.splitlines()
    assert not noise("\n".join(lines[1:])), err  # nothing after the script's own traceback


def interrupted(body: str, home: Path, marks: Path, tmp_path: Path, sig: int = signal.SIGINT) -> tuple[int, str, str]:
    """Run `body`, send `sig` once its slow input started, and wait for the script to end."""
    proc = start(body, script_env(home, marks), tmp_path)
    try:
        wait_until(lambda: any(marks.iterdir()) or proc.poll() is not None, timeout=60, what="the call to start")
        proc.send_signal(sig)
        return finish(proc)
    finally:
        proc.kill()


CALLS = ["slow.remote(1)", "list(slow.map(range(4)))", "slow.spawn(1).get()"]


@pytest.mark.parametrize("call", CALLS)
def test_ctrl_c_during_a_call_is_quiet_and_prompt(call: str, home: Path, marks: Path, tmp_path: Path) -> None:
    rc, out, err = interrupted(f"""
        try:
            {call}
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    """, home, marks, tmp_path)
    assert_quiet(rc, out, err)
    assert out.strip() == "interrupted" and err == ""


@pytest.mark.parametrize("call", CALLS)
def test_an_uncaught_ctrl_c_prints_only_its_traceback(call: str, home: Path, marks: Path, tmp_path: Path) -> None:
    rc, out, err = interrupted(f"""
        {call}
    """, home, marks, tmp_path)
    assert rc in (-signal.SIGINT, 1, 130), (rc, err)
    assert err.count("Traceback") == 1 and err.rstrip().splitlines()[-1] == "KeyboardInterrupt", err
    assert not noise("\n".join(err.splitlines()[1:])), err  # nothing after the script's own traceback
    assert out == ""


def test_sigterm_during_a_map_is_quiet_and_prompt(home: Path, marks: Path, tmp_path: Path) -> None:
    rc, out, err = interrupted("""
        list(slow.map(range(4)))
    """, home, marks, tmp_path, signal.SIGTERM)
    assert rc in (-signal.SIGTERM, 128 + signal.SIGTERM, 143), (rc, err)
    assert not noise(err), err
    assert out == "" and err == ""


def test_closing_the_cluster_handed_to_connect_is_quiet(marks: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    rc, out, err = run("""
        from distributed import LocalCluster

        if __name__ == "__main__":
            cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
            nbfan.connect(cluster)
            call = double.spawn(4)  # its result is kept on the cluster, and wanted by this handle
            print(double.remote(3), call.get())
            cluster.close()
            time.sleep(1)  # the script goes on after closing its cluster
            print("closed")
    """, home, marks, tmp_path)
    assert_quiet(rc, out, err)
    assert out.split() == ["6", "8", "closed"] and err == ""


def test_closing_the_scheduler_before_its_workers_is_quiet(marks: Path, tmp_path: Path) -> None:
    """A scheduler closed first (as `dask scheduler` stopped while workers run) lets go of the
    spawned results it keeps for re-attaching before its workers leave: a result too large to be
    kept off the workers (200 KB here) would otherwise be "lost" with a warning at exit."""
    home = tmp_path / "home"
    home.mkdir()
    rc, out, err = run("""
        from distributed import LocalCluster

        if __name__ == "__main__":
            cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
            nbfan.connect(cluster)
            print(len(double.spawn(b"x" * 100_000).get()))
            nbfan.disconnect()
            cluster.sync(cluster.scheduler.close)
            cluster.close()
    """, home, marks, tmp_path)
    assert_quiet(rc, out, err)
    assert out.split() == ["200000"] and err == ""


def test_closing_the_client_handed_to_connect_is_quiet_and_later_calls_say_so(marks: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    rc, out, err = run("""
        from distributed import Client, LocalCluster

        if __name__ == "__main__":
            cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
            client = Client(cluster)
            nbfan.connect(client)
            print(double.remote(3))
            client.close()
            try:
                double.remote(4)
            except nbfan.exception.ClusterConnectionError as exc:
                print("refused:", exc)
            cluster.close()
    """, home, marks, tmp_path)
    assert_quiet(rc, out, err)
    first, second = out.splitlines()
    assert first == "6" and second.startswith("refused: ") and "nbfan.connect" in second, out
    assert err == ""


@pytest.mark.parametrize("call", ["list(slow.map(range(4)))", "slow.remote(1)", "slow.spawn(1).get()"])
def test_the_cluster_disappearing_under_a_running_call_is_one_clear_error(call: str, marks: Path,
                                                                          tmp_path: Path) -> None:
    home = tmp_path / "home"
    with cluster_up(home):
        proc = start(f"""
            try:
                {call}
            except nbfan.exception.ClusterConnectionError as exc:
                print("lost:", exc, flush=True)
        """, script_env(home, marks), tmp_path)
        try:
            wait_until(lambda: any(marks.iterdir()) or proc.poll() is not None, timeout=60, what="the map to start")
            kill_cluster(home)
            rc, out, err = finish(proc)
        finally:
            proc.kill()
    assert_quiet(rc, out, err)
    assert out.startswith("lost: ") and out.count("\n") == 1, out
    assert err == ""


def kill_cluster(home: Path) -> None:
    """Kill a `nbfan cluster up` daemon and its workers outright, as an OOM kill would."""
    import json

    import psutil

    pid = json.loads((home / "cluster.json").read_text())["pid"]
    daemon = psutil.Process(pid)
    for process in [*daemon.children(recursive=True), daemon]:
        process.kill()


def test_the_cluster_disappearing_while_the_script_is_idle_is_said_once(marks: Path, tmp_path: Path) -> None:
    """No call waits when the cluster goes: Dask's reconnect gives up in the background, and nbfan
    says it once in its own words; the next call connects again (here: to an embedded cluster)."""
    home = tmp_path / "home"
    with cluster_up(home):
        proc = start("""
            nbfan.config.connect_timeout = 2.0
            print(double.remote(1), flush=True)
            gone = os.path.join(MARKS, "gone")
            while not os.path.exists(gone):
                time.sleep(0.05)
            from nbfan.cluster.connect import connection_if_any
            while connection_if_any() is not None:  # until Dask has given up reconnecting
                time.sleep(0.05)
            print(double.remote(2), flush=True)
        """, script_env(home, marks), tmp_path)
        try:
            wait_until(lambda: proc.stdout.readline().strip() == "2" or proc.poll() is not None, timeout=60,
                       what="the first call")
            kill_cluster(home)
            (marks / "gone").touch()
            rc, out, err = finish(proc)
        finally:
            proc.kill()
    assert rc == 0 and out.strip() == "4", (out, err)
    assert len(err.splitlines()) == 3, f"stderr should hold nbfan's line and the stale-file warning:\n{err}"
    said, stale, source = err.splitlines()
    assert said.startswith("nbfan lost the Dask scheduler at tcp://127.0.0.1:") and "did not come back" in said, err
    assert "script.py:" in stale and "removed a stale nbfan cluster state file" in stale, err
    assert source.strip() == "print(double.remote(2), flush=True)"


def test_closing_the_local_cluster_ends_every_process_it_started(capfd: pytest.CaptureFixture[str]) -> None:
    """Each worker's `dask spec` process is stopped, its children (the worker process and
    multiprocessing's resource tracker) killed, then it: nothing is left running, and the tracker
    is gone before it could see its nanny end (and warn of leaked semaphores into the terminal)."""
    import psutil
    from distributed import Client

    from nbfan.cluster.local import start_local_cluster

    def nannies_now() -> set[psutil.Process]:
        return {p for p in psutil.Process().children() if "spec" in " ".join(p.cmdline())}

    before = nannies_now()  # other clusters of this test session
    cluster = start_local_cluster(1)
    with Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(1, timeout=120)
    nannies = list(nannies_now() - before)
    assert len(nannies) == 1, nannies
    tree = [*nannies, *(c for n in nannies for c in n.children(recursive=True))]
    assert any("resource_tracker" in " ".join(p.cmdline()) for p in tree), [p.cmdline() for p in tree]
    cluster.close()
    _gone, alive = psutil.wait_procs(tree, timeout=30)
    assert not alive, [p.cmdline() for p in alive]
    err = capfd.readouterr().err  # the worker processes write to this process's stderr
    assert "resource_tracker" not in err and "Traceback" not in err, err
