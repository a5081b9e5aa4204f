"""GPU discovery with NVML (nvidia-ml-py). No NVML, no driver or no GPU: an empty list, quietly."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

# Marketing names -> the short model names of the resource contract (GPU-<MODEL>).
_KNOWN_MODELS = (
    "GH200", "GB200", "B200", "B100", "H200", "H100", "H800", "H20", "A100", "A800", "A40", "A30", "A10G", "A10",
    "A16", "A2", "L40S", "L40", "L4", "V100", "P100", "P40", "P4", "T4", "K80", "M60",
)


@dataclass(frozen=True)
class GpuInfo:
    index: int
    model: str  # short, upper-case: "H100"
    name: str  # as NVML reports it: "NVIDIA H100 80GB HBM3"
    memory_total: int  # bytes
    uuid: str = ""


def short_model_name(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'H100'; 'NVIDIA GeForce RTX 4090' -> 'RTX4090'."""
    words = re.sub(r"(?i)\b(nvidia|tesla|geforce|quadro)\b", " ", name).upper().replace("-", " ").split()
    for word in words:
        for model in _KNOWN_MODELS:
            if word == model or (word.startswith(model) and not word[len(model):len(model) + 1].isalnum()):
                return model
    if len(words) >= 2 and words[0] in ("RTX", "GTX"):
        return words[0] + words[1]
    return re.sub(r"[^A-Z0-9]", "", words[0]) if words else "UNKNOWN"


def discover_gpus() -> list[GpuInfo]:
    """The GPUs of this machine as NVML sees them; [] where there is no NVML or no GPU."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver / no library: a CPU machine
        return []
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else name
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total
            gpus.append(GpuInfo(index, short_model_name(name), name, int(memory), uuid))
        return gpus
    except Exception:
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def visible_gpus(gpus: list[GpuInfo], cuda_visible_devices: str | None) -> list[GpuInfo]:
    """The GPUs a process sees under CUDA_VISIBLE_DEVICES, in CUDA's order (CUDA numbers them
    0, 1, ... in this order). Entries are indices or UUIDs (prefixes allowed); as in CUDA, an
    entry that names no device hides it and every entry after it."""
    if cuda_visible_devices is None:
        return list(gpus)
    seen: list[GpuInfo] = []
    for entry in (e.strip() for e in cuda_visible_devices.split(",")):
        if entry.isdigit():
            match = [g for g in gpus if g.index == int(entry)]
        else:
            match = [g for g in gpus if entry and g.uuid.startswith(entry)]
        if len(match) != 1 or match[0] in seen:
            break
        seen.append(match[0])
    return seen


def current_gpus() -> list[GpuInfo]:
    """The GPUs this process (a worker running your function) may use: NVML's devices filtered
    by CUDA_VISIBLE_DEVICES. [] on a CPU worker. `GpuInfo.index` is NVML's (physical) index;
    inside the process CUDA calls them cuda:0, cuda:1, ... in the order returned."""
    return visible_gpus(discover_gpus(), os.environ.get("CUDA_VISIBLE_DEVICES"))
