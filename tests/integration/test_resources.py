"""gpu=/cpu=/memory= on real clusters: validation at decoration time, placement on workers that
advertise the resource contract (fake GPUs: `dask worker ADDR --resources "GPU=2,GPU-A100=2"`),
ranked fallbacks, fast failure with a clear message, and cpu/memory on clusters without them."""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from distributed import LocalCluster
from overlap import max_overlap

import nbfan
from nbfan.engine.placement import cluster_view, describe_offer
from nbfan.engine.resources import GpuRequest, parse_cpu, parse_gpu, parse_memory
from nbfan.exception import InvalidError, PlacementWarning, ResourceUnavailableError

app = nbfan.App("test-resources")


# -- specs, validated where the function is declared ------------------------------------------


@pytest.mark.parametrize(
    "spec, expected",
    [
        (None, ()),
        (True, (GpuRequest(1),)),
        (1, (GpuRequest(1),)),
        (3, (GpuRequest(3),)),
        ("any", (GpuRequest(1),)),
        ("any:2", (GpuRequest(2),)),
        ("A100", (GpuRequest(1, "A100"),)),
        ("a100", (GpuRequest(1, "A100"),)),
        ("H100:2", (GpuRequest(2, "H100"),)),
        (["H100", "a100:2", "any"], (GpuRequest(1, "H100"), GpuRequest(2, "A100"), GpuRequest(1))),
    ],
)
def test_gpu_specs(spec: Any, expected: tuple[GpuRequest, ...]) -> None:
    assert parse_gpu(spec) == expected


@pytest.mark.parametrize("spec", ["A100:0", "A100:x", "A100:", ":2", -1, 0, 1.5, [], ["A100", 2.0], {"A100": 1}, "A 100"])
def test_malformed_gpu_specs_fail_at_decoration_time(spec: Any) -> None:
    with pytest.raises(InvalidError, match="gpu="):

        @app.function(gpu=spec)
        def f() -> None: ...


@pytest.mark.parametrize("cpu, memory", [(0, None), (-1, None), ("2", None), (True, None),
                                         (None, 0), (None, "lots"), (None, 1.5), (None, True)])
def test_malformed_cpu_and_memory_fail_at_decoration_time(cpu: Any, memory: Any) -> None:
    with pytest.raises(InvalidError, match="cpu=|memory="):

        @app.function(cpu=cpu, memory=memory)
        def f() -> None: ...


def test_cpu_and_memory_forms() -> None:
    assert parse_cpu(0.5) == 0.5 and parse_cpu(2) == 2.0
    assert parse_memory(2048) == 2048 and parse_memory("4GiB") == 4096 and parse_memory("512 MiB") == 512


# -- a cluster with fake GPUs ------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpu_cluster() -> Iterator[LocalCluster]:
    """Two plain one-thread workers, plus one worker started the way users start theirs:
    `dask worker ADDR --nthreads 2 --resources "GPU=2,GPU-A100=2"`."""
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address, "--nthreads", "2",
         "--no-nanny", "--no-dashboard", "--name", "a100", "--resources", "GPU=2,GPU-A100=2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        cluster.wait_for_workers(3, timeout=90)
        yield cluster
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        cluster.close()


@pytest.fixture
def gpu_client(gpu_cluster: LocalCluster) -> Iterator[Any]:
    client = nbfan.connect(gpu_cluster)
    yield client
    nbfan.disconnect()


def _where(seconds: float = 0.0) -> tuple[str, float, float]:
    from distributed import get_worker

    start = time.time()
    time.sleep(seconds)
    return get_worker().name, start, time.time()


@app.function(gpu="A100")
def on_a100(seconds: float) -> tuple[str, float, float]:
    return _where(seconds)


@app.function(gpu=["H100", "any:2"])
def h100_else_any2(seconds: float) -> tuple[str, float, float]:
    return _where(seconds)


@app.function(gpu=["A100:4", "l4", "a100"])
def ranked(x: int) -> str:
    from distributed import get_worker

    return get_worker().name


@app.function(gpu="H100")
def wants_h100(x: int) -> int:
    return x


@app.function(gpu=["H100:2", "L4"])
def wants_h100_or_l4(x: int) -> int:
    return x


@app.function(cpu=2, memory="1GiB")
def sized(x: int) -> int:
    return x + 1


