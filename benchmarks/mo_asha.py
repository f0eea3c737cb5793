"""Pareto-aware successive halving vs none, same wall time, same space: hypervolume of each front.

Runs the quick-start space with `study.scheduler.type=mo_asha` and with `none`, one after the other,
each for the same time budget and with the same sampler seed (a paired comparison), for each of
``--seeds``. Prints the number of distinct architectures each finished and the normalized
hypervolume of each front (`wfsearch.study.hypervolume`: each objective scaled from its worst to
its best feasible value, reference point 10% beyond the worst), both fronts of a seed in one box,
the box of the two studies' feasible trials together, so the pair compares; then the mean over
seeds. Run it on a quiet machine; throughput is measured inside each trial.

    python benchmarks/mo_asha.py [--budget 240] [--seeds 0 1 2] [--spec spaces/predictors.yaml]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=240, help="seconds of search per variant")
    p.add_argument("--spec", default=str(REPO / "spaces" / "predictors.yaml"))
    p.add_argument("--trials", type=int, default=200, help="trial cap (the budget should end first)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="study.seed values, one pair of runs each")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a key of the spec for both variants (repeatable)")
    args = p.parse_args()
    import optuna
    from optuna.trial import TrialState

    from wfsearch.search.driver import distinct_budget, pareto_candidates, search_records
    from wfsearch.space import load_spec
    from wfsearch.study.front import pareto_front
    from wfsearch.study.hypervolume import HypervolumeBox

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="wfsearch-moasha-"))
    rows = []
    directions = ["maximize", "maximize"]
    for seed in args.seeds:
        pair = []
        for scheduler in ("mo_asha", "none"):
            name = f"bench_{scheduler}_{seed}"
            cmd = [sys.executable, "-m", "wfsearch", "run", args.spec, "--no-progress",
                   "--time-budget", str(args.budget), "--set", f"study.name={name}",
                   "--set", f"study.trials={args.trials}", "--set", f"study.scheduler.type={scheduler}",
                   "--set", f"study.seed={seed}", "--set", "references=[]",
                   *[a for o in args.overrides for a in ("--set", o)]]
            res = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
            if res.returncode != 0:
                print(res.stderr[-2000:], file=sys.stderr)
                return 1
            study = optuna.load_study(study_name=name, storage=f"sqlite:///{work}/studies/{name}/optuna.db")
            spec = load_spec(args.spec, [*args.overrides, f"study.name={name}", f"study.trials={args.trials}"])
            distinct = distinct_budget(spec, study).count
            trained = pareto_candidates(search_records(study))
            complete = len(trained)
            pruned = len(study.get_trials(states=(TrialState.PRUNED,)))
            pair.append((seed, scheduler, distinct, complete, pruned, pareto_front(trained, directions), trained))
            print(f"seed {seed} {scheduler}: {distinct} distinct architectures, {complete} fully trained, "
                  f"{pruned} pruned, front {len(pair[-1][5])}", file=sys.stderr, flush=True)
        box = HypervolumeBox.of([t.values for p in pair for t in p[6]], directions, ["accuracy", "throughput"])
        for seed_, scheduler, distinct, complete, pruned, front, _ in pair:
            hv = box.hypervolume([t.values for t in front]) if box is not None else 0.0
            rows.append((seed_, scheduler, distinct, complete, pruned, len(front), hv, box))
            print(f"seed {seed_} {scheduler}: normalized hypervolume {hv:.3f} in the seed's box "
                  f"({box.describe() if box is not None else '-'})", file=sys.stderr, flush=True)
    print(f"# {args.spec} {' '.join('--set ' + o for o in args.overrides)}, {args.budget:.0f}s of search each; normalized hypervolume, one box per seed (the two "
          "studies' feasible trials: worst..best of each objective, reference point 10% beyond the worst)")
    print(f"{'seed':>4} {'scheduler':<10} {'distinct':>9} {'trained':>8} {'pruned':>7} {'front':>6} {'hypervolume':>12}  box")
    for r in rows:
        print(f"{r[0]:>4} {r[1]:<10} {r[2]:>9} {r[3]:>8} {r[4]:>7} {r[5]:>6} {r[6]:>12.3f}  "
              + (r[7].describe() if r[7] is not None else "-"))
    hv = {k: [r[6] for r in rows if r[1] == k] for k in ("mo_asha", "none")}
    mean = {k: sum(v) / len(v) for k, v in hv.items()}
    diffs = [a - b for a, b in zip(hv["mo_asha"], hv["none"])]
    if len(diffs) < 2:
        print(f"mean normalized hypervolume: mo_asha {mean['mo_asha']:.3f}, none {mean['none']:.3f}")
        return 0
    wins = sum(d > 0 for d in diffs)
    spread = (f", paired difference {statistics.mean(diffs):+.3f} (sd {statistics.stdev(diffs):.3f})"
              if len(diffs) > 1 else "")
    print(f"mean normalized hypervolume: mo_asha {mean['mo_asha']:.3f}, none {mean['none']:.3f}{spread}; "
          f"mo_asha higher in {wins} of {len(diffs)} seeds")
    from scipy import stats
    half = stats.t.ppf(0.95, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5
    low, high = statistics.mean(diffs) - half, statistics.mean(diffs) + half
    verdict = ("inside the noise: this comparison cannot tell the two apart" if low <= 0 <= high
               else "mo_asha better" if low > 0 else "none better")
    print(f"paired difference 90% t-interval [{low:+.3f}, {high:+.3f}] over {len(diffs)} seeds: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
