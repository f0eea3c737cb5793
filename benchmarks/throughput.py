"""WeightFormer against DeiT: inference and training throughput, and training peak memory, by resolution.

    .venv/bin/python benchmarks/throughput.py --out benchmarks/RESULTS.md

Built on `wfsearch.proxy.measure` (the helpers behind ``wfsearch bench``): at each resolution every
model runs once per repeat, in turn (interleaved), after warm-up, and the median of the repeats is
reported, so a shared, noisy machine slows all models alike and the ratios stay meaningful. On CUDA
the timings come from CUDA events. A training step is forward + backward (no optimizer update);
peak memory is that of one full training step (forward, backward, AdamW update), from
`peak_memory_bytes`. ``NAME[reference]`` runs a WeightFormer in its reference formulation
(`wfsearch.models.reference_mode`), ``NAME[compiled]`` under ``torch.compile`` in the ``--compile``
mode (`wfsearch.proxy.measure.compile_model`: compiled by an untimed call first, compile time reported).
``--compile MODE`` adds ``NAME[compiled]`` for every plain model and reports compiled over eager.

    .venv/bin/python benchmarks/throughput.py --compile default --threads 1 --res 224 896 --no-train \
        --models weightformer_tiny deit_tiny_patch16_224 --out benchmarks/RESULTS-compile.md

``proxy:NAME`` is the quick start's proxy network (spaces/predictors.yaml's reference NAME at the proxy's
size; ``proxy:deit`` a DeiT of the same patch, width and depth): its training step at the proxy's
resolution and batch, against the reference formulation and DeiT, side by side:

    .venv/bin/python benchmarks/throughput.py --threads 1 --clock process --res 56 --batch 64 --no-memory \
        --models proxy:released proxy:released[reference] proxy:deit --out benchmarks/RESULTS-proxy-train.md
"""
from __future__ import annotations

import os
import sys

# OpenMP reads its wait policy when torch loads it, so the flag is looked at before importing torch.
if "--omp-wait-policy" in sys.argv[:-1]:
    _policy = sys.argv[sys.argv.index("--omp-wait-policy") + 1]
    if _policy.upper() in ("PASSIVE", "ACTIVE"):
        os.environ["OMP_WAIT_POLICY"] = _policy.upper()

import argparse
import datetime
import platform
import subprocess
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

from pathlib import Path

from wfsearch.models import reference_mode
from wfsearch.proxy.measure import (COMPILE_MODES, compile_model, count_macs, create_model_at, measure_throughput,
                                    peak_memory_bytes, resolve_device, resolved_clock)

ROOT = Path(__file__).resolve().parents[1]
PAIRS = [("weightformer_tiny", "deit_tiny_patch16_224"), ("weightformer_small", "deit_small_patch16_224")]
DEFAULT_MODELS = ["weightformer_tiny", "deit_tiny_patch16_224", "weightformer_small", "deit_small_patch16_224",
                  "weightformer_tiny[reference]"]


@dataclass(frozen=True)
class Schedule:
    """Batch size and timing repeats at one resolution (sized so the whole run takes minutes on 2 CPU cores)."""

    batch: int
    repeats: int
    iters: int
    warmup: int = 1


SCHEDULES = {224: Schedule(16, 5, 1), 512: Schedule(4, 3, 1), 896: Schedule(2, 5, 1), 1248: Schedule(1, 3, 1)}
# On a GPU: batches that fill it, more repeats and batches per repeat (CUDA events time each repeat).
CUDA_SCHEDULES = {224: Schedule(256, 7, 5, 3), 512: Schedule(64, 7, 5, 3), 896: Schedule(16, 7, 5, 3),
                  1248: Schedule(8, 7, 5, 3)}


