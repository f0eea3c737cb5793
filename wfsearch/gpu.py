"""Does this machine have a GPU torch can use? Answered without importing torch where it cannot have one.

Importing torch costs a process about 470 MB and seconds of start-up. The processes that only plan a search
(the spec's memory check, ``wfsearch run``'s driver, which starts Ray and records the hardware) need torch
only to ask CUDA about its devices; on a Linux machine with no NVIDIA or AMD device node torch would answer
"none", so they skip it. Everywhere else (another OS, a device node present, torch already loaded) torch is
asked, as before.
"""
from __future__ import annotations

import glob
import os
import sys
from importlib import metadata
from typing import Any

# the device nodes a CUDA (NVIDIA), ROCm (AMD: torch.cuda too) or WSL GPU driver creates
DEVICE_NODES = ("/dev/nvidia[0-9]*", "/dev/kfd", "/dev/dxg")


def may_have_gpu() -> bool:
    """False only where torch.cuda cannot find a device: Linux, torch not loaded, no GPU device node."""
    if "torch" in sys.modules or not sys.platform.startswith("linux"):
        return True
    return bool(device_nodes())


def device_nodes() -> list[str]:
    """The GPU device nodes of this machine (none on a machine without a GPU driver)."""
    return [node for pattern in DEVICE_NODES for node in glob.glob(pattern)]


def gpu_count() -> int:
    """The number of GPUs torch can use here (0 without importing torch where there can be none)."""
    if not may_have_gpu():
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
    """The torch version (as installed, on every machine alike) and the GPUs it sees, for a study's hardware record."""
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:  # pragma: no cover - torch is a dependency
        version = None
    info: dict[str, Any] = {"torch": version, "cuda": False}
    if gpu_count():
        import torch

        info.update(cuda=True, gpus=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
    return info
