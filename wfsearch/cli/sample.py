"""``wfsearch sample SPEC -n 5``: print randomly sampled architectures of a spec as YAML."""
from __future__ import annotations

import argparse

from . import add_spec_args, check_ranges, examples
from .validate import MAX_SAMPLES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="print sampled architectures of a spec as YAML",
                       description="Draw architectures from a design-space spec with Optuna's RandomSampler and "
                                   "print them as a YAML list: the sampled knobs, the full ArchConfig (or why it "
                                   "cannot be built), its hash, params and MACs, and the spec's constraints it "
                                   "violates, if any.",
        **examples('wfsearch sample spaces/predictors.yaml -n 3',
                   'wfsearch sample spaces/predictors.yaml -n 10 --seed 1 --set space.rank_ratio.choice=[2,4]'))
    add_spec_args(p)
    p.add_argument("-n", "--num", type=int, default=5, metavar="N", help="how many to draw (default: 5)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: study.seed of the spec)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from wfsearch.arch import cost
    from wfsearch.space import design_costs, load_spec, random_samples
    from wfsearch.space.spec import MAX_SEED
    from wfsearch.study import violations

    check_ranges(("-n", args.num, 1, MAX_SAMPLES), ("--seed", args.seed, 0, MAX_SEED))
    spec = load_spec(args.spec, args.overrides)
    seed = spec.study.seed if args.seed is None else args.seed
    out, flagged = [], 0
    for i, s in enumerate(random_samples(spec, args.num, seed=seed)):
        entry = {"sample": i, "knobs": s.params}
        if s.arch is None:
            entry["infeasible"] = s.infeasible
        else:
            c = cost(s.arch)
            try:
                deployed = design_costs(spec, s.arch)
                violated = violations(spec.study.constraints, deployed)
            except ValueError as e:
                deployed, violated = None, [f"the deployed network cannot be built: {e}"]
            if violated:  # the search would record it as infeasible and not train it
                entry["violates"] = violated
                flagged += 1
            entry.update(arch_hash=s.arch.hash, arch=s.arch.to_dict(),
                         proxy={"params": c["params"], "macs": c["macs"]},
                         deployed=None if deployed is None else {
                             "params": deployed["params"], "macs": deployed["macs"],
                             "memory_estimate": deployed["memory"], "arch": dict(spec.throughput.arch),
                             "img_size": spec.throughput.img_size})
        out.append(entry)
    scale = f"{dict(spec.throughput.arch)} on the design" if spec.throughput.arch else "the design"
    print(f"# {args.num} samples of {spec.path} (spec hash {spec.hash}, seed {seed}); `proxy`: the network trained "
          f"for accuracy, MACs at {spec.proxy.img_size}px; `deployed`: the network measured and exported ({scale} at "
          f"{spec.throughput.img_size}px); `memory_estimate`: bytes of one training step of the deployed network "
          f"estimated before training (activations of a batch + 16 bytes a parameter), what a memory constraint is "
          f"checked against before training; the search stores the measured peak as `memory`")
    if spec.study.constraints:
        print(f"# constraints {', '.join(map(str, spec.study.constraints))}: {flagged} of {args.num} samples violate "
              "them (marked `violates:`, judged on the costs of the deployed network; the search records such an "
              "architecture as infeasible without training it)")
    print(yaml.safe_dump(out, sort_keys=False, default_flow_style=False, width=120), end="")
    return 0