class ReferencePath(nn.Module):
    """Runs ``model`` with the WeightFormer layers in their reference formulation."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with reference_mode():
            return self.model(x)


QUICKSTART = ROOT / "spaces" / "predictors.yaml"


def proxy_model(name: str, img_size: int) -> nn.Module:
    """The quick start's proxy network (``spaces/predictors.yaml``: its base at the proxy's patch, width, depth
    and classes) as ``proxy:REFERENCE`` (a reference of the spec by name: ``proxy:released``,
    ``proxy:all_static``) or ``proxy:deit`` (DeiT with the same patch, width, depth and classes, 32-wide heads)."""
    from wfsearch.proxy.measure import build_target
    from wfsearch.space import load_spec

    spec = load_spec(QUICKSTART)
    what = name.removeprefix("proxy:")
    refs = {r.name: r.arch for r in spec.reference_archs() if r.arch is not None}
    if what == "deit":
        a = refs["all_static"]
        return create_model_at("deit_tiny_patch16_224", img_size, patch_size=a.patch_size, embed_dim=a.embed_dim,
                               depth=a.depth, num_heads=max(1, a.embed_dim // 32), num_classes=a.num_classes)
    if what not in refs:
        raise ValueError(f"model {name!r}: proxy:NAME takes a reference of {QUICKSTART.name} ({sorted(refs)}) or deit")
    return build_target(refs[what], img_size)[0]


def build(spec: str, img_size: int) -> tuple[nn.Module, nn.Module]:
    """``(model to time, plain model)`` for ``NAME``, ``NAME[reference]`` or ``NAME[compiled]``."""
    name, _, variant = spec.partition("[")
    variant = variant.rstrip("]")
    model = proxy_model(name, img_size) if name.startswith("proxy:") else create_model_at(name, img_size)
    if variant == "reference":
        return ReferencePath(model), model
    if variant == "compiled":
        return model, model  # compiled in `run`, at the resolution and batch it is timed at
    if variant:
        raise ValueError(f"model {spec!r}: the variant must be [reference] or [compiled]")
    return model, model


# Dense peaks of a device (FLOP/s by dtype; fp32 without TF32) and its memory bandwidth (bytes/s), from
# the vendors' data sheets (SXM parts). Override with --peak-tflops / --bandwidth-gbs.
DEVICE_PEAKS = {
    "H200": {"bandwidth": 4.8e12, "bfloat16": 989e12, "float16": 989e12, "float32": 67e12},
    "H100": {"bandwidth": 3.35e12, "bfloat16": 989e12, "float16": 989e12, "float32": 67e12},
    "A100": {"bandwidth": 2.0e12, "bfloat16": 312e12, "float16": 312e12, "float32": 19.5e12},
}


class _TrafficCounter(TorchDispatchMode):
    """Bytes written by the ops that a fusing compiler cannot fold into a neighbour: every op's outputs
    except element-wise ops (assumed fused into their producer or consumer) and views."""

    def __init__(self, element_bytes: int):
        super().__init__()
        self.element_bytes, self.bytes = element_bytes, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if torch.Tag.pointwise not in func.tags and not getattr(func, "is_view", False):
            for t in (out if isinstance(out, (tuple, list)) else (out,)):
                if isinstance(t, torch.Tensor) and t.is_floating_point():
                    self.bytes += t.numel() * self.element_bytes
        return out


def roofline_estimate(model: nn.Module, img_size: int, dtype: str = "float32", batch: int = 1) -> tuple[float, float]:
    """``(FLOPs, bytes moved)`` per image of inference at ``img_size`` for the roofline.

    FLOPs are twice the MACs (`count_macs`: analytic for WeightFormer, counted for timm models). Bytes
    are a lower estimate for a well-fused implementation: every non-element-wise op's result written
    once and read once (activations at the dtype's width, from one CPU forward of the model as
    eager PyTorch evaluates it), plus the weights read once per batch of ``batch`` images.
    """
    element = torch.finfo(getattr(torch, dtype)).bits // 8
    macs = count_macs(model, img_size)
    was_training = model.training
    model.eval()
    counter = _TrafficCounter(element)
    p = next(model.parameters())
    with torch.inference_mode(), counter:
        model(torch.zeros(1, 3, img_size, img_size, device=p.device))
    model.train(was_training)
    weights = sum(q.numel() for q in model.parameters()) * element
    return 2.0 * macs, 2.0 * counter.bytes + weights / batch


def roofline_ips(flops: float, nbytes: float, peak_flops: float, bandwidth: float) -> tuple[float, str]:
    """Images/s at the roofline (the slower of compute and memory at the device's peaks) and which binds."""
    t_compute, t_memory = flops / peak_flops, nbytes / bandwidth
    return 1.0 / max(t_compute, t_memory), ("compute" if t_compute >= t_memory else "memory")


def device_peaks(args: argparse.Namespace, device: torch.device) -> tuple[float, float] | None:
    """(peak FLOP/s at ``args.dtype``, bandwidth bytes/s) from the flags or `DEVICE_PEAKS`; None if unknown."""
    known = {}
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        known = next((v for k, v in DEVICE_PEAKS.items() if k in name), {})
    peak = args.peak_tflops * 1e12 if args.peak_tflops else known.get(args.dtype)
    bandwidth = args.bandwidth_gbs * 1e9 if args.bandwidth_gbs else known.get("bandwidth")
    return (peak, bandwidth) if peak and bandwidth else None


def schedule_for(res: int, batch: int | None, cuda: bool = False) -> Schedule:
    table = CUDA_SCHEDULES if cuda else SCHEDULES
    s = table.get(res) or min(table.items(), key=lambda kv: abs(kv[0] - res))[1]
    return Schedule(batch or s.batch, s.repeats, s.iters, s.warmup)


def machine(device: torch.device) -> dict[str, str]:
    info = {"python": platform.python_version(), "torch": torch.__version__}
    try:
        import timm
        info["timm"] = timm.__version__
    except ImportError:  # pragma: no cover
        pass
    if device.type == "cuda":
        info["device"] = f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}, CUDA-event timing)"
    else:
        cpu = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        isa = torch.backends.cpu.get_cpu_capability()
        info["device"] = f"CPU {cpu}, {os.cpu_count()} cores visible, {torch.get_num_threads()} torch threads, {isa}"
        info["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", "unset (libgomp default: spin, then sleep)")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__)), check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
        info["commit"] = commit + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        pass
    return info


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return None


