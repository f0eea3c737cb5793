"""``wfsearch show STUDY``: the Pareto front and the references as a plain-text table."""
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
            'wfsearch show --storage postgresql://user@host/db --study predictors',
        ))
    add_study_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wfsearch.report import load_view, show_text

    print(show_text(load_view(args.study, storage=args.storage, study_name=args.study_name)))
    return 0
