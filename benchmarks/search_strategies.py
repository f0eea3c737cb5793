"""Which sampler and scheduler find the front fastest? Every strategy replayed on a tabulated space.

    python benchmarks/search_strategies.py [--table benchmarks/tables/predictors] [--seeds 20]
        [--samplers random tpe ...] [--schedulers none mo_asha:2 ...] [--workers 2] [--concurrent 2]
        [--out benchmarks/RESULTS-search.md]

For samplers random, tpe, nsga2, gp, auto x schedulers none, mo_asha (reduction factor 2 and 3),
``--seeds`` simulated searches each (`wfsearch.search.simulate`: the real sampler and rung decision,
the recorded run of each trial's proxy.seed, a simulated clock on ``--concurrent`` parallel
trial slots) run until the clock passes ``--budget`` x ``T_space``: the time that training every
architecture of the table once would take on those slots (the sum of the table's mean run times,
measurement included, divided by the slots). The sampler's settings follow the spec (``study.trials``
sizes TPE's start-up and NSGA-II's population; ``auto`` is what the spec's ``auto`` resolves to).
``--workers`` runs that many searches at once in separate processes (the results do not depend on it:
every search is seeded on its own).

Hypervolume: each objective normalized to [0, 1] by the range of the table's per-architecture means
(accuracy averaged over the training seeds, the paired throughput as `wfsearch run` stores it), the
reference point at the worst (0, 0). A search is scored by the *true* values (the means) of the
architectures it has trained to the end by time t, so luck in one seed's curve does not count.

The target is the *stable* front: per architecture, how often it is on the front of the seed-averaged
values over ``--draws`` bootstrap draws of its training seeds and throughput repeats
(`wfsearch.search.table.Table.front_frequency`); the members at least half the time are the stable
front, and ``t95`` is the simulated time to reach 95% of their hypervolume. A search stops early once
it has trained every architecture of the front of the means (its hypervolume cannot change after).

Held out: the defaults (`auto`'s TPE/NSG-II settings, MO-ASHA's reduction factor) were chosen on
``--tuned-on`` (benchmarks/sampler_variants.py ran there); the default table is another closed space,
never used to choose them. The output says which is which.

Printed per strategy: the median and interquartile range of the normalized hypervolume at 10%, 25%
and 50% of ``T_space``, and of ``t95`` (in ``T_space``; a search that never reaches it counts as
infinite). Then the goals: the default strategy's median t95 over that of random search without
early stopping (at most 0.5, the bootstrap interval's upper end below 0.8), and MO-ASHA's hypervolume
at 25% of ``T_space`` over no early stopping's with the default sampler (at least 1.2x), each with a
bootstrap 95% interval over seeds. Writes the Markdown table to ``--out`` and an HTML plot (plotly:
median hypervolume against simulated time, one line per strategy with its interquartile band) next
to it.
"""
from __future__ import annotations

import argparse
import bisect
import math
import multiprocessing
import os
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLERS = ["random", "tpe", "nsga2", "gp", "auto"]
SCHEDULERS = ["none", "mo_asha:2", "mo_asha:3"]
FRACTIONS = [0.10, 0.25, 0.50]
GOAL = 0.5  # the default strategy's t95 over random search's (no early stopping), at most
GOAL_HIGH = 0.8  # ... and the upper end of its bootstrap interval below this
ASHA_GOAL = 1.2  # MO-ASHA's hypervolume at 25% of T_space over no early stopping's, at least


def parse_scheduler(text: str) -> tuple[str, int | None]:
    if text == "none":
        return "none", None
    kind, _, rf = text.partition(":")
    if kind != "mo_asha" or not rf.isdigit() or int(rf) < 2:
        raise SystemExit(f"--schedulers: {text!r}: use none or mo_asha:RF with a reduction factor RF >= 2")
    return kind, int(rf)


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


def dominates(a: list[float], b: list[float]) -> bool:
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


# --------------------------------------------------------------------------- one search (any process)
_CTX: dict = {}


