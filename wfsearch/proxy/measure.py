"""Honest throughput measurement: warm-up, repeats, models interleaved, medians.

Interleaving runs every model once per repeat, in turn, so a noisy or shared device (another
process, frequency scaling) slows all of them alike and the ratios stay stable.
"""
from __future__ import annotations

import contextlib
import logging
import statistics
import time
from dataclasses import dataclass, field
from typing import Iterator

import torch
import torch.nn as nn

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; otherwise any torch device string."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device={name!r}: not a torch device; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r}: CUDA is not available on this machine; use auto or cpu")
    return dev


def resolve_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"dtype={name!r}: must be one of {sorted(DTYPES)}")
    return DTYPES[name]


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Autocast to ``dtype`` (bf16/fp16) on the device; a no-op for float32."""
    if dtype == torch.float32:
        yield
    else:
        with torch.autocast(device_type=device.type, dtype=dtype):
            yield


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def create_model_at(name: str, img_size: int, **kwargs) -> nn.Module:
    """A timm model (``weightformer_*`` or any registered name) built for ``img_size`` inputs."""
    import timm

    import wfsearch.models  # noqa: F401  (registers weightformer_*)

    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:5]
        raise ValueError(f"model {name!r}: not a registered timm model" + (f"; similar: {close}" if close else ""))
    try:
        return timm.create_model(name, img_size=img_size, **kwargs)
    except TypeError:  # models without an img_size argument (convnets) take any resolution
        return timm.create_model(name, **kwargs)


def count_macs(model: nn.Module, img_size: int, in_chans: int = 3) -> int:
    """MACs of one image: the analytic formula for WeightFormer, `torch.utils.flop_counter` otherwise."""
    from wfsearch.models import WeightFormer, cost

    if isinstance(model, WeightFormer):
        return cost(model.arch, img_size)["macs"]
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    p = next(model.parameters(), None)
    x = torch.zeros(1, in_chans, img_size, img_size, device=p.device if p is not None else "cpu")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() // 2


@dataclass
class Throughput:
    """Images/s of each repeat, and the median."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")


def _timed_run(step, device: torch.device, iters: int) -> float:
    """Seconds for ``iters`` calls of ``step`` (CUDA events on GPU, a monotonic clock otherwise)."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            step()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1000.0
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    return time.perf_counter() - t0


def measure_throughput(models: dict[str, nn.Module], img_size: int, batch_size: int,
                       device: torch.device | str = "cpu", dtype: str = "float32", warmup: int = 2,
                       repeats: int = 5, iters: int = 3, train: bool = False,
                       in_chans: int = 3) -> dict[str, Throughput]:
    """Images/s of each model at ``img_size`` x ``batch_size``, interleaved over ``repeats``.

    ``train=True`` times a forward+backward step (no optimizer) instead of inference.
    """
    device = resolve_device(device) if isinstance(device, str) else device
    tdtype = resolve_dtype(dtype)
    x = torch.randn(batch_size, in_chans, img_size, img_size, device=device)
    steps = {}
    for name, model in models.items():
        model.to(device).train(train)

        def step(model=model):
            if train:
                with autocast(device, tdtype):
                    out = model(x)
                out.float().sum().backward()
            else:
                with torch.inference_mode(), autocast(device, tdtype):
                    model(x)

        steps[name] = step
    for step in steps.values():
        for _ in range(warmup):
            step()
    _sync(device)
    results = {name: Throughput() for name in models}
    for _ in range(repeats):
        for name, step in steps.items():
            seconds = _timed_run(step, device, iters)
            results[name].samples.append(batch_size * iters / seconds)
    if train:
        for model in models.values():
            model.zero_grad(set_to_none=True)
    return results
