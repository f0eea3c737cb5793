"""Pareto-aware successive halving vs none, same wall time, same space: hypervolume of each front.

Runs the quick-start space with `study.scheduler.type=mo_asha` and with `none`, one after the other,
each for the same time budget and with the same sampler seed (a paired comparison), for each of
``--seeds``. Prints the number of trials each finished and the hypervolume of each front
(reference point: 0 accuracy, 0 img/s), then the mean over seeds. Run it on a quiet machine;
throughput is measured inside each trial.

    python benchmarks/mo_asha.py [--budget 240] [--seeds 0 1 2] [--spec spaces/predictors.yaml]
"""
from __future__ import annotations

import argparse
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
    args = p.parse_args()
    import optuna
    from optuna.trial import TrialState

    from wfsearch.study import hypervolume, pareto_front, read_records

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="wfsearch-moasha-"))
    rows = []
    for seed in args.seeds:
        for scheduler in ("mo_asha", "none"):
            name = f"bench_{scheduler}_{seed}"
            cmd = [sys.executable, "-m", "wfsearch", "run", args.spec, "--no-progress",
                   "--time-budget", str(args.budget), "--set", f"study.name={name}",
                   "--set", f"study.trials={args.trials}", "--set", f"study.scheduler.type={scheduler}",
                   "--set", f"study.seed={seed}", "--set", "references=[]"]
            res = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
            if res.returncode != 0:
                print(res.stderr[-2000:], file=sys.stderr)
                return 1
            study = optuna.load_study(study_name=name, storage=f"sqlite:///{work}/studies/{name}/optuna.db")
            front = pareto_front(read_records(study), ["maximize", "maximize"])
            hv = hypervolume([t.values for t in front], ["maximize", "maximize"], [0.0, 0.0])
            done = len(study.get_trials(states=(TrialState.COMPLETE,)))
            pruned = len(study.get_trials(states=(TrialState.PRUNED,)))
            rows.append((seed, scheduler, done, pruned, len(front), hv))
            print(f"seed {seed} {scheduler}: {done} complete, {pruned} pruned, front {len(front)}, hv {hv:.2f}",
                  file=sys.stderr, flush=True)
    print(f"# {args.spec}, {args.budget:.0f}s of search each, reference point (0 accuracy, 0 img/s)")
    print(f"{'seed':>4} {'scheduler':<10} {'complete':>9} {'pruned':>7} {'front':>6} {'hypervolume':>12}")
    for r in rows:
        print(f"{r[0]:>4} {r[1]:<10} {r[2]:>9} {r[3]:>7} {r[4]:>6} {r[5]:>12.2f}")
    mean = {k: sum(r[5] for r in rows if r[1] == k) / len(args.seeds) for k in ("mo_asha", "none")}
    wins = sum(a[5] >= b[5] for a, b in zip(rows[::2], rows[1::2]))
    print(f"mean hypervolume: mo_asha {mean['mo_asha']:.2f}, none {mean['none']:.2f}, ratio "
          f"{mean['mo_asha'] / mean['none']:.3f}; mo_asha >= none in {wins} of {len(args.seeds)} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
