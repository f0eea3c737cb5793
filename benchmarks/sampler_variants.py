"""Do other settings of the default sampler find the front faster? TPE and NSGA-II variants on the table.

    python benchmarks/sampler_variants.py [--seeds 20] [--workers 2] [--out benchmarks/sampler_variants.txt]

`benchmarks/search_strategies.py` compares samplers with the settings ``wfsearch run`` gives them
(`wfsearch.search.sampler.make_sampler`: at the quick start's ``study.trials: 20``, TPE multivariate
with 6 start-up trials and, as Optuna 5 sets by default, the constant liar; NSGA-II with a population of 6). This replays the same simulated searches
(same table, budget, slots and seeds) with other settings in place of the spec's sampler, each with
no early stopping and with ``mo_asha`` (reduction factor 2), and prints the median and interquartile
range of ``t95`` (simulated time to 95% of the true front's hypervolume, in ``T_space``) next to random
search without early stopping from the same run, and their ratio.
"""
from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import search_strategies as ss  # noqa: E402  (the replay, the hypervolume and the figures)

SPEC = str(ss.ROOT / "benchmarks/tables/predictors-table.yaml")
TABLE = str(ss.ROOT / "benchmarks/tables/predictors")
VARIANTS = {  # name -> (Optuna sampler class name, keyword arguments), or the spec's sampler name to
    # build it as `wfsearch run` does; "random" is the reference
    "random": "random",
    "tpe (the default's settings)": "tpe",
    "tpe, 3 start-up trials": ("TPESampler", {"multivariate": True, "n_startup_trials": 3}),
    "tpe, 10 start-up trials": ("TPESampler", {"multivariate": True, "n_startup_trials": 10}),
    "tpe, independent": ("TPESampler", {"multivariate": False, "n_startup_trials": 6}),
    "tpe, constant liar on": ("TPESampler", {"multivariate": True, "n_startup_trials": 6, "constant_liar": True}),
    "tpe, constant liar off": ("TPESampler", {"multivariate": True, "n_startup_trials": 6, "constant_liar": False}),
    "nsga2 (the default's settings: population 6)": "nsga2",
    "nsga2, population 20": ("NSGAIISampler", {"population_size": 20}),
}
SCHEDULERS = [("none", None), ("mo_asha", 2)]


def one(variant: str, scheduler: str, rf: int | None, seed: int, budget: float, concurrent: int) -> float:
    import optuna

    import wfsearch.search.simulate as sim

    from wfsearch.search.sampler import make_sampler

    v = VARIANTS[variant]
    sim.make_sampler = make_sampler  # a worker process runs several variants in turn
    if isinstance(v, str):  # as `wfsearch run` builds it
        steps, _ = ss.run_one(SPEC, TABLE, concurrent, budget, v, scheduler, rf, seed)
    else:
        kind, kwargs = v
        sim.make_sampler = lambda spec, n: getattr(optuna.samplers, kind)(seed=spec.study.seed, **kwargs)
        steps, _ = ss.run_one(SPEC, TABLE, concurrent, budget, "tpe", scheduler, rf, seed)
    ctx = ss._load(SPEC, TABLE, concurrent)
    return ss.time_to(steps, 0.95 * ctx["true_hv"]) / ctx["t_space"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--budget", type=float, default=2.0)
    ap.add_argument("--concurrent", type=int, default=2)
    ap.add_argument("--out", default=None, help="also write the table here")
    args = ap.parse_args()
    tasks = [(v, s, rf, seed, args.budget, args.concurrent) for v in VARIANTS for s, rf in SCHEDULERS
             for seed in range(args.seeds)]
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        t95 = list(pool.map(one, *zip(*tasks)))
    by: dict[tuple[str, str], list[float]] = {}
    for (v, s, rf, *_), t in zip(tasks, t95):
        by.setdefault((v, "no early stopping" if s == "none" else f"mo_asha rf{rf}"), []).append(t)
    ref = statistics.median(by[("random", "no early stopping")])
    lines = [f"`python benchmarks/sampler_variants.py --seeds {args.seeds}`: t95 in `T_space`, median [IQR] over "
             f"{args.seeds} seeds; ratio: median t95 / random search's without early stopping ({ss.fmt_t(ref)})", "",
             "| sampler | scheduler | t95 | ratio |", "|---|---|---|---|"]
    for (v, s), ts in by.items():
        lines.append(f"| {v} | {s} | {ss.fmt_q(ts, times=True)} | {ss.ratio_of_medians(ts, [ref]):.2f} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
