"""``wfsearch run SPEC``: search the design space; re-running continues the same study."""
from __future__ import annotations

import argparse

from .helptext import examples
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="search a design space (Ray Tune trials, Optuna study)",
                       description="Explore the design space of SPEC: Ray Tune runs one proxy training per "
                                   "sampled architecture, Optuna stores every trial and the Pareto front. "
                                   "Re-running the same command continues the same study.",
        **examples(
            'wfsearch run spaces/predictors.yaml                        # the quick start, minutes on a CPU',
            'wfsearch run spaces/predictors.yaml --set study.trials=40  # run again: continues the same study',
            'wfsearch run spaces/predictors.yaml --fresh                # a new study; the old one is kept',
            'ray start --head && wfsearch run spaces/predictors.yaml --address auto',
        ))
    p.add_argument("spec", metavar="SPEC", help="design-space YAML, e.g. spaces/predictors.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a spec value, e.g. --set study.trials=8 (repeatable)")
    p.add_argument("--address", default=None,
                   help="join an existing Ray cluster: auto or HOST:PORT (default: start Ray locally)")
    p.add_argument("--fresh", action="store_true",
                   help="start a new study; the old one is kept as <name>-<timestamp>")
    p.add_argument("--no-progress", action="store_true", help="no live progress line")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="stop starting new trials after this many seconds of search (Ray's start-up, the "
                        "references and the speed calibration not counted)")
    p.add_argument("--noop", action="store_true", help=argparse.SUPPRESS)  # orchestration benchmark
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    if args.address and "RAY_AUTH_MODE" not in os.environ and (Path.home() / ".ray" / "auth_token").exists():
        os.environ["RAY_AUTH_MODE"] = "token"  # `ray start` enabled token auth and saved its token there
    import shlex

    from wfsearch.search.engine import run_search
    from wfsearch.search.stop import Interrupted
    from wfsearch.space import load_spec

    if args.time_budget is not None and not 0 < args.time_budget < float("inf"):
        from wfsearch.errors import UserError

        raise UserError(f"--time-budget: {args.time_budget}: must be a number of seconds above 0")
    spec = load_spec(args.spec, args.overrides)
    try:
        summary = run_search(spec, address=args.address, fresh=args.fresh, progress=not args.no_progress,
                             noop=args.noop, time_budget_s=args.time_budget)
    except Interrupted as e:
        again = " ".join(shlex.quote(a) for a in ["wfsearch", "run", args.spec,
                                                  *(x for o in args.overrides for x in ("--set", o))])
        print(f"\nwfsearch: interrupted by {e.signal_name}: {e.marked} running trial(s) marked interrupted; "
              f"resume with: {again}", file=sys.stderr, flush=True)
        return e.exit_status
    print_summary(summary)
    return 0


def print_summary(summary) -> None:
    out = sys.stdout
    if summary.archived_as:
        print(f"previous study kept as {summary.archived_as!r}", file=out)
    if summary.stopped:
        print(f"\n{summary.stopped}", file=out)
    repeats = f", {summary.repeats} re-sampled (told their known result, not counted)" if summary.repeats else ""
    print(f"\nstudy {summary.study_name!r}: {summary.finished} distinct architectures finished ({summary.pruned} "
          f"pruned), {summary.failed} failed{repeats}, {len(summary.front)} on the front, normalized hypervolume "
          f"{summary.hypervolume:.3f}, {summary.seconds:.0f}s", file=out)
    from wfsearch.report.table import record_row, text_table

    front = [record_row(t, ()) for t in sorted(summary.front, key=lambda t: (-t.values[0], t.number))]
    if front:
        print("\nPareto front (img/s, ratio, params, MACs: the deployed network)", file=out)
        print("\n".join(text_table(front, "trial")), file=out)
    if summary.references:
        print("\nreferences", file=out)
        print("\n".join(text_table([record_row(t, ()) for t in summary.references], "reference")), file=out)
    print(f"\nstorage: {summary.storage}", file=out)
    print(f"logs:    {summary.study_dir / 'run.log'}", file=out)
    print(f"next:    wfsearch show {summary.study_dir}   |   wfsearch report {summary.study_dir}", file=out)

