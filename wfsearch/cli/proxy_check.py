"""``wfsearch proxy-check SPEC``: does the spec's proxy separate architectures beyond seed noise?"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from wfsearch.errors import UserError

from . import add_spec_args, check_min, examples


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("proxy-check", help="measure the proxy's seed noise against its spread across architectures",
                       description="Train a handful of architectures sampled from SPEC with two (or more) seeds "
                                   "each, for the spec's full proxy budget, and print the seed-to-seed noise, the "
                                   "spread across architectures, their ratio, and Kendall's tau between the "
                                   "accuracy at a short budget (the first rung) and at the full budget.",
        **examples('wfsearch proxy-check spaces/predictors.yaml',
                   'wfsearch proxy-check spaces/predictors.yaml --archs 4 --seeds 3 --require-ratio 2',
                   'wfsearch proxy-check spaces/predictors.yaml --record   # then the study widens accuracy intervals'))
    add_spec_args(p)
    p.add_argument("--archs", type=int, default=6, help="architectures sampled from the space (default: 6)")
    p.add_argument("--seeds", type=int, default=2, help="training seeds per architecture (default: 2)")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the architecture sample (default: 0)")
    p.add_argument("--short-epochs", type=int, default=None,
                   help="the short budget, in epochs of the same runs (default: the first rung)")
    p.add_argument("--references", action="store_true", help="also train the spec's architecture references")
    p.add_argument("--workers", type=int, default=1,
                   help="trainings run in parallel, one thread each (default: 1, torch's threads)")
    p.add_argument("--require-ratio", type=float, default=None, metavar="R",
                   help="exit with status 1 when spread / seed noise is below R")
    p.add_argument("--long-factor", type=int, default=None, metavar="F",
                   help="also train every architecture and seed for F x the epochs, and print Kendall's tau "
                        "between the proxy's ranking and that longer budget's (e.g. 4)")
    p.add_argument("--results", metavar="PATH",
                   help="a JSON-lines file of finished runs: read first (those runs are not trained again) and "
                        "appended to, so an interrupted check resumes")
    p.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    p.add_argument("--record", action="store_true",
                   help="store the verdict and the measured seed noise in the spec's study (created if new): `run`, "
                        "`show` and the report print the verdict, and widen every accuracy interval by the noise")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wfsearch.proxy.fidelity import check_fidelity
    from wfsearch.space import load_spec

    check_min(args, 2, "archs", "seeds")
    check_min(args, 1, "workers")
    check_min(args, 2, "long_factor")
    spec = load_spec(args.spec, args.overrides)
    full = spec.proxy.max_epochs
    if args.short_epochs is not None and not 1 <= args.short_epochs <= full:
        raise UserError(f"--short-epochs: {args.short_epochs}: must be in [1, {full}] (the full budget)")
    seeds = tuple(spec.proxy.seed + i for i in range(args.seeds))
    ds = spec.proxy.dataset
    print(f"# {spec.path}: {args.archs} architectures x {args.seeds} seeds, {ds.name} img {spec.proxy.img_size}, "
          f"{full} epochs (short budget: epoch {args.short_epochs or spec.proxy.epochs[0]}), "
          f"{args.workers} worker(s)", flush=True)
    if ds.name == "synthetic":
        print(f"# {task_geometry(spec)}", flush=True)

    def progress(row, seed) -> None:
        acc = row.curves[seed].get(full)
        acc_s = f"{acc:.3f}" if acc is not None else row.statuses[seed]
        print(f"  seed {seed}: {acc_s}  ({row.seconds[seed]:.0f}s)  {row.label}", flush=True)

    rep = check_fidelity(spec, n_archs=args.archs, seeds=seeds, sample_seed=args.sample_seed,
                         short_epochs=args.short_epochs, workers=args.workers,
                         include_references=args.references, on_result=progress, long_factor=args.long_factor,
                         results=args.results)
    seed_cols = " ".join(f"{'seed ' + str(s):>8}" for s in seeds)
    header = f"{'#':>2} {seed_cols} {'mean':>7} {'short':>7}  architecture"
    print(f"\n{header}\n{'-' * len(header)}")
    order = sorted(rep.rows, key=lambda r: -r.mean(full) if math.isfinite(r.mean(full)) else 1.0)
    for rank, row in enumerate(order, 1):
        cells = " ".join(f"{row.curves.get(s, {}).get(full, float('nan')):>8.3f}" for s in seeds)
        print(f"{rank:>2} {cells} {row.mean(full):>7.3f} {row.mean(rep.short_epochs):>7.3f}  {row.label}")
    print(f"\nseed noise (pooled std over seeds)     {rep.seed_noise:.4f}")
    print(f"spread (std across architectures)      {rep.spread:.4f}")
    print(f"spread / seed noise                    {rep.ratio:.2f}x")
    print(f"Kendall tau, epoch {rep.short_epochs} vs epoch {full:<3}          {rep.tau_short_full:.3f}")
    print(f"Kendall tau, seed {seeds[0]} vs seed {seeds[1]}              {rep.tau_seeds:.3f}")
    print(f"median training time per run           {rep.seconds_per_run:.1f}s")
    if rep.quality is not None:
        print(f"\n{quality_table(rep.quality)}\n\n{rep.quality.verdict()}")
    if args.json:
        Path(args.json).write_text(json.dumps(rep.to_dict(), indent=1, default=str))
    if args.record:
        _record(spec, rep, seeds, args)
    if args.require_ratio is not None and not rep.ratio >= args.require_ratio:
        print(f"FAIL: spread / seed noise {rep.ratio:.2f}x < {args.require_ratio:g}x")
        return 1
    return 0


def _record(spec, rep, seeds: tuple[int, ...], args: argparse.Namespace) -> None:
    """Store the seed noise and where it came from in the spec's study (the one `run` would open)."""
    from wfsearch.search.engine import prepare_study, storage_url
    from wfsearch.study import safe_url, set_study_attrs
    from wfsearch.study.verdict import VERDICT_ATTR, proxy_key

    if not (math.isfinite(rep.seed_noise) and rep.seed_noise >= 0):
        raise UserError(f"--record: the seed noise could not be measured ({rep.seed_noise}): fewer than two "
                        "architectures finished every seed; nothing was recorded")
    study, _, _, lease = prepare_study(spec)
    try:
        source = {"command": "proxy-check", "archs": len(rep.rows), "seeds": list(seeds),
                  "epochs": spec.proxy.max_epochs, "spec_hash": spec.hash, "spread": rep.spread, "ratio": rep.ratio,
                  "sample_seed": args.sample_seed}
        attrs = {"seed_noise": float(rep.seed_noise), "seed_noise_source": source}
        if rep.quality is not None:
            q = rep.quality.to_dict()
            key = proxy_key(spec.proxy.model_dump(mode="json"))
            attrs[VERDICT_ATTR] = {**q, "line": q["verdict"], "proxy_key": key, "long_epochs": rep.long_epochs,
                                   **source}
        set_study_attrs(study, **attrs)
    finally:
        lease.release()
    print(f"recorded the verdict and seed noise {rep.seed_noise:.4f} in study {spec.study.name!r} "
          f"({safe_url(storage_url(spec))}); accuracy intervals of its trials are widened by the noise")


