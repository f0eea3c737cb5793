"""The switches behind WeightFormer's fast evaluation, and the CPU plumbing that uses torch internals.

1. **Evaluation order** (`fast_order_enabled`): ``x (W0 + norm(ΔW))`` as written (the reference, inside
   `reference_mode()` and while torch's flop counter counts, so MACs match `cost.py`) or reassociated
   (the fast order, everywhere else, ``torch.compile`` included). Both are plain PyTorch.
2. **Eager CPU plumbing** (`use_fast_path`): in eager CPU fp32 inference, oneDNN's fused linear+pointwise
   ops with cached pre-blocked weights, and single-threaded sections for small tensors (private torch
   APIs, all here). Off with ``WFSEARCH_FAST_PATH=0``, `set_fast_path(False)` or ``with fast_path(False):``,
   and always under ``torch.compile``.
3. **Triton kernels** (`use_triton`): in CUDA inference the dynamic dwconv and fc1 run as fused kernels
   (`triton_kernels.py`). ``WFSEARCH_TRITON=0`` (off), ``eager`` (not under ``torch.compile``), default on;
   `set_triton` / ``with triton(...)``. Only `TRITON_DEVICES` take them.

A hooked fc1 predictor is called so its hooks see ``(Φa, Φb, scale)``; the layer then takes the cheapest
order from those factors, still linear in the tokens (`layers.plan_dynamic_linear`).
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from enum import StrEnum
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.weak import WeakTensorKeyDictionary

try:  # consulted on every forward, so imported once here
    from torch.utils._python_dispatch import _get_current_dispatch_mode_stack
except ImportError:  # pragma: no cover - torch without the helper
    _get_current_dispatch_mode_stack = None

__all__ = ["ENV_VAR", "TRITON_ENV_VAR", "Path", "decide_path", "fast_path", "fast_order_enabled", "hooked", "linear",
           "linear_add", "linear_gelu", "needs_grad", "onednn_fusable", "reference_mode", "set_fast_path", "set_triton",
           "single_threaded", "triton", "use_fast_path", "use_triton"]

ENV_VAR = "WFSEARCH_FAST_PATH"
_enabled = os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")
_reference_depth = 0


def use_fast_path() -> bool:
    """Whether the eager CPU plumbing may run: switched on, no reference mode, nothing compiling or tracing."""
    return _enabled and not _reference_depth and not torch.compiler.is_compiling() and not _fx_tracing()


def set_fast_path(enabled: bool) -> None:
    """Turn the eager CPU plumbing on or off for the process (the default comes from ``WFSEARCH_FAST_PATH``)."""
    global _enabled
    _enabled = bool(enabled)


@contextlib.contextmanager
def fast_path(enabled: bool = True) -> Iterator[None]:
    """`set_fast_path` for the enclosed code only."""
    global _enabled
    before, _enabled = _enabled, bool(enabled)
    try:
        yield
    finally:
        _enabled = before


@contextlib.contextmanager
def reference_mode(enabled: bool = True) -> Iterator[None]:
    """Run WeightFormer layers in their straightforward reference formulation inside the block."""
    global _reference_depth
    _reference_depth += (step := 1 if enabled else 0)
    try:
        yield
    finally:
        _reference_depth -= step


def fast_order_enabled() -> bool:
    """True unless `reference_mode()` is active or `torch.utils.flop_counter.FlopCounterMode` is counting."""
    # symbolic tracing follows the plain formulation
    return not (_reference_depth or _fx_tracing()) and (torch.compiler.is_compiling() or not _flop_counting())


def _fx_tracing() -> bool:
    """Whether `torch.fx` traces symbolically (shapes are proxies: only the plain formulation traces)."""
    return torch.fx._symbolic_trace.is_fx_symbolic_tracing()


def _dispatch_modes() -> list:
    """The active `TorchDispatchMode`s (FlopCounterMode, MemTracker, ...), innermost last."""
    return _get_current_dispatch_mode_stack() if _get_current_dispatch_mode_stack is not None else []


def _flop_counting() -> bool:
    return any(type(m).__name__ == "_FlopCounterMode" for m in _dispatch_modes())


class Path(StrEnum):
    """How one layer call runs (`decide_path`)."""

    MODULES = "modules"  # each submodule called as a module: hooks watch them, or dropout is active
    REFERENCE = "reference"  # the formulation as written (reference mode, flop counting, fx tracing)
    TRITON = "triton"  # the call site's fused Triton kernel (CUDA inference)
    ONEDNN = "onednn"  # the call site's fused oneDNN ops (eager CPU fp32 inference)
    FAST = "fast"  # plain PyTorch in the fast order, with the call site's exact fusions


def decide_path(x: torch.Tensor, *params: torch.Tensor, watched: tuple[nn.Module, ...] = (), noisy: bool = False,
              triton: bool = False, onednn: bool = False) -> Path:
    """The one decision of a layer call site on ``x``: `Path.MODULES` when ``noisy`` (dropout in training) or
    hooks watch ``watched``, `Path.REFERENCE` outside the fast order, then the site's Triton kernel (``triton``)
    or oneDNN ops (``onednn``: fusable with its last weight, no gradient), else `Path.FAST`."""
    if noisy or hooked(*watched):
        return Path.MODULES
    if not fast_order_enabled():
        return Path.REFERENCE
    if triton and use_triton(x, *params):
        return Path.TRITON
    if onednn and onednn_fusable(x, params[-1]) and not needs_grad(*params):
        return Path.ONEDNN
    return Path.FAST


TRITON_ENV_VAR = "WFSEARCH_TRITON"
TRITON_SETTINGS = ("on", "off", "eager")
# devices whose tensors take the kernels (tests add "cpu" for Triton's interpreter, TRITON_INTERPRET=1)
TRITON_DEVICES: tuple[str, ...] = ("cuda",)
_TRITON_INSTALLED = importlib.util.find_spec("triton") is not None and hasattr(torch.library, "triton_op")


_TRITON_WORDS = {**dict.fromkeys(("1", "true", "yes", "on"), "on"), **dict.fromkeys(("0", "false", "no", "off"), "off"),
                 "eager": "eager"}


def _triton_setting(value: object) -> str:
    if (v := _TRITON_WORDS.get(str(value).strip().lower())) is not None:
        return v
    raise ValueError(f"{TRITON_ENV_VAR}={value!r}: must be 1 (on), 0 (off) or eager (not under torch.compile)")


try:
    _triton = _triton_setting(os.environ.get(TRITON_ENV_VAR, "1"))
except ValueError as e:  # an environment typo must not stop every import of the package
    logging.getLogger(__name__).warning("%s; using 1 (on)", e)
    _triton = "on"


def use_triton(x: torch.Tensor, *params: torch.Tensor) -> bool:
    """Whether a dynamic layer may run its Triton kernel on ``x``: switched on, triton importable, ``x`` on a
    `TRITON_DEVICES` device, the fast order runs and nothing needs a gradient (no backward)."""
    if _triton == "off" or not _TRITON_INSTALLED or x.device.type not in TRITON_DEVICES:
        return False
    if _triton == "eager" and torch.compiler.is_compiling():
        return False
    return fast_order_enabled() and not needs_grad(x, *params)


def set_triton(enabled: bool | str) -> None:
    """Turn the Triton kernels on (True / "on"), off (False / "off") or on in eager only ("eager")."""
    global _triton
    _triton = _triton_setting({True: "on", False: "off"}.get(enabled, enabled))


@contextlib.contextmanager
def triton(enabled: bool | str = True) -> Iterator[None]:
    """`set_triton` for the enclosed code only."""
    global _triton
    before = _triton
    set_triton(enabled)
    try:
        yield
    finally:
        _triton = before


# torch's module trackers (MemTracker, FlopCounterMode) hook every module globally without reading outputs:
# they must not switch the model to the unfused paths (MemTracker would measure a path training never takes)
_TRACKER_HOOK_OWNERS = frozenset({"torch.distributed._tools.mod_tracker.ModTracker",
                                  "torch.utils.module_tracker.ModuleTracker"})


def _observes(hooks: dict) -> bool:
    for hook in hooks.values():
        owner = type(getattr(hook, "__self__", None))
        if f"{owner.__module__}.{owner.__qualname__}" not in _TRACKER_HOOK_OWNERS:
            return True
    return False


def hooked(*modules: nn.Module) -> bool:
    """Whether forward hooks watch any of ``modules`` (then they are called, not bypassed by fused code).
    Global hooks count too, except those of torch's module trackers (`_TRACKER_HOOK_OWNERS`)."""
    if not modules:
        return False
    if any(m._forward_hooks or m._forward_pre_hooks for m in modules):
        return True
    if torch.compiler.is_compiling():  # dynamo inlines the hooks of the modules it traces
        return False
    from torch.nn.modules import module as _m
    return _observes(_m._global_forward_hooks) or _observes(_m._global_forward_pre_hooks)


