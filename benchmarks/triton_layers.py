"""WeightFormer-Tiny's dynamic layers: the Triton kernels against the PyTorch formulation, with the roofline.

    .venv/bin/python benchmarks/triton_layers.py --out benchmarks/RESULTS-triton-layers.md   # on a GPU
    .venv/bin/python benchmarks/triton_layers.py                                             # CPU: bytes only

Inference, bf16 autocast by default (as `throughput.py --dtype bfloat16`), at 224 (batch 256) and 1248
(batch 8). Two layers as a dynamic block runs them, predictor included: ``dwconv`` = ``x + conv(x, K0 +
norm(ΔK))`` (`DynamicDWConv.forward_residual`) and ``fc1+gelu`` = ``gelu(fc1(x))`` (`Mlp`'s first half),
each four ways: PyTorch eager, PyTorch under ``torch.compile``, Triton eager, Triton under
``torch.compile`` (``WFSEARCH_TRITON`` on/off); then the whole model, eager, kernels on and off.

Bytes per image: every op's tensor inputs read and outputs written (views free), counted by a dispatch
mode over one forward, per image of the batch; a Triton kernel counts as one op (its inputs read once,
its output written once). That is what eager execution moves at least; a compiler fuses some of it.
FLOPs = 2 x the layer's MACs as written (`torch.utils.flop_counter`). Roofline time = max(FLOPs / peak,
bytes / bandwidth) at the device's data-sheet peaks (`throughput.DEVICE_PEAKS`). Without a CUDA device
the timings are skipped ("needs a CUDA device") and the byte and FLOP columns are still printed.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]  # (see _device_peaks)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from torch._subclasses.fake_tensor import FakeTensorMode  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from wfsearch.models import fast_path  # noqa: E402
from wfsearch.models.layers import DynamicDWConv, DynamicLinear  # noqa: E402
from wfsearch.models.predictors import AdaptivePredictor, BilateralPredictor, _bin_matrix  # noqa: E402
from wfsearch.proxy.measure import autocast, create_model_at, resolve_dtype  # noqa: E402


def _device_peaks() -> dict:
    """`throughput.DEVICE_PEAKS`, loaded by path: benchmarks/ stays off sys.path, where a script named
    like a package torch imports would shadow it (as tabulate.py did before it became tabulate_space.py)."""
    spec = importlib.util.spec_from_file_location("_wf_throughput", os.path.join(_HERE, "throughput.py"))
    mod = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.DEVICE_PEAKS


DIM, HIDDEN, PATCH = 192, 768, 16  # WeightFormer-Tiny
CASES = {224: 256, 1248: 8}  # resolution -> batch (as throughput.py's CUDA schedule)


class ByteCounter(TorchDispatchMode):
    """Bytes of every op's tensor inputs and outputs (views and allocations excluded). Runs over fake
    tensors (nothing is computed); a ``wfsearch::`` kernel op is counted as one op and answered with a
    tensor of its output's shape."""

    def __init__(self):
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.name()
        if getattr(func, "is_view", False) or name in ("aten::empty.memory_format", "aten::empty_strided"):
            return func(*args, **kwargs)
        flat = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        out = _kernel_output(func, args, kwargs) if name.startswith("wfsearch::") else func(*args, **kwargs)
        outs = [t for t in (out if isinstance(out, (tuple, list)) else (out,)) if isinstance(t, torch.Tensor)]
        self.bytes += sum(t.numel() * t.element_size() for t in flat + outs)
        return out


def _kernel_output(func, args: tuple, kwargs: dict) -> torch.Tensor:
    a = dict(zip((arg.name for arg in func._schema.arguments), args), **kwargs)
    x = a["x"]
    if func.name() == "wfsearch::dwconv":
        return torch.empty(x.shape, dtype=x.dtype, device=x.device)
    return torch.empty((*x.shape[:-1], a["weight"].shape[0]), dtype=a["out_dtype"], device=x.device)


