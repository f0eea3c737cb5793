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
    from wfsearch.search.engine import objective_names  # noqa: F401

    out = sys.stdout
    if summary.archived_as:
        print(f"previous study kept as {summary.archived_as!r}", file=out)
    if summary.stopped:
        print(f"\n{summary.stopped}", file=out)
    repeats = f", {summary.repeats} re-sampled (told their known result, not counted)" if summary.repeats else ""
    print(f"\nstudy {summary.study_name!r}: {summary.finished} distinct architectures finished ({summary.pruned} "
          f"pruned), {summary.failed} failed{repeats}, {len(summary.front)} on the front, normalized hypervolume "
          f"{summary.hypervolume:.3f}, {summary.seconds:.0f}s", file=out)
    rows = [("front", t) for t in sorted(summary.front, key=lambda t: -t.values[0])]
    rows += [("reference", t) for t in summary.references]
    if rows:
        header = (f"{'':10} {'trial':>6} {'accuracy [90%]':>22} {'img/s [90%]':>22} {'ratio':>6} {'params(M)':>10} "
                  f"{'GMACs':>7}  architecture")
        print(header, file=out)
        print("-" * len(header), file=out)
        for kind, t in rows:
            m = t.user_attrs.get("metrics", {})
            name = t.user_attrs.get("reference_name") or ""
            print(f"{kind:10} {t.number if kind == 'front' else '':>6} {_with_interval(m, 'accuracy', '.3f'):>22} "
                  f"{_with_interval(m, 'throughput', '.1f'):>22} {m.get('throughput_ratio', float('nan')):>6.2f} "
                  f"{m.get('params', 0) / 1e6:>10.3f} {m.get('macs', 0) / 1e9:>7.3f}  {name or describe(t.user_attrs.get('arch'))}",
                  file=out)
    print(f"\nstorage: {summary.storage}", file=out)
    print(f"logs:    {summary.study_dir / 'run.log'}", file=out)
    print(f"next:    wfsearch show {summary.study_dir}   |   wfsearch report {summary.study_dir}", file=out)


def _with_interval(m: dict, key: str, spec: str) -> str:
    """``0.450 [0.417, 0.484]``: a stored metric with its 90% interval when the trial has one."""
    v, lo, hi = m.get(key), m.get(f"{key}_low"), m.get(f"{key}_high")
    if v is None:
        return "-"
    return format(v, spec) + (f" [{format(lo, spec)}, {format(hi, spec)}]" if lo is not None and hi is not None else "")


def describe(arch: dict | None) -> str:
    if not arch:
        return ""
    keys = ("fc1_predictor", "dwconv_predictor", "dynamic_blocks", "fc1_pool", "dwconv_pool", "rank_ratio")
    return " ".join(f"{k.replace('_predictor', '')}={arch[k]}" for k in keys if k in arch)
