"""``wfsearch simulate SPEC --table TABLE``: replay the spec's search against a tabulated space."""
from __future__ import annotations

import argparse

from wfsearch.errors import UserError

from . import add_spec_args, check_min, examples


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="replay a search against a tabulated design space, in simulated time",
                       description="Run the spec's sampler and scheduler against a table written by "
                                   "benchmarks/tabulate_space.py: each trial takes a recorded training curve instead "
                                   "of training, a simulated clock advances by its recorded epoch times, and "
                                   "the trials are written as an ordinary study (`wfsearch show` and "
                                   "`wfsearch report` read it).",
                       **examples(
                           "wfsearch simulate benchmarks/tables/predictors-table.yaml --table benchmarks/tables/predictors",
                           "wfsearch simulate benchmarks/tables/predictors-table.yaml --table benchmarks/tables/predictors \\",
                           "    --set study.sampler=random --set study.scheduler.type=none --seed 3   # one strategy, one seed",
                           "wfsearch show studies/predictors-table-simulated                 # an ordinary study"))
    add_spec_args(p, help="the design-space YAML the table was made from")
    p.add_argument("--table", required=True, metavar="DIR", help="table folder, e.g. benchmarks/tables/predictors")
    p.add_argument("--trials", type=int, default=None, metavar="N",
                   help="distinct architectures to evaluate (default: study.trials)")
    p.add_argument("--time-budget", type=float, default=None, metavar="S",
                   help="stop asking for trials after S simulated seconds")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="parallel trials (default: resources.max_concurrent, else the table's workers)")
    p.add_argument("--seed", type=int, default=None, help="seed of the sampler (default: study.seed; each "
                                                          "trial replays the table's run of proxy.seed)")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="study folder to write (default: studies/<study name>-simulated)")
    p.set_defaults(func=run)


def one_torch_thread(sampler: str) -> None:
    """The replay runs in one thread; so should the GP sampler's small torch matrices (with torch's default
    threads it was 5x slower on a shared 2-core machine). Other samplers do not load torch."""
    if sampler == "gp":
        import torch

        torch.set_num_threads(1)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wfsearch.search.simulate import save_study, simulate
    from wfsearch.search.table import load_table
    from wfsearch.space import load_spec
    from wfsearch.study import nondominated_ranks, study_dir

    check_min(args, 1, "trials", "workers")
    if args.time_budget is not None and not args.time_budget > 0:
        raise UserError(f"--time-budget: {args.time_budget}: must be > 0 simulated seconds")
    spec = load_spec(args.spec, args.overrides)
    table = load_table(args.table)
    one_torch_thread(spec.study.sampler)
    study, s = simulate(spec, table, workers=args.workers, seed=args.seed, max_trials=args.trials,
                        time_budget_s=args.time_budget)
    name = f"{spec.study.name}-simulated"
    out_dir = Path(args.output) if args.output else study_dir(name)
    save_study(study, spec, table, f"sqlite:///{out_dir / 'optuna.db'}", name)
    front = []
    if s.completions:
        ranks = nondominated_ranks([v for _, _, v in s.completions], study.directions)
        front = sorted({s.completions[i][1] for i, r in enumerate(ranks) if r == 0})
    print(f"simulated {s.trials} trials" + (f" (+{s.repeats} re-sampled)" if s.repeats else "")
          + f" ({s.complete} complete, {s.pruned} pruned, {s.failed} failed; "
          f"{s.distinct} architectures trained) in {s.simulated_seconds / 60:.1f} simulated min "
          f"on {args.workers or 'default'} workers, {s.seconds:.2f}s real ({s.trials / max(s.seconds, 1e-9):.0f} trials/s)")
    print(f"front: trials {front}")
    print(f"study: {out_dir} (wfsearch show {out_dir}; wfsearch report {out_dir})")
    return 0
