"""``wfsearch sample SPEC -n 5``: print randomly sampled architectures of a spec as YAML."""
from __future__ import annotations

import argparse

from .validate import add_set_argument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="print sampled architectures of a spec as YAML",
                       description="Draw architectures from a design-space spec with Optuna's RandomSampler and "
                                   "print them as a YAML list: the sampled knobs, the full ArchConfig (or why it "
                                   "cannot be built), its hash, params and MACs.")
    p.add_argument("spec", metavar="SPEC", help="design-space YAML, e.g. spaces/predictors.yaml")
    p.add_argument("-n", "--num", type=int, default=5, metavar="N", help="how many to draw (default: 5)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: study.seed of the spec)")
    add_set_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from wfsearch.errors import UserError
    from wfsearch.models import cost
    from wfsearch.space import random_samples, load_spec

    if args.num < 1:
        raise UserError(f"-n: {args.num}: must be >= 1")
    spec = load_spec(args.spec, args.overrides)
    seed = spec.study.seed if args.seed is None else args.seed
    out = []
    for i, s in enumerate(random_samples(spec, args.num, seed=seed)):
        entry = {"sample": i, "knobs": s.params}
        if s.arch is None:
            entry["infeasible"] = s.infeasible
        else:
            c = cost(s.arch)
            entry.update(arch_hash=s.arch.hash, params=c["params"], macs=c["macs"],
                         macs_at_target=cost(s.arch, spec.throughput.img_size)["macs"], arch=s.arch.to_dict())
        out.append(entry)
    print(f"# {args.num} samples of {spec.path} (spec hash {spec.hash}, seed {seed}); "
          f"macs at {spec.proxy.img_size}px, macs_at_target at {spec.throughput.img_size}px")
    print(yaml.safe_dump(out, sort_keys=False, default_flow_style=False, width=120), end="")
    return 0