def _load(spec_path: str, table_path: str, concurrent: int, draws: int = 200) -> dict:
    """Spec, table, the true front's normalized points and the stable front, once per process."""
    key = (spec_path, table_path, concurrent, draws)
    if _CTX.get("key") != key:
        import optuna
        import warnings

        from wfsearch.search.table import load_table
        from wfsearch.space import load_spec

        from wfsearch.cli.simulate import one_torch_thread

        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        one_torch_thread("gp")  # the GP sampler: 5x faster than with torch's default threads
        base = load_spec(spec_path)
        table = load_table(table_path)
        names = [o.name for o in base.study.objectives]
        directions = [o.direction for o in base.study.objectives]
        truth = table.mean_objectives(names)
        norm = normalizer(truth, directions)
        truth_norm = {h: norm(v) for h, v in truth.items()}
        freq = table.front_frequency(names, directions, draws=draws)
        stable = [h for h, f in freq.items() if f >= 0.5]
        _CTX.clear()
        _CTX.update(key=key, base=base, names=names, table=table, truth=truth, truth_norm=truth_norm, freq=freq, stable=stable,
                    true_hv=hv(list(truth_norm.values())), stable_hv=hv([truth_norm[h] for h in stable]),
                    t_space=table.total_train_seconds() / concurrent)
    return _CTX


def strategy_spec(base, sampler: str, scheduler: str, rf: int | None):
    sched = base.study.scheduler.model_copy(update={"type": scheduler, **({"reduction_factor": rf} if rf else {})})
    return base.model_copy(update={"study": base.study.model_copy(update={"sampler": sampler, "scheduler": sched})})


def run_one(spec_path: str, table_path: str, concurrent: int, draws: int, budget: float, sampler: str,
            scheduler: str, rf: int | None, seed: int) -> tuple[list[tuple[float, float]], dict]:
    """The (simulated time, true normalized hypervolume) steps of one search, and its summary."""
    from wfsearch.search.sampler import resolve_sampler
    from wfsearch.search.simulate import simulate

    ctx = _load(spec_path, table_path, concurrent, draws)
    truth_norm, true_hv = ctx["truth_norm"], ctx["true_hv"]
    front: dict[str, list[float]] = {}  # the non-dominated architectures trained so far
    seen: set[str] = set()
    steps: list[tuple[float, float]] = [(0.0, 0.0)]

    def on_complete(t, frozen):
        h = frozen.user_attrs.get("arch_hash")
        if h not in truth_norm or h in seen:
            return
        seen.add(h)
        p = truth_norm[h]
        if any(dominates(q, p) or q == p for q in front.values()):
            return
        for k in [k for k, q in front.items() if dominates(p, q)]:
            del front[k]
        front[h] = p
        steps.append((t, hv(list(front.values()))))

    def whole_front_found() -> bool:
        return steps[-1][1] >= true_hv * (1 - 1e-9)

    spec = strategy_spec(ctx["base"], sampler, scheduler, rf)
    # the sampler as `run` builds it for the spec's budget (study.trials decides `auto` and sizes TPE's start-up
    # and NSGA-II's population), not for the unbounded trial count that lets the clock alone end the search
    _, s = simulate(spec, ctx["table"], workers=concurrent, seed=seed, max_trials=10**7, resolved=resolve_sampler(spec),
                    time_budget_s=ctx["t_space"] * budget, on_complete=on_complete, stop=whole_front_found)
    return steps, {"trials": s.trials, "pruned": s.pruned, "distinct": s.distinct, "seconds": s.seconds,
                   "stopped": s.stopped_because}


# --------------------------------------------------------------------------- what limits the goal
def ranks(xs: list[float]) -> list[float]:
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    out = [0.0] * len(xs)
    i = 0
    while i < len(order):  # ties share their average rank
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in order[i:j + 1]:
            out[k] = (i + j) / 2
        i = j + 1
    return out


def rank_correlation(x: list[float], y: list[float]) -> float:
    """Spearman's rho (Pearson's on average ranks)."""
    return statistics.correlation(ranks(x), ranks(y))


