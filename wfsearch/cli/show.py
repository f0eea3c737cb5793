"""``wfsearch show STUDY``: the Pareto front and the references as a plain-text table; every trial with
``--all`` (a table), ``--json`` or ``--csv``."""
from __future__ import annotations

import argparse

from . import add_study_args, examples


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="print a study's Pareto front and references as a table",
                       description="Print the Pareto front of a study (with the command that exports each trial) "
                                   "and its reference models as plain text; safe while a run is still writing.",
        **examples(
            'wfsearch show studies/predictors',
            'wfsearch show studies/predictors --all',
            'wfsearch show studies/predictors --json > trials.json',
            'wfsearch show studies/predictors --all --sort accuracy --top 10   # the ten most accurate trials',
            'wfsearch show studies/predictors --csv > trials.csv   # flat, as Optuna\'s trials_dataframe()',
            'wfsearch show studies/predictors/optuna.db',
            "wfsearch show --storage postgresql+psycopg2://user@host/db --study predictors  # pip install 'wfsearch[postgresql]'",
        ))
    add_study_args(p)
    form = p.add_mutually_exclusive_group()
    form.add_argument("--all", action="store_true", help="every trial as a table, with its status")
    form.add_argument("--json", action="store_true",
                      help="every trial as JSON: number, state, status, values, design, proxy_arch, deployed_arch, "
                           "deployed_costs, metrics")
    form.add_argument("--csv", action="store_true",
                      help="every trial as CSV, one line each, flat as Optuna's trials_dataframe(): values_<objective>, "
                           "params_<knob>, intervals (<metric>_low/_high), raw and paired img/s, costs")
    p.add_argument("--sort", metavar="METRIC", help="order the rows best first by METRIC (an objective by its "
                                                    "direction, other numbers largest first), e.g. accuracy, params")
    p.add_argument("--reverse", action="store_true", help="the other way round")
    p.add_argument("--top", type=int, metavar="N", help="only the first N rows (after --sort)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wfsearch.report import all_trials_text, show_text, trials_csv, trials_json
    from wfsearch.report.table import sort_trials
    from wfsearch.study import read_study

    snap = read_study(args.study, storage=args.storage, study_name=args.study_name)
    order = dict(key=args.sort, top=args.top, reverse=args.reverse)
    if not (args.json or args.csv or args.all):
        print(show_text(snap, order))
        return 0
    trials = sort_trials(snap, snap.trials, **order)
    if args.json:
        print(trials_json(snap, trials))
    elif args.csv:
        print(trials_csv(snap, trials), end="")
    else:
        print(all_trials_text(snap, trials))
    return 0
