"""Which sampler and scheduler find the front fastest? Every strategy replayed on a tabulated space.

    python benchmarks/search_strategies.py [--table benchmarks/tables/predictors] [--seeds 20] [--workers 2]
        [--out benchmarks/RESULTS-search.md]

For samplers random, tpe, nsga2, gp, auto x schedulers none, mo_asha (reduction factor 2 and 3),
``--seeds`` simulated searches each (`wfsearch.search.simulate`: the real sampler and rung decision,
a random training seed's recorded curve per trial, a simulated clock on ``--workers`` slots) run
until the clock passes the time that training every architecture of the table once would take on
those workers (``T_space``: the sum of the table's mean run times, measurement included, divided by
the workers). The sampler's settings follow the spec (``study.trials`` sizes TPE's start-up and
NSGA-II's population; ``auto`` is what the spec's ``auto`` resolves to).

Hypervolume: each objective normalized to [0, 1] by the range of the table's per-architecture means
(accuracy averaged over the training seeds, the costs as measured), the reference point at the worst
(0, 0). A search is scored by the *true* values (the means) of the architectures it has trained to
the end by time t, so luck in one seed's curve does not count. The true front is the front of all
architectures' means. Printed per strategy: the median and interquartile range of the normalized
hypervolume at 10%, 25% and 50% of ``T_space``, and the median (IQR) time to reach 95% of the true
front's hypervolume (as a fraction of ``T_space``; searches that never reach it count as infinite).
Writes the Markdown table to ``--out`` and an HTML plot (plotly) next to it.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLERS = ["random", "tpe", "nsga2", "gp", "auto"]
SCHEDULERS = [("none", None), ("mo_asha", 2), ("mo_asha", 3)]
FRACTIONS = [0.10, 0.25, 0.50]


def strategy_name(sampler: str, scheduler: str, rf: int | None) -> str:
    return f"{sampler} + " + ("no early stopping" if scheduler == "none" else f"mo_asha rf{rf}")


def normalizer(points: dict[str, list[float]], directions: list[str]):
    cols = list(zip(*points.values()))
    lo = [min(c) for c in cols]
    hi = [max(c) for c in cols]

    def norm(v: list[float]) -> list[float]:
        out = []
        for x, a, b, d in zip(v, lo, hi, directions):
            u = (x - a) / (b - a) if b > a else 1.0
            out.append(u if d == "maximize" else 1.0 - u)
        return out
    return norm


def hv(points: list[list[float]]) -> float:
    """Hypervolume of normalized points (all objectives maximized) against the reference (0, ..., 0)."""
    from wfsearch.study import dominated_hypervolume as hypervolume

    pts = [p for p in points if all(x > 0 for x in p)]
    return hypervolume(pts, ["maximize"] * len(pts[0]), [0.0] * len(pts[0])) if pts else 0.0


def run_one(spec, table, truth_norm, workers: int, seed: int, budget: float) -> tuple[list[tuple[float, float]], dict]:
    """The (simulated time, true normalized hypervolume) steps of one search, and its summary."""
    from wfsearch.search.simulate import simulate

    found: dict[str, list[float]] = {}
    steps: list[tuple[float, float]] = [(0.0, 0.0)]

    def on_complete(t, frozen):
        h = frozen.user_attrs.get("arch_hash")
        if h in truth_norm and h not in found:
            found[h] = truth_norm[h]
            steps.append((t, hv(list(found.values()))))

    _, s = simulate(spec, table, workers=workers, seed=seed, max_trials=10**6, time_budget_s=budget,
                    on_complete=on_complete)
    return steps, {"trials": s.trials, "pruned": s.pruned, "distinct": s.distinct, "seconds": s.seconds}


def value_at(steps: list[tuple[float, float]], t: float) -> float:
    v = 0.0
    for ts, h in steps:
        if ts > t:
            break
        v = h
    return v


def time_to(steps: list[tuple[float, float]], target: float) -> float:
    return next((ts for ts, h in steps if h >= target), math.inf)


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], statistics.median(xs), q[2]


def fmt_q(xs: list[float], pct: bool = False) -> str:
    lo, med, hi = quartiles(xs)
    f = (lambda v: "never" if math.isinf(v) else f"{v:.2f}") if pct else (lambda v: f"{v:.3f}")
    return f"{f(med)} [{f(lo)}, {f(hi)}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(ROOT / "benchmarks/tables/predictors-table.yaml"))
    ap.add_argument("--table", default=str(ROOT / "benchmarks/tables/predictors"))
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--samplers", nargs="+", default=SAMPLERS)
    ap.add_argument("--gp-seeds", type=int, default=None, help="seeds for the (slow) GP sampler (default: --seeds)")
    ap.add_argument("--budget", type=float, default=2.0, help="simulated time per search, in T_space (default: 2)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/RESULTS-search.md"))
    args = ap.parse_args(argv)

    import optuna
    import warnings

    from wfsearch.search.table import load_table
    from wfsearch.space import load_spec

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base = load_spec(args.spec)
    table = load_table(args.table)
    names = [o.name for o in base.study.objectives]
    directions = [o.direction for o in base.study.objectives]
    truth = table.mean_objectives(names)
    norm = normalizer(truth, directions)
    truth_norm = {h: norm(v) for h, v in truth.items()}
    true_hv = hv(list(truth_norm.values()))
    t_space = table.total_train_seconds() / args.workers
    seeds_per_arch = sorted({len(per) for per in table.runs.values()})
    default = (base.study.sampler, base.study.scheduler.type, base.study.scheduler.reduction_factor)
    print(f"table {args.table}: {len(table.archs)} architectures ({len(truth)} with every seed trained), seeds per "
          f"architecture {seeds_per_arch}; T_space = {t_space / 60:.1f} min on {args.workers} workers; true front "
          f"hypervolume {true_hv:.4f}", flush=True)

    results: dict[str, dict] = {}
    t0 = time.perf_counter()
    for sampler in args.samplers:
        for sched, rf in SCHEDULERS:
            name = strategy_name(sampler, sched, rf)
            study = base.study.model_copy(update={"sampler": sampler, "scheduler": base.study.scheduler.model_copy(
                update={"type": sched, **({"reduction_factor": rf} if rf else {})})})
            spec = base.model_copy(update={"study": study})
            runs = []
            tw = time.perf_counter()
            n_seeds = args.gp_seeds if sampler == "gp" and args.gp_seeds else args.seeds
            for seed in range(n_seeds):
                runs.append(run_one(spec, table, truth_norm, args.workers, seed, t_space * args.budget))
            r = {"steps": [s for s, _ in runs], "info": [i for _, i in runs]}
            r["at"] = {f: [value_at(s, f * t_space) / true_hv for s in r["steps"]] for f in FRACTIONS}
            r["t95"] = [time_to(s, 0.95 * true_hv) / t_space for s in r["steps"]]
            r["per_s"] = sum(i["trials"] for i in r["info"]) / (time.perf_counter() - tw)
            r["n"] = n_seeds
            results[name] = r
            print(f"{name:32s} " + "  ".join(f"{int(f * 100)}%: {fmt_q(r['at'][f])}" for f in FRACTIONS)
                  + f"  t95: {fmt_q(r['t95'], pct=True)}  ({r['per_s']:.0f} trials/s)", flush=True)

    ref = strategy_name("random", "none", None)
    dname = strategy_name(default[0], default[1], default[2] if default[1] != "none" else None)
    med = {k: statistics.median(v["t95"]) for k, v in results.items()}
    lines = [
        "# Search strategies on a tabulated space",
        "",
        f"`python benchmarks/search_strategies.py --seeds {args.seeds} --workers {args.workers}` "
        f"({time.perf_counter() - t0:.0f} s). Table `{Path(args.table).relative_to(ROOT) if Path(args.table).is_absolute() else args.table}`: "
        f"{len(table.archs)} architectures ({len(truth)} with every seed), seeds per architecture {seeds_per_arch}. "
        f"`T_space` = {t_space / 60:.1f} simulated min: training every architecture once on {args.workers} workers. "
        f"True front hypervolume {true_hv:.4f} (normalized objectives, reference at the worst).",
        "",
        "Normalized hypervolume of the architectures trained so far (their true, seed-averaged values) as a "
        "fraction of the true front's, median [IQR] over seeds; `t95`: simulated time to reach 95% of the true "
        "front, as a fraction of `T_space`.",
        "",
        f"Each search ran {args.budget:g} x `T_space` of simulated time; `never`: not within it. The spec's "
        f"`study.trials` ({base.study.trials}) sizes TPE's start-up and NSGA-II's population, and `auto` resolves "
        f"as `wfsearch run` resolves it for that budget.",
        "",
        "| strategy | seeds | " + " | ".join(f"HV at {int(f * 100)}%" for f in FRACTIONS) + " | t95 | trials/s |",
        "|---|---|" + "---|" * (len(FRACTIONS) + 2),
    ]
    for k, r in results.items():
        lines.append(f"| {k}{' (default)' if k == dname else ''} | {r['n']} | "
                     + " | ".join(fmt_q(r["at"][f]) for f in FRACTIONS)
                     + f" | {fmt_q(r['t95'], pct=True)} | {r['per_s']:.0f} |")
    if ref in med and dname in med:
        ratio = (med[dname] / med[ref] if math.isfinite(med[ref]) and med[ref] > 0
                 else 0.0 if math.isfinite(med[dname]) else math.nan)
        best = min(med, key=lambda k: med[k])
        lines += ["", f"Goal (default strategy reaches 95% of the true front in at most half the time of random "
                      f"search without early stopping, medians): default `{dname}` t95 = {med[dname]:.2f}, random "
                      f"t95 = {med[ref]:.2f}, ratio **{ratio:.2f}** ({'met' if ratio <= 0.5 else 'not met'}). "
                      f"Fastest median t95: `{best}` ({med[best]:.2f})."]
    out = Path(args.out)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-3:]))
    try:
        import plotly.graph_objects as go

        fig = go.Figure()
        grid = [i / 100 for i in range(0, 101)]
        for k, r in results.items():
            med_curve = [statistics.median(value_at(s, g * t_space) / true_hv for s in r["steps"]) for g in grid]
            fig.add_trace(go.Scatter(x=grid, y=med_curve, mode="lines", name=k))
        fig.update_layout(title="Median normalized hypervolume / true front vs simulated time",
                          xaxis_title="simulated time / T_space", yaxis_title="HV / true HV")
        fig.write_html(out.with_suffix(".html"), include_plotlyjs="cdn")
        print(f"wrote {out} and {out.with_suffix('.html')}")
    except ImportError:
        print(f"wrote {out} (no plotly: no plot)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
