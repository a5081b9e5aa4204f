"""GPU discovery (NVML), short model names, what a process sees under CUDA_VISIBLE_DEVICES, and
the GPU workers of clusters nbfan starts. Tests that need a real NVIDIA GPU skip cleanly
without one (CI has none)."""

from __future__ import annotations

import pytest

import nbfan
from nbfan.cluster.gpus import GpuInfo, discover_gpus, short_model_name, visible_gpus
from nbfan.cluster.local import worker_options


def _nvml_gpu_count() -> int:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return 0
    try:
        return int(pynvml.nvmlDeviceGetCount())
    finally:
        pynvml.nvmlShutdown()


HAS_GPU = _nvml_gpu_count() > 0
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs an NVIDIA GPU with NVML (none on this machine)")


@pytest.mark.parametrize(
    "name, model",
    [
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA H100 PCIe", "H100"),
        ("NVIDIA A100-SXM4-40GB", "A100"),
        ("NVIDIA A100 80GB PCIe", "A100"),
        ("Tesla T4", "T4"),
        ("Tesla V100-SXM2-16GB", "V100"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA A10G", "A10G"),
        ("NVIDIA GH200 480GB", "GH200"),
        ("NVIDIA GeForce RTX 4090", "RTX4090"),
        ("NVIDIA RTX A6000", "RTXA6000"),
        ("Quadro P5000", "P5000"),
    ],
)
def test_short_model_name(name: str, model: str) -> None:
    assert short_model_name(name) == model


GPUS = [GpuInfo(i, "A100", "NVIDIA A100-SXM4-40GB", 40 * 2**30, f"GPU-{i}a2b3c4d-0000") for i in range(4)]


@pytest.mark.parametrize(
    "env, indices",
    [
        (None, [0, 1, 2, 3]),
        ("", []),
        ("2", [2]),
        ("3,1", [3, 1]),
        ("GPU-1a2b", [1]),
        ("0,7,1", [0]),  # as in CUDA: an entry naming no device hides the rest
        ("-1", []),
        ("GPU-", []),  # ambiguous prefix
    ],
)
def test_visible_gpus_follow_cuda_visible_devices(env: str | None, indices: list[int]) -> None:
    assert [g.index for g in visible_gpus(GPUS, env)] == indices


def test_gpu_workers_are_pinned_one_per_gpu_with_the_resource_contract() -> None:
    gpus = [GpuInfo(0, "H100", "NVIDIA H100 80GB HBM3", 80 * 2**30, "GPU-aaaa"),
            GpuInfo(1, "H100", "NVIDIA H100 80GB HBM3", 80 * 2**30, "GPU-bbbb")]
    specs = worker_options(2, gpus, memory_limit=2**30)
    assert specs["gpu-0"]["env"]["CUDA_VISIBLE_DEVICES"] == "GPU-aaaa"
    assert specs["gpu-1"]["env"]["CUDA_VISIBLE_DEVICES"] == "GPU-bbbb"
    assert specs["gpu-1"]["resources"] == {"GPU": 1, "GPU-H100": 1, "CPU": 1, "MEMORY": 1024}
    assert specs["cpu-0"]["env"] == {"CUDA_VISIBLE_DEVICES": ""}  # CPU workers see no GPU
    assert "GPU" not in specs["cpu-1"]["resources"]


def test_no_nvml_or_no_gpu_gives_a_clean_cpu_only_answer(recwarn: pytest.WarningsRecorder) -> None:
    gpus = discover_gpus()
    assert isinstance(gpus, list) and len(gpus) == _nvml_gpu_count()
    assert nbfan.current_gpus() == visible_gpus(gpus, __import__("os").environ.get("CUDA_VISIBLE_DEVICES"))
    assert not recwarn.list  # no warning spam on CPU machines


@pytest.mark.gpu
@needs_gpu
def test_nvml_discovery_reports_real_devices() -> None:
    gpus = discover_gpus()
    assert gpus and all(g.model and g.model == g.model.upper() and g.memory_total > 0 for g in gpus)
    assert [g.index for g in gpus] == list(range(len(gpus)))
    assert all(g.uuid.startswith(("GPU-", "MIG-")) for g in gpus)


@pytest.mark.gpu
@needs_gpu
def test_gpu_map_runs_pinned_on_a_local_gpu_cluster() -> None:
    """The real path: nbfan's own local cluster, one worker per GPU, `gpu=1` tasks see one device."""
    from nbfan.cluster.local import start_local_cluster

    app = nbfan.App("test-gpus-real")

    @app.function(gpu=1)
    def seen(_: int) -> tuple[str, list[str]]:
        import os

        return os.environ.get("CUDA_VISIBLE_DEVICES", ""), [g.uuid for g in nbfan.current_gpus()]

    cluster = start_local_cluster(1)
    try:
        nbfan.connect(cluster)
        results = list(seen.map(range(4)))
    finally:
        nbfan.disconnect()
        cluster.close()
    gpus = {g.uuid for g in discover_gpus()}
    for pinned, uuids in results:
        assert len(uuids) == 1 and uuids[0] == pinned and pinned in gpus