def limits(ctx: dict, concurrent: int) -> list[str]:
    """What bounds any strategy's t95 on this table: how few architectures carry 95% of the true front's
    hypervolume (an oracle that trains only those), and how well one training seed and the first rung
    rank architectures by their true accuracy."""
    import itertools

    table, truth_norm, true_hv, t_space = ctx["table"], ctx["truth_norm"], ctx["true_hv"], ctx["t_space"]
    front = [h for h, p in truth_norm.items() if not any(dominates(q, p) for q in truth_norm.values())]

    def cost(h: str) -> float:
        per = table.runs[h]
        return sum(sum(e.seconds for e in c) for c in per.values()) / len(per) + table.archs[h].measure_seconds

    oracle = None
    if len(front) <= 16:  # every subset of the front: the cheapest that reaches 95%
        for r in range(1, len(front) + 1):
            for sub in itertools.combinations(front, r):
                if hv([truth_norm[h] for h in sub]) >= 0.95 * true_hv:
                    c = sum(cost(h) for h in sub) / concurrent / t_space
                    oracle = min(oracle or (math.inf, 0), (c, r))
    seeds = table.seeds
    complete = [h for h in truth_norm if all(s in table.runs[h] for s in seeds)]
    final = {s: [table.runs[h][s][-1].accuracy for h in complete] for s in seeds}
    mean = [statistics.fmean(final[s][i] for s in seeds) for i in range(len(complete))]
    pairs = [rank_correlation(final[a], final[b]) for a, b in itertools.combinations(seeds, 2)]
    first = [c[0].accuracy for h in complete for c in table.runs[h].values()]
    last = [c[-1].accuracy for h in complete for c in table.runs[h].values()]
    spread = statistics.median(max(final[s][i] for s in seeds) - min(final[s][i] for s in seeds)
                               for i in range(len(complete)))
    q1, q2, q3 = quartiles(mean)
    out = [f"True front: {len(front)} of {len(truth_norm)} architectures."]
    ds = ctx["base"].proxy.dataset  # how far this table's own runs rank designs: the proxy's reliability
    q, n = table.quality(ds.val_size or 1000, ds.num_classes or 4)
    if q is not None:
        out.append(f"The proxy on this table ({n} architectures x {len(seeds)} seeds, `wfsearch.proxy.quality`): "
                   f"{q.verdict()}; first-rung tau {q.tau_rung.value:.2f} [{q.tau_rung.low:.2f}, "
                   f"{q.tau_rung.high:.2f}]. A strategy cannot rank designs better than the runs it reads do.")
    if oracle:
        out.append(f"An oracle that trains only the cheapest set of front architectures reaching 95% of its "
                   f"hypervolume ({oracle[1]} of them) needs t95 = {oracle[0]:.3f} `T_space`; random search finds "
                   f"a given set of k architectures in about k / (k + 1) of `T_space` on average.")
    out.append(f"Final accuracy, mean over seeds, per architecture: median {q2:.3f} [IQR {q1:.3f}, {q3:.3f}], "
               f"max {max(mean):.3f}; the spread between one architecture's seeds, median {spread:.3f}. "
               f"Rank correlation of the final accuracy between seeds: "
               + ", ".join(f"{r:.2f}" for r in pairs)
               + f"; of a run's first-rung (epoch {table.runs[complete[0]][seeds[0]][0].epoch}) accuracy with its "
               f"final one: {rank_correlation(first, last):.2f}.")
    return out


# --------------------------------------------------------------------------- figures
def value_at(steps: list[tuple[float, float]], t: float) -> float:
    i = bisect.bisect_right([ts for ts, _ in steps], t)
    return steps[i - 1][1] if i else 0.0


def time_to(steps: list[tuple[float, float]], target: float) -> float:
    return next((ts for ts, h in steps if h >= target), math.inf)


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], statistics.median(xs), q[2]


def fmt_rate(v: float) -> str:
    return f"{v:.0f}" if v >= 10 else f"{v:.2g}"


def fmt_t(v: float) -> str:
    return "never" if math.isinf(v) else f"{v:.2f}"


def fmt_q(xs: list[float], times: bool = False) -> str:
    lo, med, hi = quartiles(xs)
    f = fmt_t if times else (lambda v: f"{v:.3f}")
    return f"{f(med)} [{f(lo)}, {f(hi)}]"


def ratio_of_medians(a: list[float], b: list[float]) -> float:
    """median(a) / median(b) for times that may be infinite (never reached)."""
    ma, mb = statistics.median(a), statistics.median(b)
    if math.isinf(ma):
        return math.nan if math.isinf(mb) else math.inf
    if math.isinf(mb):
        return 0.0
    return ma / mb if mb > 0 else math.nan


