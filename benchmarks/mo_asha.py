"""Pareto-aware successive halving vs none, same wall time, same space: hypervolume of each front.

Runs the quick-start space twice, one after the other, each for the same time budget and with
the same seed: once with `study.scheduler.type=mo_asha`, once with `none`. Prints the number of
trials each finished and the hypervolume of each front (reference point: 0 accuracy, 0 img/s).
Run them one at a time on a quiet machine; throughput is measured inside each trial.

    python benchmarks/mo_asha.py [--budget 300] [--spec spaces/predictors.yaml]
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
    p.add_argument("--budget", type=float, default=300, help="seconds of search per variant")
    p.add_argument("--spec", default=str(REPO / "spaces" / "predictors.yaml"))
    p.add_argument("--trials", type=int, default=200, help="trial cap (the budget should end first)")
    args = p.parse_args()
    import optuna
    from optuna.trial import TrialState

    from wfsearch.search.engine import pareto_front
    from wfsearch.search.pareto import hypervolume

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="wfsearch-moasha-"))
    rows = []
    for scheduler in ("mo_asha", "none"):
        name = f"bench_{scheduler}"
        cmd = [sys.executable, "-m", "wfsearch", "run", args.spec, "--no-progress",
               "--time-budget", str(args.budget), "--set", f"study.name={name}",
               "--set", f"study.trials={args.trials}", "--set", f"study.scheduler.type={scheduler}",
               "--set", "references=[]"]
        res = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        if res.returncode != 0:
            print(res.stderr[-2000:], file=sys.stderr)
            return 1
        study = optuna.load_study(study_name=name, storage=f"sqlite:///{work}/studies/{name}/optuna.db")
        front = pareto_front(study)
        hv = hypervolume([t.values for t in front], ["maximize", "maximize"], [0.0, 0.0])
        done = len(study.get_trials(states=(TrialState.COMPLETE,)))
        pruned = len(study.get_trials(states=(TrialState.PRUNED,)))
        rows.append((scheduler, done, pruned, len(front), hv))
    print(f"# {args.spec}, {args.budget:.0f}s of search each, reference point (0 accuracy, 0 img/s)")
    print(f"{'scheduler':<10} {'complete':>9} {'pruned':>7} {'front':>6} {'hypervolume':>12}")
    for r in rows:
        print(f"{r[0]:<10} {r[1]:>9} {r[2]:>7} {r[3]:>6} {r[4]:>12.2f}")
    print(f"ratio mo_asha/none: {rows[0][4] / rows[1][4]:.3f}" if rows[1][4] else "none found no front")
    return 0


if __name__ == "__main__":
    sys.exit(main())
