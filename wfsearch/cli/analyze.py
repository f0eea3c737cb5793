"""``wfsearch analyze STUDY``: which value of each knob is better at matched throughput, by how much, how sure."""
from __future__ import annotations

import argparse
import dataclasses
import json

from wfsearch.errors import UserError

from . import add_study_args, check_min, examples


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze", help="compare the values of each knob at matched throughput, with intervals",
        description="Per knob, from a study's trained architectures (runs of one architecture averaged): the "
                    "throughput-normalized EDF of the proxy error per value with a bootstrap band; matched-pair "
                    "effects (architectures differing in that knob only: accuracy difference and throughput ratio, with "
                    "intervals); a verdict (the better value at matched throughput and by how much, or 'inside the "
                    "noise' with how many more architectures would tell); and two-knob interaction tables. Unbiased "
                    "only where the study sampled with study.sampler: random and study.scheduler: {type: none} (TPE, "
                    "NSGA-II or GP get a caveat). `wfsearch report` draws the same in its Design space section.",
        **examples(
            "wfsearch run spaces/explore.yaml && wfsearch analyze studies/explore   # an unbiased sample first",
            "wfsearch analyze studies/predictors --json > design.json",
            "wfsearch analyze studies/explore --interaction fc1_pool:fc1_predictor --level 0.95"))
    add_study_args(p)
    p.add_argument("--json", action="store_true", help="everything as JSON (EDF grids and bands included)")
    p.add_argument("--level", type=float, default=0.9, metavar="P", help="level of bands and intervals (default 0.9)")
    p.add_argument("--boot", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    p.add_argument("--interaction", action="append", default=None, metavar="KNOB:BY",
                   help="print only these interaction tables (the effects of KNOB by the value of BY); repeatable")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wfsearch.report.design import design_analysis
    from wfsearch.study import read_study
    from wfsearch.study.verdict import verdict_line

    if not 0 < args.level < 1:
        raise UserError(f"--level: {args.level}: must lie between 0 and 1, e.g. 0.9")
    check_min(args, 0, "boot")
    wanted = [tuple(s.split(":", 1)) for s in args.interaction or []]
    bad = next((s for s, w in zip(args.interaction or [], wanted) if len(w) != 2 or not all(w)), None)
    if bad is not None:
        raise UserError(f"--interaction: {bad!r}: give KNOB:BY, e.g. fc1_pool:fc1_predictor")
    view = read_study(args.study, storage=args.storage, study_name=args.study_name)
    d = design_analysis(view, level=args.level, n_boot=args.boot, seed=args.seed)
    knobs = {k.knob for k in d.knobs}
    for knob, by in wanted:
        if {knob, by} - knobs:
            raise UserError(f"--interaction: {knob}:{by}: {sorted({knob, by} - knobs)[0]!r} is not a compared knob "
                            f"of study {view.name!r}; compared: {', '.join(sorted(knobs)) or 'none'}")
    if wanted:
        d = dataclasses.replace(d, interactions=tuple(i for i in d.interactions if (i.knob, i.by) in wanted))
    verdict = verdict_line(view.user_attrs, view.spec.get("proxy"))  # how far its runs rank designs
    if args.json:
        print(json.dumps({"study": view.name, "proxy_verdict": verdict, **dataclasses.asdict(d)}, default=str))
        return 0
    text = analysis_text(view.name, d)
    print("\n".join([*text[:2], verdict, *text[2:]]))
    return 0


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def analysis_text(name: str, d) -> list[str]:
    pct = f"{100 * d.level:.0f}%"
    lines = [f"study {name!r}: {d.architectures} trained architectures ({d.runs} runs; the runs of one architecture "
             f"averaged); {pct} bootstrap intervals over architectures",
             f"seed noise: ±{d.seed_noise:.4f} (one run's standard deviation, from {d.seed_noise_source})"
             if d.seed_noise is not None else
             "seed noise: unknown (record it with `wfsearch proxy-check SPEC --record`, or run some architectures twice)"]
    lines += [f"caveat: {c}" for c in d.caveats]
    if not d.knobs:
        lines.append("nothing to compare: " + ("; ".join(d.skipped) or "no trained architecture with accuracy and "
                                                "throughput yet"))
        return lines
    for k in d.knobs:
        lines += ["", f"{k.knob}: {k.verdict.text}"]
        rows = [["value", "archs", "throughput covered", "accuracy at matched throughput", "median error"]]
        rows += [[e.value, str(e.n), f"{100 * e.coverage:.0f}%", e.accuracy.text(".3f"), f"{e.median_error:.3f}"]
                 for e in k.edfs]
        lines += _table(rows)
        if k.effects:
            lines.append(f"  matched pairs against {k.baseline} (differing in {k.knob} only):")
            lines += _table([["value", "pairs", "Δ accuracy", "throughput ratio"]] +
                            [[e.value, str(e.pairs), e.accuracy.text(), e.throughput_ratio.text(".2f")]
                             for e in k.effects], "    ")
    for it in d.interactions:
        lines += ["", f"interaction: matched pairs of {it.knob} (against {it.effects[0].baseline}) by {it.by}"]
        lines += _table([[it.by, it.knob, "pairs", "Δ accuracy", "throughput ratio"]] +
                        [[e.by_value, e.value, str(e.pairs), e.accuracy.text(), e.throughput_ratio.text(".2f")]
                         for e in it.effects])
    if d.skipped:
        lines += [""] + [f"not compared: {s}" for s in d.skipped]
    return lines
