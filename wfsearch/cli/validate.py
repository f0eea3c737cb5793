"""``wfsearch validate SPEC``: check a design-space spec and summarize what it searches."""
from __future__ import annotations

import argparse
import json
from typing import Any

from . import add_spec_args, check_ranges, examples

MAX_SAMPLES = 100_000  # architectures one validate or sample draws


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a design-space spec and summarize it",
                       description="Load a design-space YAML strictly (the same checks as `wfsearch run`) and "
                                   "print its knobs, the size of the space, an example architecture and the "
                                   "range of params and MACs over a random sample. Exit status 2 on a mistake.",
        **examples('wfsearch validate spaces/predictors.yaml',
                   "wfsearch validate spaces/predictors.yaml --set 'study.constraints=[\"params <= 1.5e6\"]'"))
    add_spec_args(p)
    p.add_argument("--samples", type=int, default=256, metavar="N",
                   help="architectures sampled for the params/MACs range (default: 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random sample (default: 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wfsearch.arch import cost
    from wfsearch.space import load_spec, random_samples
    from wfsearch.space.checks import data_root_issue
    from wfsearch.space.spec import DEPLOYED_NUM_CLASSES, MAX_SEED
    from wfsearch.study import safe_url

    check_ranges(("--samples", args.samples, 1, MAX_SAMPLES), ("--seed", args.seed, 0, MAX_SEED))
    spec = load_spec(args.spec, args.overrides)
    st, pr, tp, ds, rs = spec.study, spec.proxy, spec.throughput, spec.proxy.dataset, spec.resources
    print(f"{spec.path}: ok (spec hash {spec.hash})")
    sizes = " / ".join(f"{n} {k}" for n, k in ((ds.train_size, "train"), (ds.val_size, "val")) if n)
    rows: list[tuple[str, str]] = [
        ("study", f"{st.name}: {st.trials} trials, sampler {st.sampler}, seed {st.seed}"),
        ("storage", safe_url(st.storage) if st.storage else st.storage),
        ("objectives", ", ".join(f"{o.name} ({o.direction})" for o in st.objectives)),
        ("constraints", ", ".join(str(c) for c in st.constraints) or "none"),
        ("scheduler", st.scheduler.type + (f" (reduction factor {st.scheduler.reduction_factor}) over epoch rungs "
                                           f"{pr.epochs}" if st.scheduler.type != "none" else "")),
        ("resources", f"{rs.cpus_per_trial:g} CPU + {rs.gpus_per_trial:g} GPU per "
                      f"trial, at most {rs.max_concurrent or 'as many as fit'} at once"),
        ("proxy", f"{ds.name} ({ds.num_classes} classes{', ' + sizes if sizes else ''}), img {pr.img_size}, "
                  f"{pr.max_epochs} epochs, batch {pr.batch_size}, {pr.optimizer} lr {pr.lr:g}, "
                  f"{_runs_on(pr.dtype, pr.device)}"),
        ("throughput", f"img {tp.img_size} x batch {tp.batch_size}, {_runs_on(tp.dtype, tp.device)}, reference "
                       f"{tp.reference or 'none'}" + (f", latency at {tp.highres}" if tp.highres else "")),
        ("base", " ".join(f"{k}={_val(v)}" for k, v in spec.arch_defaults().items())),
    ]
    width = max(len(k) for k, _ in rows) + 1
    for key, text in rows:
        print(f"{key:<{width}} {text}")
    print(f"knobs ({len(spec.knobs)}):" if spec.knobs else "knobs: none (the space is one architecture)")
    name_w = max((len(k) for k in spec.knobs), default=0)
    for name in spec.knobs:
        knob = spec.space[name]
        cond = "  when " + ", ".join(f"{f} in {_val(v)}" for f, v in knob.when.items()) if knob.when else ""
        print(f"  {name:<{name_w}}  {knob.describe()}{cond}")
    size = spec.size
    text = f"{size.combinations:,} combinations" if size.combinations is not None else "too many combinations to count"
    if size.combinations is not None and size.buildable is not None:
        text += f" ({size.buildable:,} buildable)"
    print(f"{'space':<{width}} {text}" + (", with continuous ranges" if size.continuous else ""))
    refs = [f"{r.name} ({'arch ' + r.arch.hash if r.arch else 'timm ' + r.model})" for r in spec.reference_archs()]
    print(f"{'references':<{width}} {', '.join(refs) or 'none'}")
    issue = data_root_issue(spec)
    if issue:
        print(f"{'data':<{width}} warning: {issue}")
    samples = random_samples(spec, args.samples, seed=args.seed)
    feasible = [s for s in samples if s.arch is not None]
    if not feasible:
        print(f"{'example':<{width}} none of {len(samples)} random samples builds; e.g. {samples[0].infeasible}")
        return 0
    ex = feasible[0]
    print(f"{'example':<{width}} {ex.arch.hash}: " + (" ".join(f"{k}={_val(v)}" for k, v in ex.params.items())
                                                      or "(base)"))
    print(f"{'':<{width}} {json.dumps(ex.arch.to_dict())}")
    costs = [(cost(s.arch), _deployed_cost(s.arch, tp)) for s in feasible]
    costs = [c for c in costs if c[1] is not None]

    def span(i: int, key: str) -> str:  # min .. max of a cost over the samples (i: 0 proxy, 1 deployed)
        values = [c[i][key] for c in costs]
        return f"{_si(min(values))} .. {_si(max(values))}"

    print(f"{'cost':<{width}} over {len(feasible)} sampled architectures"
          + (f" ({len(samples) - len(feasible)} of {len(samples)} samples infeasible)"
             if len(feasible) < len(samples) else ""))
    head = int(tp.arch.get("num_classes", DEPLOYED_NUM_CLASSES))
    deployed = (f"deployed network ({_val(dict(tp.arch)) + ' on ' if tp.arch else ''}the design at {tp.img_size}px, "
                f"{head} classes: measured and exported)")
    proxy = f"proxy network (at {pr.img_size}px, {feasible[0].arch.num_classes} classes: trained for accuracy)"
    print(f"{'':<{width}} params {span(1, 'params')} {deployed}; {span(0, 'params')} proxy")
    print(f"{'':<{width}} MACs   {span(1, 'macs')} deployed; {span(0, 'macs')} {proxy}")
    if spec.study.constraints:
        print(f"{'satisfying':<{width}} {_satisfying(spec, feasible, len(samples))}")
    reasons = sorted({s.infeasible for s in samples if s.infeasible})
    if reasons:
        print(f"{'infeasible':<{width}} e.g. {reasons[0]}")
    return 0


def _runs_on(dtype: str, device: str) -> str:
    """``float32 on cpu``, saying which of the two ``auto`` chose here (bfloat16 autocast on CUDA)."""
    import torch

    dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    dt = ("bfloat16" if dev.startswith("cuda") else "float32") if dtype == "auto" else dtype
    auto = [k for k, v in (("device", device), ("dtype", dtype)) if v == "auto"]
    return f"{dt} on {dev}" + (f" ({' and '.join(auto)} auto, as chosen on this machine)" if auto else "")


def _satisfying(spec: Any, feasible: list, drawn: int) -> str:
    """How many sampled architectures meet the constraints judged before training, scaled to the space."""
    from wfsearch.space import design_costs
    from wfsearch.study import violations

    ok = 0
    for s in feasible:
        try:
            ok += not violations(spec.study.constraints, design_costs(spec, s.arch))
        except ValueError:
            pass
    size = spec.size.buildable if spec.size.buildable is not None else spec.size.combinations
    later = [str(c) for c in spec.study.constraints if c.metric not in ("params", "macs", "memory")]
    text = f"{ok} of {drawn} random samples satisfy {', '.join(str(c) for c in spec.study.constraints)}"
    if size is not None and not spec.size.continuous:
        text += f": about {round(ok / drawn * size):,} of the {size:,} combinations"
    if later:
        text += f" ({', '.join(later)} judged only after training)"
    return text


def _val(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def _si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f}{unit}"
    return f"{x:g}"


def _deployed_cost(arch, tp):
    """Costs of the deployed model: the throughput resolution and its ``arch`` overrides (None if unbuildable)."""
    from wfsearch.arch import cost

    try:
        return cost(tp.deployed(arch))
    except ValueError:
        return None
