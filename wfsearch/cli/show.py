"""``wfsearch show STUDY``: the Pareto front and the references as a plain-text table; every trial with
``--all`` (a table), ``--json`` or ``--csv``."""
from __future__ import annotations

import argparse

from .helptext import examples
from .report import add_study_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="print a study's Pareto front and references as a table",
                       description="Print the Pareto front of a study (with the command that exports each trial) "
                                   "and its reference models as plain text; safe while a run is still writing.",
        **examples(
            'wfsearch show studies/predictors',
            'wfsearch show studies/predictors --all',
            'wfsearch show studies/predictors --json > trials.json',
            "wfsearch show --storage postgresql+psycopg2://user@host/db --study predictors  # pip install 'wfsearch[postgresql]'",
        ))
    add_study_args(p)
    form = p.add_mutually_exclusive_group()
    form.add_argument("--all", action="store_true", help="every trial as a table, with its status")
    form.add_argument("--json", action="store_true",
                      help="every trial as JSON: number, state, status, values, design, proxy_arch, deployed_arch, "
                           "deployed_costs, metrics")
    form.add_argument("--csv", action="store_true", help="every trial as CSV, one line each (nested fields as JSON)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wfsearch.report import all_trials_text, show_text, trials_csv, trials_json
    from wfsearch.study import read_study

    snap = read_study(args.study, storage=args.storage, study_name=args.study_name)
    if args.json:
        print(trials_json(snap))
    elif args.csv:
        print(trials_csv(snap), end="")
    else:
        print(all_trials_text(snap) if args.all else show_text(snap))
    return 0
