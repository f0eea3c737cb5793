"""``wfsearch bench``: interleaved inference throughput of registered timm models, as a table."""
from __future__ import annotations

import argparse

from . import examples

DEFAULT_MODELS = ["weightformer_tiny", "deit_tiny_patch16_224"]
MAX_SPREAD = 0.10  # warn above this (max - min) / median over the repeats


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure throughput of timm models side by side",
                       description="Measure inference throughput of registered timm models (WeightFormer "
                                   "sizes or any timm name), interleaved, with warm-up and median of repeats "
                                   "and its 90% interval; each model's ratio is its img/s over the reference's "
                                   "(the last model, or --reference), paired repeat by repeat, as a study's "
                                   "trial/reference ratio. On a CPU it times one thread by process CPU time by "
                                   "default, so other processes on the machine do not count.",
        **examples(
            'wfsearch bench                                  # the WeightFormer sizes against DeiT',
            'wfsearch bench weightformer_tiny deit_tiny_patch16_224 --res 224 448',
            'wfsearch bench --device cuda --dtype bfloat16 --batch 128'))
    p.add_argument("models", nargs="*", default=DEFAULT_MODELS, metavar="MODEL",
                   help=f"timm model names (default: {' '.join(DEFAULT_MODELS)})")
    p.add_argument("--res", nargs="+", type=int, default=[224], help="input resolutions (default: 224)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default: 16)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    p.add_argument("--dtype", default="float32", help="float32, bfloat16 or float16 (default: float32)")
    p.add_argument("--reference", metavar="MODEL", help="the model the ratios are to (default: the last one)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads (default on a CPU: 1, timed by this process's CPU time; more threads are timed "
                        "by the wall clock, which other processes disturb)")
    p.add_argument("--clock", default="auto", choices=("auto", "wall", "process"),
                   help="CPU timer: process (CPU time of this process: other processes on the machine do not "
                        "count), wall, or auto (process with one thread, else wall; CUDA events on GPU)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per model (default: 5)")
    p.add_argument("--iters", type=int, default=3, help="batches per timed repeat (default: 3)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up batches per model (default: 2)")
    p.add_argument("--max-spread", type=float, default=MAX_SPREAD, metavar="F",
                   help=f"warn when (max - min) / median over the repeats exceeds F (default: {MAX_SPREAD:g})")
    p.add_argument("--train", action="store_true", help="time a forward+backward step instead of inference")
    p.add_argument("--compile", default="none", metavar="MODE",
                   help="run every model under torch.compile in this mode: none, default or max-autotune (CUDA graphs "
                        "on GPU); compiled by an untimed call first, compile time printed (default: none)")
    p.set_defaults(func=run)


def _say(text: str) -> None:
    """Progress on stderr: rewritten in place on a terminal, a line each elsewhere ("" ends it)."""
    import sys

    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K" + (f"# measuring {text} ..." if text else ""))
    elif text:
        sys.stderr.write(f"# measuring {text} ...\n")
    sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    import torch

    from wfsearch.proxy.measure import (compile_model, count_macs, create_model_at, measure_throughput,
                                        resolve_device, resolve_dtype, resolved_clock)
    from wfsearch.study.interval import median_interval, spread

    from .evaluate import measurement_header

    for flag in ("batch", "repeats", "iters", "threads"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise ValueError(f"--{flag}={getattr(args, flag)}: must be >= 1")
    if args.compile not in ("none", "default", "max-autotune"):
        raise ValueError(f"--compile={args.compile}: must be none, default or max-autotune")
    if any(r < 1 for r in args.res):
        raise ValueError(f"--res {args.res}: resolutions must be >= 1")
    device = resolve_device(args.device)
    resolve_dtype(args.dtype)
    reference = args.reference or args.models[-1]
    if reference not in args.models:
        raise ValueError(f"--reference: {reference!r}: not one of the models measured {args.models}; add it")
    threads = args.threads or (1 if device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    clock = resolved_clock(args.clock, device)
    mode = ("train step" if args.train else "inference") + ("" if args.compile == "none" else
                                                            f", torch.compile mode {args.compile}")
    print(measurement_header(device, torch.get_num_threads(), clock, args.dtype, args.batch,
                             " ".join(map(str, args.res)), mode))
    print(f"# {args.repeats} repeats x {args.iters} batches after {args.warmup} warm-up, models interleaved; "
          f"img/s: median [90% interval]; ratio: median of the per-repeat ratios img/s / {reference}'s img/s")
    header = (f"{'model':<28} {'res':>5} {'params(M)':>10} {'GMACs':>8} {'img/s':>10} {'90% interval':>19} "
              f"{'spread':>7} {'ratio':>7} {'90% interval':>15}")
    print(f"{header}\n{'-' * len(header)}")
    noisy = []
    for res in args.res:
        models = {name: create_model_at(name, res) for name in args.models}
        stats = {name: (sum(p.numel() for p in m.parameters()), count_macs(m, res)) for name, m in models.items()}
        if args.compile != "none":
            took = {}
            for name in args.models:
                models[name], took[name] = compile_model(models[name], args.compile, res, args.batch, device,
                                                         args.dtype, train=args.train)
            print(f"# compile seconds at {res} (untimed): " + ", ".join(f"{n} {t:.1f}" for n, t in took.items()))
        _say(f"{res} px: {args.warmup} warm-up batch(es) per model")
        tp = measure_throughput(models, res, args.batch, device, args.dtype, warmup=args.warmup,
                                repeats=args.repeats, iters=args.iters, train=args.train, clock=clock,
                                alternate=True, on_repeat=lambda done, n: _say(f"{res} px: repeat {done}/{n}"))
        _say("")
        first = tp[reference].samples
        for name in args.models:
            (params, macs), iv = stats[name], tp[name].interval
            ratio = median_interval([a / b for a, b in zip(tp[name].samples, first)])
            sp = spread(tp[name].samples)
            if sp > args.max_spread:
                noisy.append((name, res, sp))
            print(f"{name:<28} {res:>5} {params / 1e6:>10.2f} {macs / 1e9:>8.2f} {iv.value:>10.1f} "
                  f"{f'[{iv.low:.1f}, {iv.high:.1f}]':>19} {100 * sp:>6.0f}% {ratio.value:>6.2f}x "
                  f"{f'[{ratio.low:.2f}, {ratio.high:.2f}]':>15}")
    if len(args.models) > 1:
        print(f"# interval coverage with {args.repeats} repeats: "
              f"{100 * median_interval(range(args.repeats)).level:.0f}% (5 or more repeats reach 90%)")
    for name, res, sp in noisy:
        print(f"warning: {name} at {res} px: the repeats spread {100 * sp:.0f}% (> {100 * args.max_spread:.0f}%), so "
              f"its figures are noise-limited; rerun with more work per repeat and more repeats "
              f"(--repeats {max(2 * args.repeats, 7)} --iters {max(2 * args.iters, 5)})"
              + (", on one thread timed by CPU time (--threads 1 --clock process)"
                 if device.type == "cpu" and clock != "process" else ""))
    return 0
