"""Does this machine have a GPU torch can use? Answered without importing torch (about 470 MB and seconds of
start-up) where it cannot have one: on Linux with no NVIDIA, AMD or WSL device node torch would answer "none".
"""
from __future__ import annotations

import glob
import sys
from importlib import metadata
from typing import Any

# the device nodes a CUDA (NVIDIA), ROCm (AMD: torch.cuda too) or WSL GPU driver creates
DEVICE_NODES = ("/dev/nvidia[0-9]*", "/dev/kfd", "/dev/dxg")


def device_nodes() -> list[str]:
    """The GPU device nodes of this machine (none on a machine without a GPU driver)."""
    return [node for pattern in DEVICE_NODES for node in glob.glob(pattern)]


def gpu_count() -> int:
    """The number of GPUs torch can use here (0 without importing torch where there can be none)."""
    if "torch" not in sys.modules and sys.platform.startswith("linux") and not device_nodes():
        return 0
    import torch
    return torch.cuda.device_count()


def gpu_memory() -> int | None:
    """Bytes of memory of the first GPU, or None where there is none."""
    if not gpu_count():
        return None
    import torch
    return torch.cuda.get_device_properties(0).total_memory


def gpu_info() -> dict[str, Any]:
    """The torch version (as installed) and the GPUs it sees, for a study's hardware record."""
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:  # pragma: no cover - torch is a dependency
        version = None
    info: dict[str, Any] = {"torch": version, "cuda": False}
    if gpu_count():
        import torch
        info.update(cuda=True, gpus=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
    return info
