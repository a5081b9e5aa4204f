"""Local clusters nbfan starts: one worker process per GPU (pinned with CUDA_VISIBLE_DEVICES)
plus one single-threaded worker per remaining core, all on 127.0.0.1."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import dask
import psutil
from distributed import Nanny, Scheduler, SpecCluster
from distributed.deploy.subprocess import SubprocessWorker
from distributed.system import MEMORY_LIMIT

from nbfan.cluster.autoscale import AdaptiveLimits, adapt
from nbfan.cluster.gpus import GpuInfo, discover_gpus
from nbfan.config import config
from nbfan.exception import InvalidError


def cluster_config() -> dict[str, Any]:
    """Dask settings for clusters nbfan starts: unrunnable tasks fail instead of hanging."""
    return {
        "distributed.scheduler.no-workers-timeout": f"{config.no_workers_timeout}s",
    }


def worker_options(
    n_cpu_workers: int | None = None,
    gpus: list[GpuInfo] | None = None,
    host: str = "127.0.0.1",
    memory_limit: int | None = None,
    *,
    adaptive: bool = False,
    memory_slots: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Nanny options by worker name: `gpu-<i>` workers (one GPU each, pinned with
    CUDA_VISIBLE_DEVICES) then `cpu-<j>` workers (one thread each). `adaptive`: none at all is
    fine (workers start with demand); `memory_slots`: the most workers that share the memory."""
    gpus = discover_gpus() if gpus is None else gpus
    cores = os.cpu_count() or 1
    if n_cpu_workers is None:
        n_cpu_workers = max(1, cores - len(gpus))
    if isinstance(n_cpu_workers, bool) or not isinstance(n_cpu_workers, int) or n_cpu_workers < 0:
        raise InvalidError(f"invalid number of CPU workers {n_cpu_workers!r}: give an int >= 0")
    total = len(gpus) + n_cpu_workers
    if total == 0 and not adaptive:
        raise InvalidError(
            "a cluster with no workers would run nothing: no GPUs were found, so give 1 or more CPU workers"
        )
    per_worker = memory_limit or max(MEMORY_LIMIT // max(memory_slots or total, 1), 256 * 2**20)
    mib = per_worker // 2**20
    specs: dict[str, dict[str, Any]] = {}
    for gpu in gpus:
        specs[f"gpu-{gpu.index}"] = {
            "nthreads": 1,
            "host": host,
            "memory_limit": per_worker,
            "resources": {"GPU": 1, f"GPU-{gpu.model}": 1, "CPU": 1, "MEMORY": mib},
            "env": {"CUDA_VISIBLE_DEVICES": str(gpu.uuid or gpu.index), "NBFAN_GPU_MODEL": gpu.model},
        }
    for j in range(n_cpu_workers):
        specs[f"cpu-{j}"] = {
            "nthreads": 1,
            "host": host,
            "memory_limit": per_worker,
            "resources": {"CPU": 1, "MEMORY": mib},
            "env": {"CUDA_VISIBLE_DEVICES": ""} if gpus else {},
        }
    return specs


class WorkerProcess(SubprocessWorker):
    """distributed's SubprocessWorker, closed without a race: its `close` kills the `dask spec`
    process's children (the worker process and multiprocessing's resource tracker), then the
    process itself; in between, the nanny in it, still closing, can find its tracker dead, start
    another, and that one prints KeyError tracebacks into the user's terminal at exit (1 in ~25
    script exits on a loaded machine). Killing the process first does not do: the tracker then
    sees it gone and warns of leaked semaphores. So the process is stopped (SIGSTOP) first: it
    runs nothing more and still holds the tracker's pipe while its children are killed."""

    async def close(self) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            try:
                nanny = psutil.Process(process.pid)
                nanny.suspend()
                children = nanny.children(recursive=True)
            except psutil.NoSuchProcess:
                children = []
            for child in children:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            process.kill()
            await process.wait()
        await super().close()  # the process has ended: what is left is the interface's own close


def worker_specs(options: dict[str, dict[str, Any]], *, subprocess: bool, security: Any = None) -> dict[str, Any]:
    """SpecCluster worker specs. `subprocess=True` starts each nanny with `python -m dask spec`,
    so worker processes never re-import the caller's `__main__` (a plain script with no
    `if __name__ == "__main__":` guard would otherwise run again in every worker)."""
    specs: dict[str, Any] = {}
    for name, given in options.items():
        opts = {**given, "silence_logs": logging.ERROR, "death_timeout": 30, "preload": ["nbfan.cluster.worker_setup"]}
        if subprocess:
            specs[name] = {"cls": WorkerProcess, "options": {"worker_kwargs": opts, "name": name}}
        else:
            specs[name] = {"cls": Nanny, "options": {**opts, "security": security}}
    return specs


def start_local_cluster(
    n_cpu_workers: int | None = None,
    *,
    gpus: list[GpuInfo] | None = None,
    dashboard: bool = False,
    host: str = "127.0.0.1",
    port: int = 0,
    security: Any = None,
    subprocess: bool = True,
    asynchronous: bool = False,
    adaptive: AdaptiveLimits | None = None,
    events_file: Any = None,
) -> SpecCluster:
    """Start a scheduler and nanny workers on this machine (the embedded default and the daemon).
    `adaptive`: CPU workers start and stop with demand within its limits (autoscale.py)."""
    scheduler = {
        "cls": Scheduler,
        "options": {
            "host": host,
            "port": port,
            "dashboard_address": f"{host}:0",
            "dashboard": dashboard,
            "security": security,
            "preload": ["nbfan.cluster.scheduler_setup", "nbfan.scheduler.preload"],  # see scheduler/preload.py
        },
    }
    gpus = discover_gpus() if gpus is None else gpus
    template = slots = None
    if adaptive is not None:
        n_cpu_workers = adaptive.minimum
        slots = len(gpus) + adaptive.maximum  # the most workers that will share the memory
        one = worker_options(1, gpus, host, memory_slots=slots)  # a CPU worker as more are started
        template = worker_specs({"cpu": one["cpu-0"]}, subprocess=subprocess, security=security)["cpu"]
    options = worker_options(n_cpu_workers, gpus, host, adaptive=adaptive is not None, memory_slots=slots)
    workers = worker_specs(options, subprocess=subprocess, security=security)
    with dask.config.set(cluster_config()):
        cluster = SpecCluster(
            workers=workers,
            scheduler=scheduler,
            worker=template,
            asynchronous=asynchronous,
            security=security,  # the cluster object talks to its own scheduler over TLS too
            silence_logs="error",
            name="nbfan",
        )
    if adaptive is not None:
        adapt(cluster, adaptive, len(gpus), events_file)
    return cluster
