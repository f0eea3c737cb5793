"""Proxy quality of a spec: can its proxy tell designs apart? (issue: the quick start's proxy budget)

    python benchmarks/proxy_quality.py                          # spaces/predictors.yaml, 24 archs x 3 seeds, 1x and 4x
    python benchmarks/proxy_quality.py --archs 8 --seeds 2 --long-factor 2 --out /tmp/pq   # a quicker look

Draws ``--archs`` random architectures of the spec (plus its references), trains each with ``--seeds``
seeds at the spec's proxy budget and again at ``--long-factor`` x the epochs, and writes
``<out>/README.md`` with, each with a bootstrap interval over architectures: single-run reliability
ICC(1,1), the seed-to-seed Spearman correlation, Kendall tau between the seed-averaged proxy and
longer-budget accuracies, the share of runs above chance, the first rung's tau with another seed's
final accuracy, the wall time per trial, and the verdict `wfsearch proxy-check` prints. Every finished
run is appended to ``<out>/runs.jsonl``: run it again (the same command) to resume after a stop.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(ROOT / "spaces" / "predictors.yaml"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--archs", type=int, default=24)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--long-factor", type=int, default=4)
    ap.add_argument("--long-seeds", type=int, default=None, help="seeds of the longer budget (default: all)")
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "proxy_quality"))
    args = ap.parse_args(argv)

    from wfsearch.cli.proxy_check import quality_table
    from wfsearch.proxy.fidelity import check_fidelity
    from wfsearch.space import load_spec

    spec = load_spec(args.spec, args.overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    seeds = tuple(spec.proxy.seed + i for i in range(args.seeds))
    rep = check_fidelity(spec, n_archs=args.archs, seeds=seeds, sample_seed=args.sample_seed,
                         workers=args.workers, include_references=True, long_factor=args.long_factor,
                         long_seeds=args.long_seeds,
                         results=out / "runs.jsonl",
                         on_result=lambda row, seed: print(f"  {row.label}  seed {seed}: "
                                                           f"{row.curves[seed].get(spec.proxy.max_epochs, 'n/a')}",
                                                           flush=True))
    q = rep.quality
    full, long_e = rep.full_epochs, rep.long_epochs
    cmd = "python benchmarks/proxy_quality.py " + " ".join(sys.argv[1:] if argv is None else argv)
    p = spec.proxy
    lines = [
        "# Proxy quality", "",
        f"`{cmd.strip()}` (resumable; {time.time() - t0:.0f} s in the last sitting)", "",
        f"Spec `{Path(args.spec).relative_to(ROOT) if Path(args.spec).is_relative_to(ROOT) else args.spec}`"
        + (f" with {', '.join(args.overrides)}" if args.overrides else "") + ": "
        f"{p.dataset.name} ({p.dataset.num_classes} classes, {p.dataset.train_size} train / {p.dataset.val_size} "
        f"val images, layout {p.dataset.layout}), {p.img_size} px, epochs {p.epochs}, lr {p.lr:g}, "
        f"predictor_lr_scale {p.predictor_lr_scale:g}, batch {p.batch_size}; base "
        f"{spec.base.model_dump(exclude_none=True) if hasattr(spec.base, 'model_dump') else spec.base}.", "",
        f"{len(rep.rows)} architectures ({args.archs} random, sample seed {args.sample_seed}, and the references) "
        f"x {len(seeds)} seeds at {full} epochs and at {long_e} epochs ({args.long_factor}x, "
        f"{args.long_seeds or len(seeds)} seed(s)); one thread per "
        f"training, {args.workers} at a time, on {platform.processor() or platform.machine()} "
        f"({os.cpu_count()} CPUs).", "",
        "```", quality_table(q), "```", "",
        f"**{q.verdict()}**", "",
        f"- seed noise (pooled std over seeds) {rep.seed_noise:.4f}; validation noise at the mean accuracy "
        f"{q.val_noise:.4f}; spread across architectures {rep.spread:.4f}",
        f"- wall time per training at the proxy budget: median {rep.seconds_per_run:.1f} s "
        "(one thread; the machine was shared with other work, so this is an upper bound)", "",
        "| architecture | " + " | ".join(f"seed {s}" for s in seeds) + f" | mean | first rung | {long_e} ep. mean |",
        "|---|" + "---|" * (len(seeds) + 3),
    ]
    for row in sorted(rep.rows, key=lambda r: -_nan(r.mean(full))):
        cells = " | ".join(_f(row.curves.get(s, {}).get(full)) for s in seeds)
        long_vals = [c.get(long_e) for c in row.long_curves.values() if c.get(long_e) is not None]
        long_mean = sum(long_vals) / len(long_vals) if long_vals else None
        lines.append(f"| {row.label} | {cells} | {_f(row.mean(full))} | {_f(row.mean(rep.short_epochs))} | "
                     f"{_f(long_mean)} |")
    (out / "README.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[6:12]))
    print(f"wrote {out / 'README.md'}")
    return 0


def _nan(v: float) -> float:
    return v if v is not None and math.isfinite(v) else -1.0


def _f(v) -> str:
    return f"{v:.3f}" if v is not None and math.isfinite(v) else "n/a"


if __name__ == "__main__":
    sys.exit(main())