def layers(device: torch.device) -> dict[str, tuple[nn.Module, callable]]:
    """name -> (module, forward as a dynamic block calls it on (B, H, W, C) tokens)."""
    torch.manual_seed(0)
    dw = DynamicDWConv(DIM, 3, AdaptivePredictor(DIM, 3, 3, "gelu")).to(device).eval()
    fc1 = DynamicLinear(DIM, HIDDEN, BilateralPredictor(DIM, HIDDEN, 4, 2, "silu")).to(device).eval()
    act = nn.GELU()

    def fc1_gelu(x: torch.Tensor) -> torch.Tensor:
        if fast_path.use_triton(x, *fc1.parameters()):
            y = fc1.forward_triton(x, gelu=True)
            if y is not None:
                return y
        return act(fc1(x))
    return {"dwconv": (dw, dw.forward_residual), "fc1+gelu": (fc1, fc1_gelu)}


def count_bytes(fn, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype, triton_on: bool) -> float:
    """Bytes per image of one forward of ``fn`` on fake ``shape`` inputs (the module docstring): the
    PyTorch path's ops, or the kernel path's (on the CPU too: the kernels are counted, never run)."""
    before = fast_path.TRITON_DEVICES
    fast_path.TRITON_DEVICES = (*before, device.type)
    try:
        with FakeTensorMode(allow_non_fake_inputs=True), torch.inference_mode(), autocast(device, dtype), \
                fast_path.triton(triton_on), fast_path.fast_path(False):
            x = torch.empty(shape, device=device)
            with ByteCounter() as counter:
                fn(x)
    finally:
        fast_path.TRITON_DEVICES = before
        _bin_matrix.cache_clear()  # (it may hold fake tensors now: CUDA pooling matrices are cached)
    return counter.bytes / shape[0]


def count_flops(fn, shape: tuple[int, ...], device: torch.device) -> float:
    """FLOPs per image of the formulation as written (the flop counter runs the reference order)."""
    try:
        with FakeTensorMode(allow_non_fake_inputs=True), torch.inference_mode(), FlopCounterMode(display=False) as fc:
            fn(torch.empty(shape, device=device))
    finally:
        _bin_matrix.cache_clear()
    return fc.get_total_flops() / shape[0]