@app.function
def visible() -> list:
    return nbfan.current_gpus()


def test_a100_tasks_run_only_on_the_a100_worker_two_at_a_time(gpu_client: Any) -> None:
    runs = list(on_a100.map([0.4] * 6))
    assert {name for name, _, _ in runs} == {"a100"}
    assert max_overlap([(s, e) for _, s, e in runs]) == 2  # both fake GPUs used, never three


def test_ranked_fallbacks_take_the_first_the_cluster_can_satisfy(gpu_client: Any) -> None:
    assert h100_else_any2.remote(0.0)[0] == "a100"  # no H100 anywhere; "any:2" fits the A100 worker
    assert ranked.remote(1) == "a100"  # A100:4 too many, no L4, then one A100


@pytest.mark.parametrize("function, asked", [(wants_h100, "GPU-H100=1"), (wants_h100_or_l4, "GPU-H100=2 or GPU=1, GPU-L4=1")])
def test_absent_models_fail_fast_naming_ask_and_offer(gpu_client: Any, function: Any, asked: str) -> None:
    started = time.monotonic()
    with pytest.raises(ResourceUnavailableError) as info:
        function.remote(1)
    with pytest.raises(InvalidError):  # the same for a map, before any input is submitted
        list(function.map(range(3)))
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert asked in message and "GPU-A100 x2" in message and "test-resources." in message
    assert "1 x {GPU=2, GPU-A100=2}" in message and "2 x {no resources}" in message


def test_may_grow_clusters_warn_instead_of_failing(gpu_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBFAN_CLUSTER_MAY_GROW", "1")
    grow = wants_h100.with_options(gpu="B200")
    with pytest.warns(PlacementWarning, match="asked for GPU=1, GPU-B200=1.*may still grow"):
        call = grow.spawn(1)
    call.cancel()


@pytest.mark.parametrize("workers, adapt, model", [(1, True, "H200"), (0, False, "GH200")])
def test_adaptive_or_empty_clusters_warn_and_submit(workers: int, adapt: bool, model: str) -> None:
    """A real adaptive cluster (or one with no workers yet) may still bring a fitting worker."""
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=False, dashboard_address=None)
    try:
        if adapt:
            cluster.adapt(minimum=1, maximum=2)
        nbfan.connect(cluster)
        grow = wants_h100.with_options(gpu=model)  # warnings are noted once per function and ask
        with pytest.warns(PlacementWarning, match=f"asked for GPU=1, GPU-{model}=1; workers offer .*may still grow"):
            call = grow.spawn(1)
        with pytest.raises(TimeoutError):
            call.get(timeout=0.5)  # submitted, waiting for a worker that fits
        call.cancel()
    finally:
        nbfan.disconnect()
        cluster.close()


def test_cpu_and_memory_are_noted_once_where_workers_do_not_advertise_them(gpu_client: Any) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert sized.remote(1) == 2
        assert list(sized.map([2, 3])) == [3, 4]
    notes = [str(w.message) for w in caught if issubclass(w.category, PlacementWarning)]
    assert len(notes) == 2, notes
    assert any("test-resources.sized: cpu=2.0 is not enforced" in n for n in notes)
    assert any("memory=1024 MiB is not enforced" in n for n in notes)


def test_current_gpus_is_empty_on_a_cpu_worker(gpu_client: Any) -> None:
    assert visible.remote() == []


def test_offer_is_described_per_worker(gpu_client: Any) -> None:
    text = describe_offer(cluster_view(gpu_client, max_age=0))
    assert text == "GPU-A100 x2; per worker: 2 x {no resources}, 1 x {GPU=2, GPU-A100=2}"


# -- cpu/memory on a cluster that advertises CPU and MEMORY (the ones nbfan starts) -------------


@app.function(cpu=1, memory=64)
def small(x: int) -> int:
    return x * 2


@app.function(cpu=2)
def two_cores(x: int) -> int:
    return x


def test_cpu_and_memory_become_requests_where_advertised(client: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlacementWarning)  # enforced: nothing to note
        assert list(small.map(range(4))) == [0, 2, 4, 6]
    with pytest.raises(ResourceUnavailableError, match=r"asked for CPU=2; workers offer no GPUs; per worker: 2 x \{CPU=1, MEMORY="):
        two_cores.remote(1)
