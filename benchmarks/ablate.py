"""One fast-path switch on and off, in one process: WeightFormer inference time with a module-level
setting of `wfsearch.models.layers` or `wfsearch.models.fast_path` at two values, the two taking turns, medians of the repeats.

    .venv/bin/python benchmarks/ablate.py PACK_WEIGHTS True False --res 896 --batch 2 --repeats 7 --deit
    .venv/bin/python benchmarks/ablate.py PARALLEL_MIN_MACS 32_000_000 10**12 --res 896 --batch 2 --repeats 15

``--deit`` also times DeiT-Tiny in the same loop and prints each setting's ratio to it. This is how
the model-level figures of `benchmarks/NOTES.md` (item 12) were measured; `throughput.py` gives the
full comparison.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from wfsearch.models import fast_path, layers
from wfsearch.proxy.allocator import steady_allocations
from wfsearch.proxy.measure import create_model_at


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="a module-level setting of wfsearch.models.layers or .fast_path, e.g. PACK_WEIGHTS")
    p.add_argument("values", nargs=2, help="the two values (Python literals; 10**12 allowed)")
    p.add_argument("--model", default="weightformer_tiny")
    p.add_argument("--res", type=int, default=896)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--deit", action="store_true", help="also time deit_tiny_patch16_224 in the same loop")
    args = p.parse_args(argv)
    owner = next((m for m in (layers, fast_path) if hasattr(m, args.name)), None)
    if owner is None:
        p.error(f"wfsearch.models.layers and .fast_path have no setting {args.name!r}")
    values = [eval(v, {"__builtins__": {}}) for v in args.values]  # literals and 10**12

    steady_allocations()
    torch.set_num_threads(args.threads)
    models = {"weightformer": create_model_at(args.model, args.res).eval()}
    if args.deit:
        models["deit"] = create_model_at("deit_tiny_patch16_224", args.res).eval()
    x = torch.randn(args.batch, 3, args.res, args.res)
    original = getattr(owner, args.name)
    runs = [(f"{args.name}={v!r}", "weightformer", v) for v in values]
    runs += [("deit_tiny", "deit", original)] if args.deit else []
    times: dict[str, list[float]] = {label: [] for label, _, _ in runs}
    try:
        with torch.inference_mode():
            for repeat in range(args.repeats + 1):  # the first round warms up
                for label, key, value in runs:
                    setattr(owner, args.name, value)
                    t = time.perf_counter()
                    models[key](x)
                    if repeat:
                        times[label].append(time.perf_counter() - t)
    finally:
        setattr(owner, args.name, original)

    print(f"{args.model} at {args.res} x {args.batch}, {args.threads} threads, {args.repeats} repeats (medians):")
    deit = statistics.median(times["deit_tiny"]) if args.deit else None
    for label, samples in times.items():
        med = statistics.median(samples)
        ratio = f"  ({deit / med:.3f}x DeiT-Tiny)" if deit and label != "deit_tiny" else ""
        print(f"  {label:32s} {1e3 * med:8.1f} ms  [min {1e3 * min(samples):.1f}]{ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
