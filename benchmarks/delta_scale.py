"""‖ΔW‖ at initialization against the fc1 pool, for both `fc1_pool_mode`s, on a design space's network.

    .venv/bin/python benchmarks/delta_scale.py spaces/compression.yaml --seeds 3

For every pool of the space's ``fc1_pool`` knob it builds the space's base network (released
predictors in every dynamic block, the proxy's resolution) with the same seed in both modes, runs
the space's proxy validation images through it and prints the mean raw ‖ΔW‖ (Frobenius, before the
squash) of the fc1 predictors: the median over seeds and [min, max]. With ``released`` the norm
follows the pool (scale 1/N, shrinking as 1/s²); with ``cover`` (scale 1/(4M)) it should not.
"""
from __future__ import annotations

import argparse
import statistics

import torch

from wfsearch.models import build
from wfsearch.models.predictors import mean_raw_delta_norm
from wfsearch.proxy.data import load_dataset
from wfsearch.space import load_spec


def delta_norm(arch, images: torch.Tensor, seed: int) -> float:
    torch.manual_seed(seed)
    return mean_raw_delta_norm(build(arch).eval(), images)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("spec", nargs="?", default="spaces/compression.yaml")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--images", type=int, default=16)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    spec = load_spec(args.spec)
    data = load_dataset(spec.proxy)
    x = data.val.images[:args.images].float() / 255.0
    x = (x - torch.tensor(data.mean).view(1, 3, 1, 1)) / torch.tensor(data.std).view(1, 3, 1, 1)
    knob = spec.space.get("fc1_pool")
    pools = knob.values() if knob is not None else [1, 2, 4, "global"]
    base = spec.fixed_arch(fc1_predictor="bilateral", dwconv_predictor="adaptive", num_classes=data.num_classes)
    print(f"# {args.spec}: base {base.embed_dim}x{base.depth}, img {base.img_size}, patch {base.patch_size} "
          f"(grid {base.grid_size[0]}x{base.grid_size[1]}), {len(x)} proxy validation images, seeds 0..{args.seeds - 1}")
    print("# mean raw ‖ΔW‖ of the fc1 predictors at init: median over seeds [min, max]")
    print(f"{'fc1_pool':>9} | {'cover (1/(4M))':>28} | {'released (1/N)':>28}")
    medians = {}
    for pool in pools:
        row = []
        for mode in ("cover", "released"):
            vals = [delta_norm(base.replace(fc1_pool=pool, fc1_pool_mode=mode), x, s) for s in range(args.seeds)]
            medians.setdefault(mode, []).append(statistics.median(vals))
            row.append(f"{statistics.median(vals):.3e} [{min(vals):.2e}, {max(vals):.2e}]")
        print(f"{pool!s:>9} | {row[0]:>28} | {row[1]:>28}")
    for mode, meds in medians.items():
        print(f"# {mode}: largest / smallest median across pools = {max(meds) / min(meds):.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
