"""The user's persistent local cluster: `nbfan cluster up | down | status`.

`up` starts `python -m nbfan.cluster.daemon` in a new session (it outlives the shell), which
runs a scheduler and nanny workers on 127.0.0.1 and records itself in
`$NBFAN_HOME/cluster.json`; `down` stops it with SIGTERM and waits."""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nbfan.cluster.autoscale import AdaptiveLimits
from nbfan.cluster.state import (
    ClusterState,
    CorruptStateError,
    pid_alive,
    read_state,
    remove_state,
    state_path,
    write_state,
)
from nbfan.config import nbfan_home

START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0


class ClusterCommandError(RuntimeError):
    """A `nbfan cluster` command could not do what was asked; the message says why."""


@contextmanager
def _exclusive() -> Iterator[None]:
    """One `up`/`down` at a time per NBFAN_HOME."""
    home = nbfan_home()
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "cluster.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def running_state() -> ClusterState | None:
    """The running cluster's state; a stale or corrupt state file is removed."""
    try:
        state = read_state()
    except CorruptStateError:
        remove_state()
        return None
    if state is not None and not pid_alive(state.pid):
        remove_state()
        return None
    return state


def journal_dir() -> Path:
    """Where the local cluster's scheduler keeps its journal (scheduler/journal.py)."""
    return nbfan_home() / "journal"


def log_path() -> str:
    return str(nbfan_home() / "cluster.log")


def up(n_workers: int | None = None, *, dashboard: bool = False, tls: bool = False,
       adaptive: AdaptiveLimits | None = None) -> tuple[ClusterState, bool]:
    """Start the local cluster unless one runs; returns (state, started_now). `adaptive`: its
    CPU workers start and stop with demand (cluster/autoscale.py)."""
    from nbfan.cluster.local import worker_options

    if adaptive is not None:
        if n_workers is not None:
            raise ClusterCommandError("give --workers or --adaptive (with --min-workers/--max-workers), not both")
        adaptive = adaptive.checked()  # bad limits fail here, not in the daemon's log
    else:
        worker_options(n_workers)  # a bad worker count fails here, not in the daemon's log
    with _exclusive():
        state = running_state()
        if state is not None:
            return state, False
        cmd = [sys.executable, "-m", "nbfan.cluster.daemon"]
        if n_workers is not None:
            cmd += ["--workers", str(n_workers)]
        if dashboard:
            cmd.append("--dashboard")
        if tls:
            cmd.append("--tls")
        if adaptive is not None:
            cmd += ["--adaptive", "--min-workers", str(adaptive.minimum), "--max-workers", str(adaptive.maximum),
                    "--scaledown-window", str(adaptive.scaledown_window)]
        with open(log_path(), "ab") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ClusterCommandError(
                    f"the nbfan cluster failed to start (exit code {proc.returncode}); see {log_path()}:\n"
                    + _log_tail()
                )
            try:
                state = read_state()
            except CorruptStateError:
                state = None
            if state is not None and state.pid == proc.pid:
                return state, True
            time.sleep(0.1)
        proc.terminate()
        raise ClusterCommandError(f"the nbfan cluster did not start within {START_TIMEOUT:g}s; see {log_path()}")


def down(*, forget: bool = False) -> ClusterState:
    """Stop the running local cluster; ClusterCommandError when none runs. `forget`: also
    discard its journal (Dicts, Queues, deployments, spawn_maps), once it has stopped."""
    with _exclusive():
        try:
            state = read_state()
        except CorruptStateError:
            remove_state()
            raise ClusterCommandError(
                f"no nbfan cluster is running (removed a corrupt state file at {state_path()})"
            ) from None
        if state is None:
            raise ClusterCommandError(f"no nbfan cluster is running (no state file at {state_path()})")
        if not pid_alive(state.pid):
            remove_state()
            raise ClusterCommandError(
                f"no nbfan cluster is running: the one at {state.address} (pid {state.pid}) had already died; "
                f"removed its stale state file"
            )
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while pid_alive(state.pid) and time.monotonic() < deadline:
            _reap(state.pid)
            time.sleep(0.1)
        if pid_alive(state.pid):
            os.killpg(state.pid, signal.SIGKILL)
        remove_state()
        if forget:
            shutil.rmtree(journal_dir(), ignore_errors=True)
        return state


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _log_tail(lines: int = 20) -> str:
    try:
        with open(log_path()) as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def autoscale_events_path() -> Path:
    """Where an adaptive local cluster writes its last scaling decisions (`nbfan cluster status`)."""
    return nbfan_home() / "autoscale.json"


def serve(n_workers: int | None, dashboard: bool, tls: bool, adaptive: AdaptiveLimits | None = None) -> None:
    """The daemon's body: run the cluster until SIGTERM/SIGINT, then close it and the state.
    Its scheduler (in this process) keeps its journal in `$NBFAN_HOME/journal` unless
    NBFAN_JOURNAL_DIR says otherwise (empty or "off": no journal)."""
    import dask

    from nbfan.cluster.local import start_local_cluster

    journal = os.environ.get("NBFAN_JOURNAL_DIR")
    if journal is None:
        journal = str(journal_dir())
    dask.config.set({"nbfan.journal-dir": "" if journal.lower() in ("", "0", "off", "false", "no") else journal})

    security = None
    tls_paths = None
    if tls:
        from nbfan.cluster.tls import ensure_certificates, server_security

        tls_paths = ensure_certificates()
        security = server_security()
    autoscale_events_path().unlink(missing_ok=True)
    cluster = start_local_cluster(n_workers, dashboard=dashboard, security=security, subprocess=False,
                                  adaptive=adaptive, events_file=autoscale_events_path())
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    write_state(
        ClusterState(
            address=cluster.scheduler_address,
            pid=os.getpid(),
            dashboard=cluster.dashboard_link if dashboard else None,
            tls=tls_paths,
            adaptive=dataclasses.asdict(adaptive) if adaptive is not None else None,
        )
    )
    try:
        while not stop.wait(1.0):
            if cluster.status.name in ("closed", "failed"):
                break
    finally:
        try:
            cluster.close(timeout=STOP_TIMEOUT - 5)
        finally:
            state = read_state()
            if state is not None and state.pid == os.getpid():
                remove_state()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nbfan.cluster.daemon")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--dashboard", action="store_true")
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--adaptive", action="store_true")
    parser.add_argument("--min-workers", type=int, default=0)
    parser.add_argument("--max-workers", type=int, default=0)
    parser.add_argument("--scaledown-window", type=float, default=60.0)
    args = parser.parse_args(argv)
    limits = AdaptiveLimits(args.min_workers, args.max_workers, args.scaledown_window).checked() if args.adaptive \
        else None
    serve(args.workers, args.dashboard, args.tls, limits)


if __name__ == "__main__":
    main()
