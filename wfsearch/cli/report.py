"""``wfsearch report STUDY``: one self-contained HTML page (Pareto front, hypervolume, importances ...)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import add_study_args, check_ranges, examples
from .output import output_target, write_output


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="write an HTML report of a study (Pareto front, hypervolume, importances ...)",
        description="Write STUDY/report.html: one self-contained page (plotly.js embedded, opens offline) with the "
                    "Pareto front of the search, the hypervolume as the search went on, parameter importances, "
                    "parallel coordinates of the knobs, cost against resolution for the front and the references, "
                    "and the export command of every front trial. Safe while a run is still writing.",
        **examples(
            'wfsearch report studies/predictors        # -> studies/predictors/report.html',
            'wfsearch report studies/predictors --no-scaling -o /tmp/report.html'))
    add_study_args(p)
    p.add_argument("-o", "--output", metavar="FILE", help="where to write (default: STUDY/report.html)")
    p.add_argument("--no-scaling", action="store_true",
                   help="do not measure throughput against resolution (the analytic MACs are still plotted)")
    p.add_argument("--scaling-res", type=int, nargs="+", default=None, metavar="PX",
                   help="resolutions of the scaling plot (default: 224 448 896)")
    p.add_argument("--scaling-batch", type=int, default=1, metavar="N", help="batch of the scaling measurement (default: 1)")
    p.add_argument("--scaling-device", default=None, metavar="DEVICE",
                   help="device of the scaling measurement (default: the study's throughput device)")
    p.add_argument("--scaling-threads", type=int, default=1, metavar="N",
                   help="CPU threads of the scaling measurement (default: 1, timed by process CPU time, which a "
                        "busy machine does not disturb; 0 = torch's default)")
    p.add_argument("--scaling-max", type=int, default=8, metavar="N",
                   help="measure at most N front trials, spread along the front (default: 8)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wfsearch.report import DEFAULT_RESOLUTIONS, render_html, report_data, scaling_data

    from wfsearch.arch.config import MAX_SIZES
    from wfsearch.space.spec import MAX_COUNT, MAX_THREADS
    from wfsearch.study import read_study

    res = tuple(args.scaling_res or DEFAULT_RESOLUTIONS)
    top = MAX_SIZES["img_size"]
    check_ranges(("--scaling-res", min(res), 1, top), ("--scaling-res", max(res), 1, top),
                 ("--scaling-batch", args.scaling_batch, 1, MAX_COUNT), ("--scaling-max", args.scaling_max, 1, MAX_COUNT),
                 ("--scaling-threads", args.scaling_threads, 0, MAX_THREADS))
    view = read_study(args.study, storage=args.storage, study_name=args.study_name)
    out, flag = (Path(args.output), "-o/--output") if args.output else (view.folder / "report.html", "report")
    output_target(out, flag)  # a FIFO, a folder or a read-only place is refused before the work
    scaling = scaling_data(view, res, measure=not args.no_scaling, batch_size=args.scaling_batch,
                           device=args.scaling_device, max_front=args.scaling_max, threads=args.scaling_threads or None,
                           on_progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    data = report_data(view, scaling)
    path = write_output(out, render_html(data), flag)
    print(f"study {view.name!r}: {view.counts_text()}; {len(view.front)} on the Pareto front")
    for note in data.notes:
        print(f"note: {note}")
    print(f"report: {path}")
    return 0