def run(args: argparse.Namespace) -> str:
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine(device)  # before the run: the commit measured, not one made meanwhile
    clock = resolved_clock(args.clock, device)
    info["clock"] = {"process": "CPU time of this process (other processes' use of the machine does not count)",
                     "wall": "wall clock"}[clock] if device.type == "cpu" else "CUDA events"
    loads = [load_average()]
    started = time.time()
    peaks_bw = device_peaks(args, device)
    if peaks_bw is not None:
        info["roofline peaks"] = f"{peaks_bw[0] / 1e12:.0f} TFLOP/s ({args.dtype}), {peaks_bw[1] / 1e9:.0f} GB/s"
    rows = []  # (res, spec, batch, params, macs, infer, train, peak, roofline)
    compile_seconds = {}  # (res, spec) -> seconds
    for res in args.res:
        sched = schedule_for(res, args.batch, device.type == "cuda")
        built = {spec: build(spec, res) for spec in args.models}
        timed = {spec: m for spec, (m, _) in built.items()}
        for spec in args.models:
            if spec.endswith("[compiled]"):
                print(f"[{res}] compiling {spec} ({args.compile}) ...", file=sys.stderr, flush=True)
                timed[spec], compile_seconds[res, spec] = compile_model(
                    built[spec][1], args.compile, res, sched.batch, device, args.dtype)
        print(f"[{res}] batch {sched.batch}: inference ...", file=sys.stderr, flush=True)
        infer = measure_throughput(timed, res, sched.batch, device, args.dtype, warmup=sched.warmup,
                                   repeats=sched.repeats, iters=sched.iters, train=False, clock=clock)
        train, peaks = {}, {}
        if not args.no_train:
            print(f"[{res}] batch {sched.batch}: training step ...", file=sys.stderr, flush=True)
            train = measure_throughput(timed, res, sched.batch, device, args.dtype, warmup=sched.warmup,
                                       repeats=sched.repeats, iters=sched.iters, train=True, clock=clock)
            if not args.no_memory:
                peaks = {spec: peak_memory_bytes(m, res, sched.batch, device, args.dtype) for spec, m in timed.items()
                         if not spec.endswith("[compiled]")}  # (a dispatch mode and dynamo do not mix)
        loads.append(load_average())
        for spec, (_, plain) in built.items():
            roof = None
            if peaks_bw is not None:
                flops, nbytes = roofline_estimate(plain.cpu(), res, args.dtype, sched.batch)
                roof = (flops, nbytes, *roofline_ips(flops, nbytes, *peaks_bw))
            rows.append((res, spec, sched.batch, sum(p.numel() for p in plain.parameters()), count_macs(plain, res),
                         infer[spec], train.get(spec), peaks.get(spec), roof))
        del built, timed
    return report(args, device, info, rows, loads, time.time() - started, compile_seconds)


