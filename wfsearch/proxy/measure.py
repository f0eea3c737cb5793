"""Honest throughput measurement: warm-up, repeats, models interleaved, medians.

Interleaving runs every model once per repeat, in turn, so a noisy or shared device (another
process, frequency scaling) slows all of them alike and the ratios stay stable.
"""
from __future__ import annotations

import contextlib
import logging
import os
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
import torch.nn as nn

from wfsearch.space.spec import ThroughputSpec

from .allocator import release_memory, steady_allocations
from .devicelock import device_lock
from wfsearch.study.interval import Interval, median_interval, spread

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


def _step(model: nn.Module, x: torch.Tensor, device: torch.device, tdtype: torch.dtype, train: bool) -> Callable:
    """One inference call of ``model`` on ``x``, or with ``train`` a forward+backward step (no optimizer)."""
    def step() -> None:
        if train:
            with autocast(device, tdtype):
                out = model(x)
            out.float().sum().backward()
        else:
            with torch.inference_mode(), autocast(device, tdtype):
                model(x)
    return step


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
    """MACs of one image: the analytic formula for WeightFormer, `torch.utils.flop_counter` otherwise.

    Attention is counted under the math SDPA backend: some fused kernels (the CPU flash kernel in Torch 2.14)
    have no flop formula and would silently drop the N^2 term. Works on the meta device.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from wfsearch.models import WeightFormer, cost

    if isinstance(model, WeightFormer):
        return cost(model.arch, img_size)["macs"]
    was_training = model.training
    model.eval()
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    x = (torch.empty if device.type == "meta" else torch.zeros)(1, in_chans, img_size, img_size, device=device)
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


@dataclass
class Throughput:
    """Images/s of each repeat, and the median."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def interval(self) -> Interval:  # the median with its distribution-free 90% interval
        return median_interval(self.samples)

    @property
    def spread(self) -> float:  # (max - min) / median over the repeats
        return spread(self.samples)


