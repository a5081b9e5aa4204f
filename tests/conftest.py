"""Shared fixtures: every test runs against real Dask clusters, isolated from the user's
own nbfan state (NBFAN_HOME points into a temporary folder)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Isolate before anything imports nbfan: subprocesses started by tests inherit this too.
# (This module may be imported twice, as `conftest` and as `tests.conftest`: one home only.)
if "_NBFAN_TEST_HOME" not in os.environ:
    os.environ["_NBFAN_TEST_HOME"] = tempfile.mkdtemp(prefix="nbfan-test-home-")
_HOME = Path(os.environ["_NBFAN_TEST_HOME"])
os.environ["NBFAN_HOME"] = str(_HOME)
os.environ.pop("NBFAN_SCHEDULER", None)
os.environ.setdefault("NBFAN_PROGRESS", "0")

import nbfan  # noqa: E402
from nbfan.cluster.local import start_local_cluster  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def nbfan_home() -> Path:
    return _HOME


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[object]:
    """One two-worker cluster (nanny processes, one thread each) shared by the session."""
    from distributed import Client

    cluster = start_local_cluster(2, gpus=[])
    with Client(cluster, set_as_default=False) as c:
        c.wait_for_workers(2, timeout=120)
    yield cluster
    # The cluster object restores distributed's INFO logging as it closes, while the scheduler's
    # stream of worker events to it may still fail on its closed comm: "Batched Comm Closed",
    # with a traceback, after close() returns. Nothing a user of nbfan sees (nbfan's own
    # clusters close quietly: connect.py, daemon.py's log); the session's log stays clean.
    import logging

    logging.getLogger("distributed.batched").addFilter(lambda record: record.msg != "Batched Comm Closed %r")
    cluster.close()


@pytest.fixture
def client(local_cluster: object) -> Iterator[object]:
    """nbfan connected to the shared cluster for this test."""
    client = nbfan.connect(local_cluster)
    yield client
    nbfan.disconnect()


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A NBFAN_HOME of one test's own (state file, secrets, volumes): nothing another test left."""
    folder = tmp_path / "nbfan-home"
    folder.mkdir()
    monkeypatch.setenv("NBFAN_HOME", str(folder))
    monkeypatch.delenv("NBFAN_VOLUME_ROOT", raising=False)
    return folder


@pytest.fixture
def python() -> str:
    return sys.executable


def run_py(code: str, *, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run Python code in a fresh interpreter (with this checkout importable)."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=timeout
    )