def needs_grad(*tensors: torch.Tensor) -> bool:
    """Whether autograd will record an op on ``tensors``."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


@contextlib.contextmanager
def single_threaded(enabled: bool = True) -> Iterator[None]:
    """Run the enclosed ops on one intra-op thread: for small tensors a parallel region costs more than the
    work, and may wait a time slice for the second thread (NOTES.md, item 9). Inference only (under
    autograd the switches cost more than they save)."""
    n = torch.get_num_threads() if enabled and not torch.is_grad_enabled() and use_fast_path() else 1
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


_HAS_LINEAR_POINTWISE = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def onednn_fusable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether oneDNN's fused linear+pointwise ops may run: `use_fast_path`, CPU fp32 inference, no autocast."""
    return (_HAS_LINEAR_POINTWISE and use_fast_path() and x.device.type == "cpu" and x.dtype == torch.float32
            and weight.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
            and not needs_grad(x, weight))


# Whether the fused oneDNN linears use a cached, pre-blocked copy of their weight (NOTES.md, item 12).
PACK_WEIGHTS = True
_packed: WeakTensorKeyDictionary = WeakTensorKeyDictionary()  # weight -> ((version, data_ptr), packed)


def packed_weight(weight: torch.Tensor) -> torch.Tensor:
    """oneDNN's blocked copy of a linear ``weight``, reused while the weight's version counter and storage are
    unchanged (an optimizer step, ``load_state_dict`` or ``.to()`` makes a fresh one); it dies with the
    weight. Inference tensors (no version counter) are not cached."""
    if not PACK_WEIGHTS or weight.is_inference() or _dispatch_modes():
        return weight  # (a dispatch mode, e.g. MemTracker, cannot look inside an opaque oneDNN tensor)
    stamp = (weight._version, weight.data_ptr())
    entry = _packed.get(weight)
    if entry is None or entry[0] != stamp:
        entry = (stamp, torch.ops.mkldnn._reorder_linear_weight(weight.detach()))
        _packed[weight] = entry
    return entry[1]


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, through oneDNN with the pre-blocked weight when fusable."""
    if onednn_fusable(x, weight):
        return torch.ops.mkldnn._linear_pointwise(x, packed_weight(weight), bias, "none", [], "")
    return F.linear(x, weight, bias)


def linear_gelu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``gelu(F.linear(x, weight, bias))`` (exact erf GELU), one fused oneDNN op in CPU fp32 inference."""
    if onednn_fusable(x, weight):
        return torch.ops.mkldnn._linear_pointwise(x, packed_weight(weight), bias, "gelu", [], "none")
    return F.gelu(F.linear(x, weight, bias))


def linear_add(x: torch.Tensor, other: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear(x, weight, bias) + other``, one fused oneDNN op in CPU fp32 inference."""
    if onednn_fusable(x, weight) and other.shape == x.shape[:-1] + weight.shape[:1] and other.dtype == x.dtype:
        return torch.ops.mkldnn._linear_pointwise.binary(x, other.contiguous(), packed_weight(weight), bias, "add")
    return F.linear(x, weight, bias) + other
