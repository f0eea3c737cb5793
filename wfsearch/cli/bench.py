"""``wfsearch bench``: interleaved inference throughput of registered timm models, as a table."""
from __future__ import annotations

import argparse
import platform

DEFAULT_MODELS = ["weightformer_tiny", "deit_tiny_patch16_224"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure throughput of timm models side by side",
                       description="Measure inference throughput of registered timm models (WeightFormer "
                                   "sizes or any timm name), interleaved, with warm-up and median of repeats; "
                                   "ratios are to the first model.")
    p.add_argument("models", nargs="*", default=DEFAULT_MODELS, metavar="MODEL",
                   help=f"timm model names (default: {' '.join(DEFAULT_MODELS)})")
    p.add_argument("--res", nargs="+", type=int, default=[224], help="input resolutions (default: 224)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default: 16)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    p.add_argument("--dtype", default="float32", help="float32, bfloat16 or float16 (default: float32)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per model (default: 5)")
    p.add_argument("--iters", type=int, default=3, help="batches per timed repeat (default: 3)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up batches per model (default: 2)")
    p.add_argument("--train", action="store_true", help="time a forward+backward step instead of inference")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from wfsearch.proxy.measure import count_macs, create_model_at, measure_throughput, resolve_device, resolve_dtype

    for flag in ("batch", "repeats", "iters"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag}={getattr(args, flag)}: must be >= 1")
    if any(r < 1 for r in args.res):
        raise ValueError(f"--res {args.res}: resolutions must be >= 1")
    device = resolve_device(args.device)
    resolve_dtype(args.dtype)
    print(f"# device={device} ({_device_name(device)}), dtype={args.dtype}, batch={args.batch}, "
          f"threads={torch.get_num_threads()}, repeats={args.repeats}x{args.iters}, "
          f"mode={'train step' if args.train else 'inference'}")
    header = f"{'model':<28} {'res':>5} {'params(M)':>10} {'GMACs':>8} {'img/s':>10} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for res in args.res:
        models = {name: create_model_at(name, res) for name in args.models}
        stats = {name: (sum(p.numel() for p in m.parameters()), count_macs(m, res)) for name, m in models.items()}
        tp = measure_throughput(models, res, args.batch, device, args.dtype, warmup=args.warmup,
                                repeats=args.repeats, iters=args.iters, train=args.train)
        first = tp[args.models[0]].median
        for name in args.models:
            params, macs = stats[name]
            med = tp[name].median
            print(f"{name:<28} {res:>5} {params / 1e6:>10.2f} {macs / 1e9:>8.2f} {med:>10.1f} {med / first:>6.2f}x")
    return 0


def _device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()
