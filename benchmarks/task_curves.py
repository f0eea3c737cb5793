"""Learning curves on the default synthetic task: does it need what WeightFormer is for?

    python benchmarks/task_curves.py                 # spaces/predictors.yaml's proxy, 1x and 4x its epochs

Trains four designs of the quick start's base network with ``--seeds`` seeds, at the spec's proxy
budget and at ``--long-factor`` x its epochs: all-static, the released design, fc1-only dynamic
(bilateral fc1, static dwconv) and dwconv-only dynamic (adaptive dwconv, static fc1); writes
``benchmarks/task_curves.md`` (every epoch's validation accuracy, chance and the task's geometry) and
``benchmarks/task_curves.html`` (the curves, plotly). Finished runs go to (and are reused from)
``benchmarks/proxy_quality/runs.jsonl``, so the same command resumes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DESIGNS = {
    "static": {"fc1_predictor": "none", "dwconv_predictor": "none"},
    "released": {"fc1_predictor": "bilateral", "dwconv_predictor": "adaptive", "dynamic_blocks": "every:3:1",
                 "fc1_pool": 2, "dwconv_pool": 3, "rank_ratio": 4},
    "fc1-only": {"fc1_predictor": "bilateral", "dwconv_predictor": "none", "dynamic_blocks": "every:3:1",
                 "fc1_pool": 2, "rank_ratio": 4},
    "dwconv-only": {"fc1_predictor": "none", "dwconv_predictor": "adaptive", "dynamic_blocks": "every:3:1",
                    "dwconv_pool": 3},
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(ROOT / "spaces" / "predictors.yaml"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--long-factor", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--long-seeds", type=int, default=1, help="seeds of the longer budget")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "task_curves"))
    ap.add_argument("--runs", default=str(ROOT / "benchmarks" / "proxy_quality" / "runs.jsonl"),
                    help="finished runs to reuse and extend (proxy_quality.py's: the static and released designs "
                         "are its references)")
    args = ap.parse_args(argv)

    from wfsearch.proxy.data import needs_reach, static_rf_span, synthetic_gap
    from wfsearch.proxy.fidelity import FidelityRow, train_rows
    from wfsearch.space import load_spec

    spec = load_spec(args.spec, args.overrides)
    base = spec.fixed_arch()
    rows = [FidelityRow(name, base.replace(**d).to_dict()) for name, d in DESIGNS.items()]
    seeds = tuple(spec.proxy.seed + i for i in range(args.seeds))
    rep = train_rows(spec, rows, seeds, workers=args.workers, long_factor=args.long_factor,
                     long_seeds=args.long_seeds, results=args.runs)
    p, S = spec.proxy, spec.proxy.img_size
    arch = base.replace(img_size=S)
    full, long_e = rep.full_epochs, rep.long_epochs
    chance = 1 / p.dataset.num_classes
    lines = ["# Learning curves on the default task", "",
             f"`python benchmarks/task_curves.py {' '.join(sys.argv[1:] if argv is None else argv)}`".replace(" `", "`"), "",
             f"Task: synthetic, {p.dataset.num_classes} classes (chance {chance:.2f}), layout `{p.dataset.layout}`, "
             f"{S} px, {p.dataset.train_size} train / {p.dataset.val_size} val images. Network: patch "
             f"{arch.patch_size}, width {arch.embed_dim}, depth {arch.depth}, kernel {arch.kernel_size}: a static "
             f"network's receptive field spans {static_rf_span(arch)} px; the two objects are always at least "
             f"{synthetic_gap(S, p.dataset.layout)} px apart (needs reach: {needs_reach(arch, S, p.dataset.layout)}).",
             "", f"Validation accuracy after each epoch: mean of {len(seeds)} seeds at the proxy budget, "
             f"{args.long_seeds} at the longer one (min-max in brackets at the end).",
             ""]
    curves_fig = []
    for label, budget, pick in (("proxy budget", full, lambda r: r.curves), (f"{args.long_factor}x budget", long_e,
                                                                             lambda r: r.long_curves)):
        lines += [f"## {label}: {budget} epochs", "", "| design | " + " | ".join(str(e) for e in range(1, budget + 1))
                  + " | final (min-max) |", "|---|" + "---|" * (budget + 1)]
        for row in rows:
            runs = [c for c in pick(row).values() if c]
            means = [sum(c.get(e, float("nan")) for c in runs) / max(len(runs), 1) for e in range(1, budget + 1)]
            finals = [c.get(budget) for c in runs if c.get(budget) is not None]
            rng = f"{min(finals):.3f}-{max(finals):.3f}" if finals else "n/a"
            lines.append(f"| {row.label} | " + " | ".join(f"{m:.3f}" for m in means)
                         + f" | {means[-1]:.3f} ({rng}) |")
            curves_fig.append((f"{row.label}, {label}", list(range(1, budget + 1)), means))
        lines.append("")
    md = Path(f"{args.out}.md")
    md.write_text("\n".join(lines) + "\n")
    _figure(curves_fig, chance, Path(f"{args.out}.html"))
    print("\n".join(lines))
    print(f"wrote {md} and {args.out}.html")
    return 0


def _figure(curves, chance: float, path: Path) -> None:
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, x, y in curves:
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name,
                                 line={"dash": "dot" if "x budget" in name else "solid"}))
    fig.add_hline(y=chance, line_dash="dash", annotation_text="chance")
    fig.update_layout(title="Validation accuracy per epoch on the default synthetic task",
                      xaxis_title="epoch", yaxis_title="proxy validation accuracy", template="plotly_white")
    fig.write_html(path, include_plotlyjs="cdn")


if __name__ == "__main__":
    sys.exit(main())