def time_ms(fn, x: torch.Tensor, dtype: torch.dtype, repeats: int = 20, warmup: int = 3) -> float:
    """Median CUDA-event milliseconds per call (inference, autocast)."""
    with torch.inference_mode(), autocast(x.device, dtype):
        for _ in range(warmup):
            fn(x)
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn(x)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def variants(fn, compile_mode: str | None) -> dict[str, callable]:
    """The four ways to run ``fn``: PyTorch / Triton (``WFSEARCH_TRITON``), eager / compiled. The switch
    is set around each call; a compiled function guards on it, so it holds one graph per setting."""
    def switched(on: bool, f):
        def run(x):
            with fast_path.triton(on):
                return f(x)
        return run
    out = {"pytorch eager": switched(False, fn), "triton eager": switched(True, fn)}
    if compile_mode:
        compiled = torch.compile(fn, mode=compile_mode, fullgraph=True, dynamic=False)
        out.update({"pytorch compiled": switched(False, compiled), "triton compiled": switched(True, compiled)})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (default: auto)")
    p.add_argument("--dtype", default="bfloat16", help="autocast dtype: bfloat16, float16, float32 (default: bfloat16)")
    p.add_argument("--res", nargs="+", type=int, default=sorted(CASES), help="resolutions (default: 224 1248)")
    p.add_argument("--compile", default="default", help="torch.compile mode for the compiled variants, or none")
    p.add_argument("--no-model", action="store_true", help="skip the whole-model rows")
    p.add_argument("--out", default=None, help="also write the Markdown report to this file")
    args = p.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    dtype, cuda = resolve_dtype(args.dtype), device.type == "cuda"
    peaks = next((v for k, v in _device_peaks().items() if cuda and k in torch.cuda.get_device_name(device)), None)
    started = time.time()
    lines = ["# Triton kernels of WeightFormer-Tiny's dynamic layers", "",
             f"Generated by `python benchmarks/triton_layers.py {' '.join(sys.argv[1:] if argv is None else argv)}`; "
             f"torch {torch.__version__}; device: "
             + (torch.cuda.get_device_name(device) if cuda else "CPU (no timings: needs a CUDA device)")
             + f"; autocast {args.dtype}; inference; bytes and FLOPs per image (module docstring).", ""]
    if peaks:
        lines.append(f"Roofline peaks: {peaks[args.dtype] / 1e12:.0f} TFLOP/s, {peaks['bandwidth'] / 1e9:.0f} GB/s.")
        lines.append("")
    head = ("| res | batch | layer | variant | MB/img | GFLOP/img | roofline us/batch (bound) | measured us/batch "
            "| % of roofline | max abs diff / max abs (vs PyTorch eager) |")
    lines += [head, "|---|---|---|---|---|---|---|---|---|---|"]
    compile_mode = None if args.compile == "none" or not cuda else args.compile
    for res in args.res:
        batch = CASES.get(res, 8)
        g = res // PATCH
        shape = (batch, g, g, DIM)  # LayerNorm's output under autocast: fp32 tokens
        x = torch.randn(shape, device=device) if cuda else None
        for lname, (module, fn) in layers(device).items():
            flops = count_flops(fn, shape, device)
            nbytes_by = {on: count_bytes(fn, shape, device, dtype, on) for on in (False, True)}
            ref = None
            for vname, run in variants(fn, compile_mode).items():
                nbytes = nbytes_by[vname.startswith("triton")]
                roof_cell, measured, pct, diff = "-", "needs a CUDA device", "-", "-"
                if peaks:
                    t_c, t_m = flops * batch / peaks[args.dtype], nbytes * batch / peaks["bandwidth"]
                    roof_us = 1e6 * max(t_c, t_m)
                    roof_cell = f"{roof_us:.1f} ({'compute' if t_c >= t_m else 'memory'})"
                if cuda:
                    try:
                        with torch.inference_mode(), autocast(device, dtype):
                            out = run(x).float()
                        ref = out if ref is None else ref  # PyTorch eager comes first
                        diff = f"{(out - ref).abs().max().item() / ref.abs().max().item():.1e}"
                        ms = time_ms(run, x, dtype)
                        measured = f"{1e3 * ms:.1f}"
                        pct = f"{100 * roof_us / (1e3 * ms):.0f}%" if peaks else "-"
                    except Exception as e:  # a variant that fails (e.g. to compile) is reported, not fatal
                        measured = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}"
                lines.append(f"| {res} | {batch} | {lname} | {vname} | {nbytes / 1e6:.2f} | {flops / 1e9:.3f} | "
                             f"{roof_cell} | {measured} | {pct} | {diff} |")
                print(lines[-1], file=sys.stderr, flush=True)
        if not args.no_model:
            model = create_model_at("weightformer_tiny", res).to(device).eval()
            mshape = (batch, 3, res, res)
            for on in (False, True):
                nbytes = count_bytes(model, mshape, device, dtype, on)
                measured = "needs a CUDA device"
                if cuda:
                    xm = torch.randn(mshape, device=device)
                    measured = f"{1e3 * time_with_switch(model, xm, dtype, on):.1f}"
                lines.append(f"| {res} | {batch} | whole model | {'triton' if on else 'pytorch'} eager | "
                             f"{nbytes / 1e6:.2f} | - | - | {measured} | - | - |")
                print(lines[-1], file=sys.stderr, flush=True)
    lines += ["", f"Run time {time.time() - started:.0f} s. GPU speed is measured only where a 'measured' "
              "column has numbers."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


def time_with_switch(model: nn.Module, x: torch.Tensor, dtype: torch.dtype, on: bool) -> float:
    with fast_path.triton(on):
        return time_ms(model, x, dtype, repeats=10)


if __name__ == "__main__":
    sys.exit(main())