def _timed_run(step, device: torch.device, iters: int, clock: str = "wall") -> float:
    """Seconds for ``iters`` calls of ``step``: CUDA events on GPU; on CPU a monotonic wall clock,
    or with ``clock="process"`` this process's CPU time (see `measure_throughput`)."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            step()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1000.0
    timer = time.process_time if clock == "process" else time.perf_counter
    t0 = timer()
    for _ in range(iters):
        step()
    return timer() - t0


def measure_throughput(models: dict[str, nn.Module], img_size: int, batch_size: int,
                       device: torch.device | str = "cpu", dtype: str = "float32", warmup: int = 2,
                       repeats: int = 5, iters: int = 3, train: bool = False,
                       in_chans: int = 3, alternate: bool = False, clock: str = "wall",
                       shuffle: bool = False, on_repeat: Callable[[int, int], None] | None = None
                       ) -> dict[str, Throughput]:
    """Images/s of each model at ``img_size`` x ``batch_size``, interleaved over ``repeats``.

    ``train=True`` times a forward+backward step (no optimizer). ``alternate=True`` reverses the order on
    every other repeat, so a drifting load does not favour the first model. ``shuffle=True`` uses a fresh
    random order per repeat (seeded from the OS), so two concurrent measurements do not lock into a fixed
    pairing that biases both ratios. ``clock="process"`` times CPU runs by this process's CPU time (time
    slices lost to other processes do not count; ignored on CUDA). ``on_repeat(done, repeats)`` is called
    after the warm-up (done 0) and after every repeat.
    """
    if clock not in ("wall", "process"):
        raise ValueError(f"clock={clock!r}: must be 'wall' or 'process'")
    steady_allocations()  # on glibc: no per-batch mmap page faults, no per-process speed lottery
    device = resolve_device(device) if isinstance(device, str) else device
    tdtype = resolve_dtype(dtype)
    x = torch.randn(batch_size, in_chans, img_size, img_size, device=device)
    steps = {name: _step(model.to(device).train(train), x, device, tdtype, train) for name, model in models.items()}
    for step in steps.values():
        for _ in range(warmup):
            step()
    _sync(device)
    results = {name: Throughput() for name in models}
    rng = random.Random(os.urandom(8)) if shuffle else None
    for r in range(repeats):
        if on_repeat is not None:
            on_repeat(r, repeats)
        order = list(steps.items())
        if rng is not None:
            rng.shuffle(order)
        elif alternate and r % 2:
            order.reverse()
        for name, step in order:
            seconds = _timed_run(step, device, iters, clock)
            results[name].samples.append(batch_size * iters / seconds)
    if on_repeat is not None:
        on_repeat(repeats, repeats)
    if train:
        for model in models.values():
            model.zero_grad(set_to_none=True)
    return results


COMPILE_MODES = ("none", "default", "max-autotune")
_COMPILED_CACHE_SIZE = 6  # compiled models kept per worker (each holds its model and inductor's kernels)
_compiled: dict[tuple, tuple[nn.Module, float]] = {}


class _Compiled(nn.Module):
    """A compiled model: ``train()``/``to()`` reach the original; with CUDA graphs every call starts a new
    graph step (a previous step's outputs may be overwritten, as when deployed with CUDA graphs)."""

    def __init__(self, model: nn.Module, compiled, cudagraphs: bool):
        super().__init__()
        self.model = model
        object.__setattr__(self, "_fn", compiled)  # not a submodule: parameters and state_dict stay the model's
        self.cudagraphs = cudagraphs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        return self._fn(x)


def compile_model(model: nn.Module, mode: str, img_size: int, batch_size: int,
                  device: torch.device | str = "cpu", dtype: str = "float32", train: bool = False,
                  in_chans: int = 3, key: object = None) -> tuple[nn.Module, float]:
    """``(model under torch.compile, seconds compiling)`` for ``mode`` (`COMPILE_MODES`), compiled by one
    untimed call at ``batch_size x img_size`` on ``device``; ``none`` returns ``(model, 0.0)``.

    WeightFormer compiles as one graph (``fullgraph=True``); other timm models as they come. ``max-autotune``
    also captures CUDA graphs on CUDA. Shapes are static: each resolution gets its own kernels. With ``key``
    the compiled model is cached in this process and returned again, with the seconds of its first compile.
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile={mode!r}: must be one of {', '.join(COMPILE_MODES)}")
    if mode == "none":
        return model, 0.0
    from wfsearch.models import WeightFormer

    device = resolve_device(device) if isinstance(device, str) else device
    full_key = None if key is None else (key, mode, img_size, batch_size, str(device), dtype, train, in_chans)
    if full_key is not None and full_key in _compiled:
        return _compiled[full_key]
    if len(_compiled) >= _COMPILED_CACHE_SIZE:
        clear_compiled()  # dynamo's per-function cache is bounded too: start both afresh
    model.to(device).train(train)
    compiled = torch.compile(model, mode=None if mode == "default" else mode, dynamic=False,
                             fullgraph=isinstance(model, WeightFormer))
    wrapped = _Compiled(model, compiled, cudagraphs=device.type == "cuda" and mode == "max-autotune")
    step = _step(wrapped, torch.randn(batch_size, in_chans, img_size, img_size, device=device), device,
                 resolve_dtype(dtype), train)
    t0 = time.perf_counter()
    for _ in range(2 if wrapped.cudagraphs else 1):  # CUDA graphs are recorded on the second call
        step()
    _sync(device)
    seconds = time.perf_counter() - t0
    model.zero_grad(set_to_none=True)
    if full_key is not None:
        _compiled[full_key] = (wrapped, seconds)
    return wrapped, seconds


def _compile_for_measurement(models: dict[str, nn.Module], identity: str, s: ThroughputSpec,
                             device: torch.device) -> tuple[dict, dict[str, nn.Module]]:
    """`compile_model` of the model and its reference, cached by identity; ``({name: seconds}, {name: model})``."""
    seconds, compiled = {}, {}
    for name, model in models.items():
        key = identity if name == "model" else f"timm:{s.reference}"
        compiled[name], seconds[name] = compile_model(model, s.compile, s.img_size, s.batch_size, device,
                                                      s.dtype, key=key)
    return seconds, compiled


def clear_compiled() -> None:
    """Forget the compiled models of this process (and dynamo's compiled code)."""
    _compiled.clear()
    torch._dynamo.reset()


def resolved_clock(clock: str, device: torch.device) -> str:
    """The timer of ``throughput.clock``: ``auto`` is ``process`` (CPU time) for single-threaded CPU runs,
    ``wall`` otherwise; always ``wall`` on CUDA (timed by events)."""
    if device.type != "cpu":
        return "wall"
    if clock == "auto":
        return "process" if torch.get_num_threads() == 1 else "wall"
    return clock


def device_label(device: torch.device) -> str:
    """What a throughput figure depends on: the device model, and the thread count on CPU."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    import platform

    return f"cpu:{platform.processor() or platform.machine()}:{torch.get_num_threads()}t"


def peak_memory_bytes(model: nn.Module, img_size: int, batch_size: int, device: torch.device | str = "cpu",
                      dtype: str = "float32", train: bool = True, in_chans: int = 3) -> int | None:
    """Peak bytes of one step on ``batch_size`` images: parameters, buffers, input, activations and, with
    ``train=True`` (forward, backward, AdamW update), gradients and optimizer state. CUDA: the allocator's
    peak from before the model moves to the device; CPU: torch's `MemTracker` (None where torch lacks it).
    """
    device = resolve_device(device) if isinstance(device, str) else device
    tdtype = resolve_dtype(dtype)
    was_training = model.training
    model.train(train)

    def step(optimizer) -> None:
        x = torch.randn(batch_size, in_chans, img_size, img_size, device=device)
        if train:
            with autocast(device, tdtype):
                out = model(x)
            out.float().logsumexp(-1).mean().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        else:
            with torch.inference_mode(), autocast(device, tdtype):
                model(x)

    params = [p for p in model.parameters() if p.requires_grad]
    try:
        if device.type == "cuda":
            model.cpu()
            torch.cuda.synchronize(device)
            torch.cuda.empty_cache()
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            model.to(device)
            optimizer = torch.optim.AdamW(params) if train else None
            step(optimizer)
            torch.cuda.synchronize(device)
            return int(torch.cuda.max_memory_allocated(device) - base)
        try:
            from torch.distributed._tools.mem_tracker import MemTracker
        except ImportError:  # pragma: no cover  (torch built without distributed)
            return None
        model.to(device)
        optimizer = torch.optim.AdamW(params) if train else None
        tracker = MemTracker()
        tracker.track_external(model, *([optimizer] if optimizer else []))
        with tracker:
            step(optimizer)
        return int(tracker.get_tracker_snapshot("peak")[device]["Total"])
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)


def latency_ms(model: nn.Module, img_size: int, device: torch.device | str = "cpu", dtype: str = "float32",
               batch_size: int = 1, repeats: int = 3, in_chans: int = 3) -> float:
    """Median inference latency in milliseconds *per image* at ``img_size`` (after one warm-up batch)."""
    device = resolve_device(device) if isinstance(device, str) else device
    tdtype = resolve_dtype(dtype)
    was_training = model.training
    model.to(device).eval()
    step = _step(model, torch.randn(batch_size, in_chans, img_size, img_size, device=device), device, tdtype, False)
    step()
    _sync(device)
    seconds = statistics.median(_timed_run(step, device, 1) for _ in range(repeats))
    model.train(was_training)
    return 1000.0 * seconds / batch_size


def build_target(arch, img_size: int, **kwargs) -> tuple[nn.Module, str, object]:
    """(model at ``img_size``, identity ``arch:<hash>`` or ``timm:<name>``, ArchConfig or None) of an
    `ArchConfig`, its dict or a timm name."""
    from wfsearch.models import ArchConfig, build

    if isinstance(arch, dict):
        arch = ArchConfig.from_dict(arch)
    if isinstance(arch, ArchConfig):
        cfg = arch.replace(img_size=img_size, **kwargs)
        return build(cfg), f"arch:{cfg.hash}", cfg
    if isinstance(arch, str):
        from wfsearch.models import WeightFormer

        model = create_model_at(arch, img_size, **kwargs)
        return model, f"timm:{arch}", model.arch if isinstance(model, WeightFormer) else None
    raise TypeError(f"expected an ArchConfig, its dict or a timm model name, got {type(arch).__name__}")


def throughput_costs(model: Throughput, reference: Throughput | None = None) -> dict:
    """The throughput entries of `measure_arch`'s costs: medians, per-repeat values and 90% intervals. The
    ratio is the median of the per-repeat ratios (a slowdown during one repeat cancels out)."""
    out: dict = {"throughput_img_s": model.median, "throughput_img_s_samples": list(model.samples),
                 "throughput_img_s_interval": model.interval.to_dict()}
    if reference is None:
        out.update(throughput_ratio=None, reference_throughput=None)
        return out
    ratios = [a / b for a, b in zip(model.samples, reference.samples)]
    out.update(throughput_ratio=statistics.median(ratios), ratio_samples=ratios,
               throughput_ratio_interval=median_interval(ratios).to_dict(),
               reference_throughput=reference.median, reference_samples=list(reference.samples),
               reference_throughput_interval=reference.interval.to_dict())
    return out


def measure_arch(arch, throughput: ThroughputSpec | dict | None = None, cache=None, refresh: bool = False,
                 memory: bool = True) -> dict:
    """Costs of the network ``arch`` (the deployed `ArchConfig`, its dict, or a timm model name) in the spec's
    ``throughput`` setting (or its JSON dict; None: the defaults).

    Returns ``{"params", "macs", "activation_bytes", "peak_memory_bytes", "throughput_img_s",
    "throughput_ratio", "reference_throughput", "latency_highres_ms", "device", "clock"}`` plus
    `throughput_costs`' per-repeat values and intervals; ``memory=False`` skips the training step's peak
    memory. Cached by (architecture, device, resolution, ...) in this process, and across processes with
    ``cache`` = a `MeasureCache` or a cache folder.
    """
    from wfsearch.models import cost
    from wfsearch.space import validate_model

    from .cache import MeasureCache, default_cache

    s = throughput if isinstance(throughput, ThroughputSpec) else validate_model(ThroughputSpec, throughput or {},
                                                                                  "spec", ("throughput",))
    store = cache if isinstance(cache, MeasureCache) else default_cache(cache)
    device = resolve_device(s.device)
    model, identity, cfg = build_target(arch, s.img_size)
    clock = resolved_clock(s.clock, device)
    key = {"model": identity, "device": device_label(device), "clock": clock, "img_size": s.img_size,
           "batch_size": s.batch_size, "dtype": s.dtype, "reference": s.reference, "train": False,
           "memory": memory, "highres": s.highres, "highres_batch_size": s.highres_batch_size,
           "format": 3}  # 2: with per-repeat values and intervals; 3: the measured rate named throughput_img_s
    if s.compile != "none":  # (left out when eager, so eager entries cached before still count)
        key["compile"] = s.compile
    if not refresh:
        hit = store.get(key)
        if hit is not None:
            log.debug("measurement cache hit for %s", identity)
            return dict(hit)
    t0 = time.perf_counter()
    costs: dict = {"params": sum(p.numel() for p in model.parameters()),
                   "macs": int(count_macs(model, s.img_size)),
                   "activation_bytes": cost(cfg)["activation_bytes"] if cfg is not None else None}
    models = {"model": model}
    if s.reference:
        models["reference"] = create_model_at(s.reference, s.img_size)
    t_lock = time.perf_counter()
    with device_lock(device).exclusive() if s.exclusive else contextlib.nullcontext():
        t_wait = time.perf_counter() - t_lock
        costs["peak_memory_bytes"] = (peak_memory_bytes(model, s.img_size, s.batch_size, device, s.dtype)
                                      if memory else None)
        if s.compile != "none":
            costs["compile_seconds"], models = _compile_for_measurement(models, identity, s, device)
        tp = measure_throughput(models, s.img_size, s.batch_size, device, s.dtype, warmup=s.warmup,
                                repeats=s.repeats, iters=s.iters, clock=clock, shuffle=True)
        highres_model = model
        if s.highres and s.compile != "none":  # its own kernels at that resolution
            highres_model, costs["compile_seconds"]["highres"] = compile_model(
                model, s.compile, s.highres, s.highres_batch_size, device, s.dtype, key=identity)
        costs["latency_highres_ms"] = (latency_ms(highres_model, s.highres, device, s.dtype,
                                                  s.highres_batch_size) if s.highres else None)
    costs.update(throughput_costs(tp["model"], tp.get("reference")))
    costs["device"], costs["clock"] = key["device"], clock
    log.info("measured %s in %.1fs (%.1fs waiting for the device): %s", identity, time.perf_counter() - t0,
             t_wait, costs)
    del models, model, tp
    if device.type == "cuda":
        torch.cuda.empty_cache()
    release_memory()  # the heap this architecture's shapes grew, back to the OS (allocator.py)
    store.put(key, costs)
    return dict(costs)