def bootstrap_ratio(a: list[float], b: list[float], reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A 95% percentile interval of `ratio_of_medians`, resampling each strategy's seeds (independent searches)."""
    rng = random.Random(seed)
    rs = [ratio_of_medians(rng.choices(a, k=len(a)), rng.choices(b, k=len(b))) for _ in range(reps)]
    rs = sorted(r for r in rs if not math.isnan(r))
    if not rs:
        return math.nan, math.nan
    return rs[int(0.025 * (len(rs) - 1))], rs[int(math.ceil(0.975 * (len(rs) - 1)))]


def plot(results: dict[str, dict], path: Path, horizon: float) -> bool:
    try:
        import plotly.graph_objects as go
        from plotly.colors import DEFAULT_PLOTLY_COLORS, qualitative
    except ImportError:
        return False
    colors = qualitative.Dark24 if len(results) > len(DEFAULT_PLOTLY_COLORS) else DEFAULT_PLOTLY_COLORS
    grid = [horizon * i / 200 for i in range(201)]
    fig = go.Figure()
    for i, (name, r) in enumerate(results.items()):
        color = colors[i % len(colors)]
        qs = [quartiles([value_at(s, g * r["t_space"]) / r["true_hv"] for s in r["steps"]]) for g in grid]
        fill = color.replace("rgb(", "rgba(").replace(")", ", 0.15)") if color.startswith("rgb(") else color
        fig.add_trace(go.Scatter(x=grid + grid[::-1], y=[q[2] for q in qs] + [q[0] for q in qs][::-1],
                                 fill="toself", fillcolor=fill, line={"width": 0}, hoverinfo="skip",
                                 legendgroup=name, showlegend=False, opacity=0.5 if fill == color else 1.0))
        fig.add_trace(go.Scatter(x=grid, y=[q[1] for q in qs], mode="lines", name=name, legendgroup=name,
                                 line={"color": color}))
    stable = next(iter(results.values()))["stable_hv"] / next(iter(results.values()))["true_hv"] if results else 1.0
    fig.add_hline(y=0.95 * stable, line_dash="dot", annotation_text="95% of the stable front")
    fig.update_layout(title="Normalized hypervolume / true front's against simulated time (median, IQR band)",
                      xaxis_title="simulated time / T_space", yaxis_title="HV / true front's HV",
                      yaxis_range=[0, 1.02])
    fig.write_html(path, include_plotlyjs="cdn")
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(ROOT / "benchmarks/tables/quickstart-table.yaml"))
    ap.add_argument("--table", default=str(ROOT / "benchmarks/tables/quickstart"))
    ap.add_argument("--tuned-on", default="benchmarks/tables/predictors",
                    help="the table the defaults were chosen on (said in the output; default: %(default)s)")
    ap.add_argument("--draws", type=int, default=200, help="bootstrap draws of the stable front (default: 200)")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--samplers", nargs="+", default=SAMPLERS, choices=SAMPLERS)
    ap.add_argument("--schedulers", nargs="+", default=SCHEDULERS, metavar="none|mo_asha:RF",
                    help=f"default: {' '.join(SCHEDULERS)}")
    ap.add_argument("--gp-seeds", type=int, default=None, help="seeds for the (slow) GP sampler (default: --seeds)")
    ap.add_argument("--budget", type=float, default=2.0, help="simulated time per search, in T_space (default: 2)")
    ap.add_argument("--concurrent", type=int, default=2, help="parallel trials in each simulated search (default: 2)")
    ap.add_argument("--workers", type=int, default=1, help=f"searches run at once, one process each "
                                                           f"(default: 1; this machine has {os.cpu_count()} CPUs)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/RESULTS-search.md"))
    args = ap.parse_args(argv)
    schedulers = [parse_scheduler(s) for s in args.schedulers]
    for flag in ("seeds", "concurrent", "workers"):
        if getattr(args, flag) < 1:
            raise SystemExit(f"--{flag}: {getattr(args, flag)}: must be >= 1")

    ctx = _load(args.spec, args.table, args.concurrent, args.draws)
    base, table, truth, true_hv, t_space = ctx["base"], ctx["table"], ctx["truth"], ctx["true_hv"], ctx["t_space"]
    stable_hv = ctx["stable_hv"]
    seeds_per_arch = sorted({len(per) for per in table.runs.values()})
    default = strategy_name(base.study.sampler, base.study.scheduler.type, base.study.scheduler.reduction_factor)
    reference = strategy_name("random", "none", None)
    print(f"table {args.table}: {len(table.archs)} architectures ({len(truth)} with every seed trained), seeds per "
          f"architecture {seeds_per_arch}; T_space = {t_space / 60:.1f} min on {args.concurrent} slots; true front "
          f"hypervolume {true_hv:.4f}, stable front ({len(ctx['stable'])} members) {stable_hv:.4f}; default strategy: "
          f"{default}", flush=True)

    strategies = [(sampler, sched, rf) for sampler in args.samplers for sched, rf in schedulers]
    tasks = [(strategy, seed) for strategy in strategies
             for seed in range(args.gp_seeds if strategy[0] == "gp" and args.gp_seeds else args.seeds)]
    tasks.sort(key=lambda task: task[0][0] != "gp")  # the slowest sampler first, so that it does not finish last alone
    runs: dict[tuple, dict[int, tuple]] = {s: {} for s in strategies}
    expected = {s: sum(1 for t in tasks if t[0] == s) for s in strategies}
    results: dict[str, dict] = {}
    t0 = time.perf_counter()

    def finished(strategy: tuple) -> None:
        name = strategy_name(*strategy)
        done = [runs[strategy][seed] for seed in sorted(runs[strategy])]
        steps, info = [s for s, _ in done], [i for _, i in done]
        r = {"steps": steps, "info": info, "n": len(done), "t_space": t_space, "true_hv": true_hv,
             "stable_hv": stable_hv}
        r["at"] = {f: [value_at(s, f * t_space) / true_hv for s in steps] for f in FRACTIONS}
        r["t95"] = [time_to(s, 0.95 * stable_hv) / t_space for s in steps]
        r["trials"] = statistics.median(i["trials"] for i in info)
        r["per_s"] = sum(i["trials"] for i in info) / max(1e-9, sum(i["seconds"] for i in info))
        results[name] = r
        print(f"{name:28s} " + "  ".join(f"{int(f * 100)}%: {fmt_q(r['at'][f])}" for f in FRACTIONS)
              + f"  t95: {fmt_q(r['t95'], times=True)}  ({r['trials']:.0f} trials/search, {fmt_rate(r['per_s'])} trials/s)",
              flush=True)

    job = (args.spec, args.table, args.concurrent, args.draws, args.budget)
    if args.workers == 1:
        for strategy, seed in tasks:
            runs[strategy][seed] = run_one(*job, *strategy, seed)
            if len(runs[strategy]) == expected[strategy]:
                finished(strategy)
    else:
        # spawn, not fork: a child forked after torch has set up its threads hangs in the GP sampler
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(run_one, *job, *strategy, seed): (strategy, seed) for strategy, seed in tasks}
            for fut in as_completed(futures):
                strategy, seed = futures[fut]
                runs[strategy][seed] = fut.result()
                if len(runs[strategy]) == expected[strategy]:
                    finished(strategy)
    order = [strategy_name(*s) for s in strategies]
    results = {k: results[k] for k in order}
    elapsed = time.perf_counter() - t0

    table_arg = Path(args.table)
    table_arg = table_arg.relative_to(ROOT) if table_arg.is_absolute() and table_arg.is_relative_to(ROOT) else table_arg
    command = "python benchmarks/search_strategies.py " + " ".join(argv if argv is not None else sys.argv[1:])
    complete = table.meta.get("complete")
    lines = [
        "# Search strategies on a tabulated space",
        "",
        f"`{command.strip()}` ({elapsed:.0f} s on {args.workers} process{'es' if args.workers > 1 else ''}). "
        f"Table `{table_arg}` ({'complete' if complete else '**partial: tabulate_space.py has not finished it**'}): "
        f"{len(table.archs)} architectures ({len(truth)} with every seed), seeds per architecture {seeds_per_arch}. "
        f"`T_space` = {t_space / 60:.1f} simulated min: training every architecture once on {args.concurrent} "
        "parallel slots.",
        "",
        (f"**Held out.** The defaults (`auto`'s sampler settings, MO-ASHA's reduction factor) were chosen on "
         f"`{args.tuned_on}` (`benchmarks/sampler_variants.py`); `{table_arg}` was not used to choose anything."
         if Path(args.tuned_on) != table_arg else
         f"**Not held out**: the defaults were chosen on this table (`{args.tuned_on}`); read these figures as "
         "the tuning set's, not as a test."),
        "",
        f"**The stable front.** Over {args.draws} bootstrap draws of each architecture's training seeds and "
        "throughput repeats, how often it is on the front of the seed-averaged values; the stable front is the "
        f"{len(ctx['stable'])} at least half the time ({sum(f > 0 for f in ctx['freq'].values())} reach the front in "
        f"some draw). Its hypervolume {stable_hv:.4f}, the front of the means' {true_hv:.4f} (normalized "
        "objectives, reference at the worst).",
        "",
        "| architecture | on the front | " + " | ".join(f"{n} (mean)" for n in ctx["names"]) + " | knobs |",
        "|---|---|" + "---|" * (len(ctx["names"]) + 1),
    ]
    for h, f in sorted(ctx["freq"].items(), key=lambda kv: -kv[1]):
        if f < 0.1:
            break
        knobs = ", ".join(f"{k} {v}" for k, v in table.archs[h].params.items())
        lines.append(f"| `{h}`{' (stable)' if f >= 0.5 else ''} | {f:.2f} | "
                     + " | ".join(f"{v:.4g}" for v in truth[h]) + f" | {knobs} |")
    lines += [
        "",
        "Normalized hypervolume of the architectures trained so far (their true, seed-averaged values) as a "
        "fraction of the front of the means', median [IQR] over seeds; `t95`: simulated time to reach 95% of the "
        "stable front's hypervolume, as a fraction of `T_space`.",
        "",
        f"Each search ran at most {args.budget:g} x `T_space` of simulated time (`never`: not within it), and "
        f"stopped once it had the whole front of the means. The spec's `study.trials` ({base.study.trials}) sizes "
        "TPE's start-up and NSGA-II's population, and `auto` resolves as `wfsearch run` resolves it for that budget.",
        "",
        "| strategy | seeds | " + " | ".join(f"HV at {int(f * 100)}%" for f in FRACTIONS)
        + " | t95 | trials/search | trials/s |",
        "|---|---|" + "---|" * (len(FRACTIONS) + 3),
    ]
    for k, r in results.items():
        lines.append(f"| {k}{' (default)' if k == default else ''} | {r['n']} | "
                     + " | ".join(fmt_q(r["at"][f]) for f in FRACTIONS)
                     + f" | {fmt_q(r['t95'], times=True)} | {r['trials']:.0f} | {fmt_rate(r['per_s'])} |")
    med = {k: statistics.median(r["t95"]) for k, r in results.items()}
    if med:
        best = min(med, key=lambda k: med[k])
        lines += ["", f"Fastest median t95: `{best}` ({fmt_t(med[best])} `T_space`)."]
    if default in results and reference in results:
        ratio = ratio_of_medians(results[default]["t95"], results[reference]["t95"])
        lo, hi = bootstrap_ratio(results[default]["t95"], results[reference]["t95"])
        verdict = ("not measurable" if math.isnan(ratio) else "met" if ratio <= GOAL and hi < GOAL_HIGH
                   else "not met")
        lines += ["", f"**Goal** (the default strategy reaches 95% of the stable front in at most {GOAL:g} x the "
                      f"simulated time random search without early stopping needs, medians over seeds, the interval's "
                      f"upper end below {GOAL_HIGH:g}): default `{default}` t95 = {fmt_t(med[default])}, `{reference}` "
                      f"t95 = {fmt_t(med[reference])}, ratio **{ratio:.2f}** (bootstrap 95% interval over seeds "
                      f"[{lo:.2f}, {hi:.2f}]): **{verdict}**."]
    else:
        lines += ["", f"Goal not evaluated: it needs both `{default}` and `{reference}` "
                      "(--samplers and --schedulers left one out)."]
    asha = [(k, strategy_name(base.study.sampler, "none", None)) for k in results
            if k.startswith(f"{base.study.sampler} + mo_asha")]
    for k, none in asha:
        if none not in results:
            continue
        a, b = results[k]["at"][0.25], results[none]["at"][0.25]
        ratio = statistics.median(a) / statistics.median(b) if statistics.median(b) > 0 else math.inf
        lo, hi = bootstrap_ratio(a, b)
        lines += ["", f"**MO-ASHA** `{k}` against `{none}` at 25% of `T_space`: hypervolume {fmt_q(a)} against "
                      f"{fmt_q(b)}, ratio of medians **{ratio:.2f}** [{lo:.2f}, {hi:.2f}] (goal at least {ASHA_GOAL:g}: "
                      f"**{'met' if ratio >= ASHA_GOAL else 'not met'}**)."]
    lines += ["", "What limits the ratio (from the table alone, whatever the strategy):", ""]
    lines += [f"- {x}" for x in limits(ctx, args.concurrent)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-3:]))
    html = out.with_suffix(".html")
    if plot(results, html, args.budget):
        print(f"wrote {out} and {html}")
    else:
        print(f"wrote {out} (plotly is not installed: no plot)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