def _fmt_tp(tp) -> str:
    if tp is None:
        return "-"
    return f"{tp.median:.2f} [{min(tp.samples):.2f}-{max(tp.samples):.2f}]"


def report(args, device, info, rows, loads, seconds, compile_seconds=None) -> str:
    known_loads = [x for x in loads if x is not None]
    threads = torch.get_num_threads() if device.type == "cpu" else None
    lines = ["# WeightFormer vs DeiT throughput", "",
             f"Generated by `python benchmarks/throughput.py {' '.join(sys.argv[1:])}` on "
             f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} in {seconds / 60:.1f} min.", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    scheds = {r: schedule_for(r, args.batch, device.type == "cuda") for r in args.res}
    lines.append(f"- dtype {args.dtype}; models interleaved, warm-up batches first, then the median of "
                 "the repeats; batch, warm-up and repeats x batches per repeat: " + ", ".join(
                     f"{r}: b{s.batch} w{s.warmup} {s.repeats}x{s.iters}" for r, s in scheds.items()))
    if known_loads:
        # the run's own threads count in the load average: more than that means other processes ran too
        busy = threads is not None and max(known_loads) > threads + 0.5
        lines.append(f"- 1-minute load average during the run: {min(known_loads):.1f}-{max(known_loads):.1f}"
                     + (f" on {os.cpu_count()} cores, of which {threads} are this run's threads"
                        if threads is not None else "")
                     + (": **measured under load** (other processes shared the CPU); "
                        "absolute images/s are depressed and noisy, ratios from interleaved medians are what to "
                        "read" if busy else ""))
    lines.append("- training step = forward + backward (no optimizer); peak memory = one training step "
                 "including the AdamW update (parameters, gradients, optimizer state, activations).")
    lines.append("- `[reference]` = the same weights evaluated in the reference formulation "
                 "(`wfsearch.models.reference_mode()`), i.e. the code before the fast paths.")
    if compile_seconds:
        lines.append(f"- `[compiled]` = the same model under `torch.compile` (mode `{args.compile}`; WeightFormer with "
                     "`fullgraph=True`, DeiT with its fused attention), compiled by one untimed call before the "
                     "timings; compile seconds (wall clock, not in any timing): " + ", ".join(
                         f"{spec} at {res}: {sec:.0f} s" for (res, spec), sec in compile_seconds.items()))
    lines.append("")

    by = {(r[0], r[1]): r for r in rows}
    resolutions = sorted({r[0] for r in rows})
    lines += ["## Ratios (images/s over images/s, medians)", "",
              "| pair | mode | " + " | ".join(str(r) for r in resolutions) + " |",
              "|---|---|" + "---|" * len(resolutions)]
    specs = {r[1] for r in rows}
    pairs = [(a, b) for a, b in PAIRS if a in specs and b in specs]
    pairs += [(f"{a}[reference]", b) for a, b in PAIRS if f"{a}[reference]" in specs and b in specs]
    pairs += [(f"{a}[compiled]", f"{b}[compiled]") for a, b in PAIRS
              if f"{a}[compiled]" in specs and f"{b}[compiled]" in specs]
    pairs += [(a, f"{a}[reference]") for a, _ in PAIRS if a in specs and f"{a}[reference]" in specs]
    pairs += [(a, f"{a}[reference]") for a in specs if a.startswith("proxy:") and f"{a}[reference]" in specs]
    pairs += [(a, "proxy:deit") for a in specs if a.startswith("proxy:") and "[" not in a and a != "proxy:deit"
              and "proxy:deit" in specs]
    pairs += [(f"{a}[compiled]", a) for a in dict.fromkeys(n for p in PAIRS for n in p)
              if a in specs and f"{a}[compiled]" in specs]
    for a, b in pairs:
        for mode, col in (("inference", 5), ("train step", 6)):
            cells = []
            for res in resolutions:
                ra, rb = by.get((res, a)), by.get((res, b))
                if ra is None or rb is None or ra[col] is None or rb[col] is None:
                    cells.append("-")
                else:
                    cells.append(f"{ra[col].median / rb[col].median:.2f}x")
            if any(c != "-" for c in cells):
                lines.append(f"| {a} / {b} | {mode} | " + " | ".join(cells) + " |")
    lines.append("")
    roofed = any(r[8] is not None for r in rows)
    if roofed:
        lines += ["Roofline columns: FLOPs = 2 x MACs per image; bytes = every non-element-wise op's result "
                  "written and read once at the dtype's width, plus the weights once per batch "
                  "(`roofline_estimate`); roofline img/s = 1 / max(FLOPs / peak, bytes / bandwidth); "
                  "% = measured inference img/s over it.", ""]
    for res in resolutions:
        head = ("| model | batch | params (M) | GMACs/img | inference img/s [min-max] | train step img/s [min-max] "
                "| train peak memory (MiB) |")
        lines += [f"## {res} x {res}", "",
                  head + (" GFLOP/img | MB/img | roofline img/s (bound) | % of roofline |" if roofed else ""),
                  "|---|---|---|---|---|---|---|" + ("---|---|---|---|" if roofed else "")]
        for r in rows:
            if r[0] != res:
                continue
            peak = "-" if r[7] is None else f"{r[7] / 2 ** 20:.0f}"
            line = (f"| {r[1]} | {r[2]} | {r[3] / 1e6:.2f} | {r[4] / 1e9:.2f} | {_fmt_tp(r[5])} | "
                    f"{_fmt_tp(r[6])} | {peak} |")
            if roofed:
                flops, nbytes, ips, bound = r[8]
                line += (f" {flops / 1e9:.1f} | {nbytes / 1e6:.1f} | {ips:.0f} ({bound}) | "
                         f"{100 * r[5].median / ips:.1f}% |")
            lines.append(line)
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS,
                   help="timm names, optionally NAME[reference] or NAME[compiled] (default: %(default)s)")
    p.add_argument("--res", nargs="+", type=int, default=sorted(SCHEDULES), help="resolutions (default: %(default)s)")
    p.add_argument("--batch", type=int, default=None, help="one batch size for every resolution "
                   "(default: " + ", ".join(f"{r}: {s.batch}" for r, s in SCHEDULES.items()) + ")")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    p.add_argument("--dtype", default="float32", help="float32, bfloat16 or float16 (default: float32)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--clock", choices=["auto", "wall", "process"], default="wall",
                   help="CPU timer: wall, process (this process's CPU time; meant for --threads 1), "
                        "auto (process with one thread) (default: wall)")
    p.add_argument("--no-train", action="store_true", help="skip the training-step timings and peak memory")
    p.add_argument("--compile", choices=COMPILE_MODES, default="none",
                   help="also time every plain model as NAME[compiled] under torch.compile in this mode "
                        "(default: none; NAME[compiled] given by name then uses 'default')")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--omp-wait-policy", choices=["inherit", "passive", "active"], default="inherit",
                   help="OpenMP wait policy for this run (inherit: the environment's, libgomp spins by default); "
                        "passive keeps idle worker threads from spinning on a shared, oversubscribed CPU")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the device's peak TFLOP/s at --dtype for the roofline columns (default: known GPUs)")
    p.add_argument("--bandwidth-gbs", type=float, default=None,
                   help="the device's memory bandwidth in GB/s for the roofline columns (default: known GPUs)")
    p.add_argument("--out", default=None, help="also write the Markdown report to this file")
    args = p.parse_args(argv)
    if args.compile != "none":
        args.models = list(dict.fromkeys(args.models + [f"{m}[compiled]" for m in args.models if "[" not in m]))
    elif any(m.endswith("[compiled]") for m in args.models):
        args.compile = "default"
    text = run(args)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
