"""``wfsearch run SPEC``: search the design space; re-running continues the same study."""
from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import sys
from pathlib import Path

from wfsearch.errors import UserError

from . import add_spec_args, examples


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="search a design space (Ray Tune trials, Optuna study)",
                       description="Explore the design space of SPEC: Ray Tune runs one proxy training per "
                                   "sampled architecture, Optuna stores every trial and the Pareto front. "
                                   "Re-running the same command continues the same study.",
        **examples(
            'wfsearch run spaces/predictors.yaml                        # the quick start, minutes on a CPU',
            'wfsearch run spaces/predictors.yaml --set study.trials=40  # run again: continues the same study',
            'wfsearch run spaces/predictors.yaml --fresh                # a new study; the old one is kept',
            'wfsearch run spaces/predictors.yaml --enqueue known.yaml   # these designs first',
            'wfsearch run spaces/predictors.yaml --tensorboard          # also log to studies/predictors/tensorboard/',
            'ray start --head && wfsearch run spaces/predictors.yaml --address auto'))
    add_spec_args(p)
    p.add_argument("--address", default=None,
                   help="join an existing Ray cluster: auto or HOST:PORT (default: start Ray locally)")
    p.add_argument("--fresh", action="store_true",
                   help="start a new study; the old one is kept as <name>-<timestamp>")
    p.add_argument("--enqueue", metavar="DESIGNS.yaml",
                   help="evaluate these designs first (a YAML list of knob mappings, as Optuna's enqueue_trial; "
                        "a design the study already holds is not queued again)")
    p.add_argument("--tensorboard", action="store_true",
                   help="also log the search to studies/<name>/tensorboard/: each finished trial's objectives and the "
                        "hypervolume, front size and bests (needs pip install 'wfsearch[tensorboard]')")
    p.add_argument("--wandb", action="store_true",
                   help="also log the search to Weights & Biases, project wfsearch (needs pip install wandb)")
    p.add_argument("--no-progress", action="store_true", help="no live progress line")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="stop starting new trials after this many seconds of search (Ray's start-up, the "
                        "references and the speed calibration not counted)")
    p.add_argument("--noop", action="store_true", help=argparse.SUPPRESS)  # orchestration benchmark
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.address and "RAY_AUTH_MODE" not in os.environ and (Path.home() / ".ray" / "auth_token").exists():
        os.environ["RAY_AUTH_MODE"] = "token"  # `ray start` enabled token auth and saved its token there
    from wfsearch.space import load_designs, load_spec

    if args.time_budget is not None and not 0 < args.time_budget < float("inf"):
        raise UserError(f"--time-budget: {args.time_budget}: must be a number of seconds above 0")
    spec = load_spec(args.spec, args.overrides)
    designs = load_designs(spec, args.enqueue) if args.enqueue else None
    if args.wandb and importlib.util.find_spec("wandb") is None:
        raise UserError("--wandb: the wandb package is not installed; pip install 'wfsearch[wandb]' "
                        "(and `wandb login`), or drop --wandb")
    trackers = tuple(t for t in ("tensorboard", "wandb") if getattr(args, t))
    if not args.no_progress:  # loading Ray takes seconds: say what is coming first
        print(f"wfsearch run {args.spec}: study {spec.study.name!r}, {spec.study.trials} architectures; loading Ray",
              file=sys.stderr, flush=True)
    from wfsearch.search.engine import run_search
    from wfsearch.search.stop import Interrupted

    try:
        summary = run_search(spec, address=args.address, fresh=args.fresh, progress=not args.no_progress,
                             noop=args.noop, time_budget_s=args.time_budget, enqueue=designs, trackers=trackers)
    except Interrupted as e:
        again = shlex.join(["wfsearch", "run", args.spec, *(x for o in args.overrides for x in ("--set", o))])
        print(f"\nwfsearch: interrupted by {e.signal_name}: {e.marked} running trial(s) marked interrupted; "
              f"resume with: {again}", file=sys.stderr, flush=True)
        return e.exit_status
    print(summary_text(summary))
    return 0


def _shown(path) -> str:
    """A path as the user would type it: relative to the working directory when under it."""
    p = Path(path)
    try:
        p = p.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        pass
    return shlex.quote(str(p))


def summary_text(summary) -> str:
    """What `run` prints at its end: counts, the front and the references, where things are, what next."""
    from wfsearch.report.data import chance_flag
    from wfsearch.report.table import record_row, text_table
    from wfsearch.study.snapshot import chance_of

    out = []
    if summary.archived_as:
        out.append(f"previous study kept as {summary.archived_as!r}")
    if summary.stopped:
        out.append(f"\n{summary.stopped}")
    repeats = f", {summary.repeats} re-sampled (told their known result, not counted)" if summary.repeats else ""
    out.append(f"\nstudy {summary.study_name!r}: {summary.finished} distinct architectures finished ({summary.pruned} "
               f"pruned), {summary.failed} failed{repeats}, {len(summary.front)} on the front, normalized hypervolume "
               f"{summary.hypervolume:.3f}, {summary.seconds:.0f}s")
    chance = chance_of(summary.front)
    front = [record_row(t, (), flag=chance_flag(t, chance))
             for t in sorted(summary.front, key=lambda t: (-t.values[0], t.number))]
    if front:
        out += ["\nPareto front (deployed network: speed, params, MACs, memory)", *text_table(front, "trial", True)]
        if summary.verdict:  # the ranking is only as good as the proxy's reliability: said beside it
            out.append(summary.verdict)
    if summary.references:
        out += ["\nreferences", *text_table([record_row(t, ()) for t in summary.references], "reference")]
    folder = _shown(summary.study_dir)
    out += [f"\nstorage: {summary.storage}", f"logs:    {_shown(summary.study_dir / 'run.log')}"]
    nxt = [f"wfsearch show {folder}", f"wfsearch report {folder}"]
    best = next((r for r in front if not r.flag), None)
    if best is not None:
        nxt.append(f"wfsearch export {folder} --trial {best.number}")
    out.append("next:    " + "   |   ".join(nxt))
    return "\n".join(out)