def task_geometry(spec) -> str:
    """One line: does the synthetic task need reach for the spec's base network (docs/TASK.md)?"""
    from wfsearch.proxy.data import needs_reach, static_rf_span, synthetic_gap

    S, layout = spec.proxy.img_size, spec.proxy.dataset.layout
    arch = spec.fixed_arch().replace(img_size=S)
    gap, span = synthetic_gap(S, layout), static_rf_span(arch)
    if needs_reach(arch, S, layout):
        return f"task geometry: objects >= {gap} px apart, static receptive field {span} px: needs reach"
    return (f"task geometry: the static receptive field ({span} px) covers both objects (layout {layout}, gap {gap} "
            "px): a static network can solve this task; use layout: ends with a larger image or a shallower base")


def quality_table(q) -> str:
    """The `ProxyQuality` statistics, one line each, with their bootstrap intervals over architectures."""
    def fmt(iv, form: str = ".2f") -> str:
        if iv is None or not math.isfinite(iv.value):
            return "n/a"
        return f"{iv.value:{form}} [{iv.low:{form}}, {iv.high:{form}}]"

    rows = [(f"single-run reliability ICC(1,1) ({q.icc.level:.0%} bootstrap over architectures)", fmt(q.icc)),
            ("seed-to-seed Spearman", fmt(q.spearman_seeds)),
            (f"Kendall tau, proxy vs {q.tau_long_label}", fmt(q.tau_long)),
            (f"runs above chance ({q.chance:.3f}, binomial p < 0.05)", fmt(q.above_chance, ".0%")),
            ("Kendall tau, first rung vs another seed's final", fmt(q.tau_rung))]
    return "\n".join(f"{k:<66} {v}" for k, v in rows)
