"""Orchestration overhead per trial (Ray Tune + Optuna + storage), with a no-op evaluation.

Runs N no-op trials of spaces/smoke.yaml through `run_search` (actors reused, SQLite storage) and,
side by side in the same process, N ask/tell rounds of plain Optuna on the same kind of storage
and the same define-by-run space. Prints seconds per trial for both and their ratio. Ray's
one-time start is excluded (it is paid once per run, not per trial).

    python benchmarks/orchestration.py [--trials 40]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def optuna_alone(spec, n: int, url: str) -> float:
    import optuna
    from wfsearch.search.engine import SpaceFunction

    study = optuna.create_study(study_name="alone", storage=url, directions=["maximize", "maximize"])
    space = SpaceFunction(spec, [], {})
    t0 = time.perf_counter()
    for _ in range(n):
        trial = study.ask()
        space(trial)
        study.tell(trial, [1.0, 1.0])
    return (time.perf_counter() - t0) / n


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=40)
    args = p.parse_args()
    os.chdir(tempfile.mkdtemp(prefix="wfsearch-orch-"))
    import optuna
    from wfsearch.search.engine import init_ray, quiet_optuna, run_search
    from wfsearch.space import load_spec

    quiet_optuna()
    spec = load_spec(REPO / "spaces" / "smoke.yaml", [f"study.trials={args.trials}", "references=[]",
                                                       "study.sampler=random"])
    t0 = time.perf_counter()
    init_ray(None, Path("."))
    ray_start = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = run_search(spec, noop=True, progress=False)
    search = (time.perf_counter() - t0) / args.trials
    alone = optuna_alone(spec, args.trials, "sqlite:///alone.db")
    import ray
    cpus = int(ray.cluster_resources().get("CPU", 1))
    print(f"# {args.trials} no-op trials, {cpus} CPUs, {spec.resources.cpus_per_trial} CPU per trial, "
          f"actors reused, SQLite storage; Ray start {ray_start:.1f}s (once per run, excluded)")
    print(f"{'what':<34} {'s/trial':>8}")
    print(f"{'wfsearch run (Ray+Optuna+storage)':<34} {search:>8.3f}")
    print(f"{'Optuna ask/tell alone':<34} {alone:>8.3f}")
    print(f"ratio {search / alone:.1f}x; finished {summary.finished}/{args.trials}; target <= 0.5 s/trial: "
          f"{'met' if search <= 0.5 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
