"""A stock Dask cluster: scheduler and workers started from a venv with dask, distributed and
cloudpickle only (`scripts/stock-venv.sh`); nbfan is installed on the client alone and ships
its own code to the cluster on connecting."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clitools import SCRIPTS, run_nbfan
from conftest import REPO, run_py
from waiting import wait_until

import nbfan

STOCK = REPO / ".venv-stock"
app = nbfan.App("test-stock")


@app.function
def square(x: int) -> int:
    return x * x


@app.function(concurrency_limit=1)
def capped(x: int) -> int:
    return x + 1


@app.function
def count(n: int) -> Any:
    yield from range(n)


@app.function
def calls_square(x: int) -> int:
    return square.remote(x) + sum(square.map(range(x)))


@app.function(secrets=[nbfan.Secret.from_dict({"STOCK_TOKEN": "tok"})], timeout=60)
def isolated_token() -> str:
    return os.environ["STOCK_TOKEN"]


@app.function
def uses_objects(d: nbfan.Dict, q: nbfan.Queue) -> int:
    d["seen"] = q.get(timeout=30)
    return len(d)


def _stock_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NBFAN_SCHEDULER", "VIRTUAL_ENV")}
    env["PATH"] = f"{STOCK / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _start_stock_cluster(folder: Path, workers: int, **worker_env: str) -> tuple[str, list[subprocess.Popen[bytes]]]:
    """A scheduler and `workers` workers (two threads each) from the stock venv; (address, processes)."""
    scheduler_file = folder / "scheduler.json"
    started = [subprocess.Popen(
        [str(STOCK / "bin" / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(scheduler_file)],
        cwd=folder, env=_stock_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )]
    wait_until(lambda: scheduler_file.exists() and scheduler_file.read_text().strip(), timeout=60,
               what="the stock scheduler to start")
    address = json.loads(scheduler_file.read_text())["address"]
    for _ in range(workers):
        started.append(subprocess.Popen(
            [str(STOCK / "bin" / "dask"), "worker", address, "--nthreads", "2", "--no-dashboard"],
            cwd=folder, env={**_stock_env(), **worker_env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))
    return address, started


def _stop(started: list[subprocess.Popen[bytes]]) -> None:
    for process in reversed(started):
        process.terminate()
    for process in started:
        process.wait(30)


@pytest.fixture(scope="module")
def stock_scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    subprocess.run(["bash", str(REPO / "scripts" / "stock-venv.sh")], check=True, timeout=600)
    folder = tmp_path_factory.mktemp("stock")  # the processes' working folder: nbfan's source is not there
    address, started = _start_stock_cluster(folder, 2)
    try:
        yield address
    finally:
        _stop(started)


@pytest.fixture
def stock(stock_scheduler: str) -> Iterator[Any]:
    from distributed import Client

    with Client(stock_scheduler) as plain:
        plain.wait_for_workers(2, timeout=60)
    started = time.perf_counter()
    client = nbfan.connect(stock_scheduler)  # checks the cluster's nbfan, sends its code
    print(f"\nSTOCK connect (probe + ship once): {time.perf_counter() - started:.2f}s")
    yield client
    nbfan.disconnect()


def test_the_cluster_really_has_no_nbfan(stock_scheduler: str) -> None:
    result = subprocess.run([str(STOCK / "bin" / "python"), "-c", "import nbfan"], cwd="/", capture_output=True)
    assert result.returncode != 0 and b"No module named 'nbfan'" in result.stderr


def test_everything_runs_on_a_stock_cluster(stock: Any) -> None:
    with app.run():
        started = time.perf_counter()
        assert square.remote(7) == 49
        first_call = time.perf_counter() - started
        assert list(square.map(range(10))) == [x * x for x in range(10)]
        assert list(capped.map(range(6))) == list(range(1, 7))
        assert list(count.remote_gen(4)) == [0, 1, 2, 3]
        assert calls_square.remote(4) == 16 + 0 + 1 + 4 + 9
        assert isolated_token.remote() == "tok"
        spawned = square.spawn_map(range(5))
        assert list(spawned.get(timeout=120)) == [0, 1, 4, 9, 16]
        with nbfan.Dict.ephemeral() as d, nbfan.Queue.ephemeral() as q:
            q.put("hello")
            assert uses_objects.remote(d, q) == 1 and d["seen"] == "hello"
    print(f"\nSTOCK first call (ships nbfan's code): {first_call:.2f}s")


def test_telemetry_and_deployments_on_a_stock_cluster(stock: Any, stock_scheduler: str) -> None:
    with app.run():
        assert square.remote(3) == 9
    calls = run_nbfan("calls", scheduler=stock_scheduler)
    assert calls.returncode == 0 and "square" in calls.stdout, calls.stderr
    deployed = run_nbfan("deploy", str(SCRIPTS / "deployable.py"), scheduler=stock_scheduler)
    assert deployed.returncode == 0, deployed.stderr
    other = run_py(
        "import nbfan\nprint(nbfan.Function.from_name('deployed-math', 'square').remote(6))\n",
        env={"NBFAN_SCHEDULER": stock_scheduler, "NBFAN_PROGRESS": "0"},
    )
    assert other.returncode == 0 and other.stdout.strip() == "36", other.stderr


def test_a_worker_that_already_runs_other_nbfan_code_fails_fast_naming_both(
    stock_scheduler: str, tmp_path: Path
) -> None:
    """A worker that imported parts of an older nbfan at start (a preload) cannot switch to ours
    (a worker that only has another nbfan installed, or imported its top module only, can)."""
    old = tmp_path / "old" / "nbfan"
    (old / "worker").mkdir(parents=True)
    (old / "__init__.py").write_text('__version__ = "0.0.1"\n')
    (old / "worker" / "__init__.py").write_text("")
    (tmp_path / "old" / "preload_old.py").write_text("import nbfan.worker  # noqa\n")
    address, started = _start_stock_cluster(tmp_path, 1, PYTHONPATH=str(tmp_path / "old"))
    started.append(subprocess.Popen(
        [str(STOCK / "bin" / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard",
         "--preload", "preload_old"],
        cwd=tmp_path, env={**_stock_env(), "PYTHONPATH": str(tmp_path / "old")},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    ))
    try:
        from distributed import Client

        with Client(address) as plain:
            plain.wait_for_workers(2, timeout=60)
        asked = time.perf_counter()
        result = run_py(
            "import nbfan\napp = nbfan.App('x')\n@app.function\ndef f(): return 1\nprint(f.remote())\n",
            env={"NBFAN_SCHEDULER": address, "NBFAN_PROGRESS": "0"}, timeout=60,
        )
        print(f"\nSTOCK mismatch reported after {time.perf_counter() - asked:.1f}s (process start included)")
    finally:
        _stop(started)
    assert result.returncode != 0
    assert "nbfan.worker from" in result.stderr and nbfan.__version__ in result.stderr, result.stderr
    assert "Restart the cluster's scheduler and workers" in result.stderr
