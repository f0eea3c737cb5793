"""The WeightFormer paper's design claims, checked on the proxy: writes `benchmarks/RESULTS-design.md`.

    python benchmarks/design_claims.py STUDY [STUDY ...] [--table SPEC TABLE_DIR] [--boot 1000]
        [--placement every:3:1] [--out benchmarks/RESULTS-design.md]

STUDY is a study folder (``studies/<name>``, holding ``optuna.db``); ``--table SPEC DIR`` (repeatable) also
analyses a tabulated space (``benchmarks/tabulate_space.py``) as a study holding every architecture of it,
each training seed a run of its own (the runs of one architecture are averaged, their spread is the seed
noise), throughput the paired one (ratio to the reference x the reference's median images/s). Each study
is analysed as ``wfsearch analyze`` does it (`wfsearch.report.design`), and each claim below is judged on
every study whose sample holds the knob with the values it needs:

1. placement, accuracy: "every third block (``--placement``) is the best placement for accuracy at matched
   throughput": its throughput-normalized mean accuracy against each other placement's, over the throughput
   both reach (``wfsearch analyze``'s comparison of two values);
2. placement, throughput: "... and for throughput": the matched-pair throughput ratio (other / claimed) of
   each other placement with dynamic blocks (``none`` is the static network, not a placement);
3. predictors: "bilateral is the best fc1 predictor" and "adaptive is the best dwconv predictor", at
   matched throughput, as in 1.;
4. compression x fc1 predictor: does the effect of the fc1 predictor's spatial compression (``fc1_pool``)
   or channel compression (``rank_ratio``), matched pairs against the released value, differ between fc1
   predictors? Found when two predictors' intervals for one compression value do not overlap (a
   conservative test).

A "best" claim is *supported* when every comparison's 90% interval lies above 0 (for speed: every other
placement is slower, its ratio's interval below 1), *contradicted* when some other value is better with an
interval that excludes 0 (1) at the Bonferroni level for the m comparisons, 1 - 0.1/m (so that the claim
is not called contradicted by one chance interval in many), and *inside the noise* otherwise. These are claims about the proxy (its
task, resolution, training budget and the throughput setting the study measured), which the page says.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wfsearch.cli.analyze import analysis_text  # noqa: E402
from wfsearch.report.design import design_analysis  # noqa: E402
from wfsearch.study import read_study  # noqa: E402

RELEASED = {"fc1_pool": "2", "rank_ratio": "4"}  # the baselines `design_analysis` takes for them


@dataclasses.dataclass
class Claim:
    claim: str
    study: str
    verdict: str  # supported | contradicted | inside the noise | not answerable here
    evidence: str


# --------------------------------------------------------------------------- a table as a study
def table_study(spec_path: str, table_dir: str, folder: Path) -> Path:
    """Every architecture x seed of a table as one trial of a study at ``folder`` (sampler ``grid``: the whole
    space, no early stopping)."""
    import optuna

    from wfsearch.search.simulate import save_study
    from wfsearch.search.table import load_table
    from wfsearch.space import load_spec
    from wfsearch.space.sampling import sample_arch
    from wfsearch.space.spec import encode_choice
    from wfsearch.study import Outcome, Status

    spec = load_spec(spec_path, ["study.sampler=grid", "study.scheduler.type=none"])
    table = load_table(table_dir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "maximize"])
    for h, per in sorted(table.runs.items()):
        arch = table.archs.get(h)
        ref = arch.metrics.get("reference_throughput") if arch else None
        for seed, curve in sorted(per.items()):
            if arch is None or table.status[h][seed] != "ok" or not curve or not ref:
                continue
            study.enqueue_trial({k: encode_choice(v) for k, v in arch.params.items()})
            trial = study.ask()
            sample = sample_arch(spec, trial)
            last = curve[-1]
            m = {**arch.metrics, "accuracy": last.accuracy, "loss": last.loss, "epochs": last.epoch,
                 "throughput_img_s": arch.metrics["throughput"]}
            m["throughput"] = m["throughput_ratio"] * ref  # the paired speed, as `wfsearch run` stores it
            result = {"arch": sample.arch.to_dict(), "arch_hash": sample.arch.hash, "metrics": m,
                      "costs": {k: m[k] for k in ("params", "macs", "throughput", "throughput_ratio") if k in m}}
            attrs = {"kind": "search", "arch": result["arch"], "arch_hash": result["arch_hash"],
                     **Outcome(Status.OK, f"ok (table seed {seed})", metrics=m, costs=result["costs"]).attrs()}
            for key, value in attrs.items():
                trial.set_user_attr(key, value)
            study.tell(trial, [m["accuracy"], m["throughput"]])
    save_study(study, spec, table, f"sqlite:///{folder / 'optuna.db'}", folder.name)
    return folder


def table_reliability(spec_path: str, table_dir: str) -> str:
    """How far the table's own runs rank designs (`wfsearch.proxy.quality` over its architectures x seeds),
    and whether the table is complete."""
    from wfsearch.search.table import load_table
    from wfsearch.space import load_spec

    table, ds = load_table(table_dir), load_spec(spec_path).proxy.dataset
    state = "complete" if table.meta.get("complete") else "**partial** (tabulate_space.py has not finished it)"
    q, n = table.quality(ds.val_size or 1000, ds.num_classes or 4)
    if q is None:
        return (f"The table is {state}, with {len(table.seeds)} training seed(s) so far: the proxy's reliability is "
                "not measured on it yet (the quick start's, over 24 random architectures x 3 seeds: "
                "`benchmarks/proxy_quality/README.md`).")
    return f"The table is {state}. The proxy on it ({n} architectures x {len(table.seeds)} seeds): {q.verdict()}."


def study_reliability(view) -> str:
    """The proxy verdict `proxy-check --record` stored in the study, or that none is."""
    from wfsearch.study.verdict import verdict_line

    return verdict_line(view.user_attrs, view.spec.get("proxy")) + "."


# --------------------------------------------------------------------------- the claims
def adjusted(m: int) -> float:
    """The level of each of ``m`` intervals that together hold all their truths at 90% (Bonferroni)."""
    return 1 - 0.1 / max(m, 1)


def best_claim(name: str, study: str, at, knob: str, claimed: str) -> Claim:
    """``at(level)``: the study's analysis with intervals at ``level``."""
    k = at(0.9).knob(knob)
    if k is None or claimed not in k.values:
        return Claim(name, study, "not answerable here", f"{knob} takes {list(k.values) if k else 'one value or none'} "
                                                         f"in this study")
    others = [v for v in k.values if v != claimed]
    wide = at(adjusted(len(others))).knob(knob)
    parts, worse, better, unknown = [], [], [], []
    for other in others:
        diff, adj = k.difference(claimed, other), wide.difference(claimed, other)
        d = diff.accuracy if diff else None
        if d is None or d.low is None:
            unknown.append(other)
            parts.append(f"vs {other}: " + ("too few architectures for an interval" if diff is None or d is not None
                                            else "no throughput range in common"))
            continue
        parts.append(f"vs {other}: {d.text()}" + (f" (over {100 * diff.shared:.0f}% of the study's throughput)"
                                                  if diff.shared < 0.5 else ""))
        if adj.accuracy.high is not None and adj.accuracy.high < 0:
            better.append(f"{other} ({adjusted(len(others)):.1%} interval {_negated(adj.accuracy).text()})")
        (worse if d.low > 0 else unknown).append(other)
    verdict = ("contradicted" if better else "supported" if not unknown else "inside the noise")
    lead = f"{claimed} - other, accuracy at matched throughput: "
    if better:
        lead = f"better than {claimed}: {', '.join(better)}; " + lead
    return Claim(name, study, verdict, lead + "; ".join(parts))


def _negated(e):
    return type(e)(-e.value, -e.high, -e.low)


def winner(name: str, study: str, analysis, knob: str) -> Claim:
    k = analysis.knob(knob)
    if k is None:
        return Claim(name, study, "not answerable here", f"{knob} is not compared in this study")
    return Claim(name, study, k.verdict.best if k.verdict.decided else "inside the noise", k.verdict.text)


def throughput_claim(name: str, study: str, at, knob: str, claimed: str, blocks: dict[str, int]) -> Claim:
    k = at(0.9).knob(knob)
    if k is None or claimed not in k.values:
        return Claim(name, study, "not answerable here", f"{knob} is not compared in this study")
    effects = [e for e in k.effects if e.value != "none"]
    missing = [v for v in k.values if v not in (claimed, "none") and v not in {e.value for e in effects}]
    wide = {e.value: e.throughput_ratio for e in at(adjusted(len(effects))).knob(knob).effects}
    faster = [e.value for e in effects if wide[e.value].low is not None and wide[e.value].low > 1]
    slower = [e.value for e in effects if e.throughput_ratio.high is not None and e.throughput_ratio.high < 1]
    verdict = ("contradicted" if faster else "supported" if len(slower) == len(effects) and effects and not missing
               else "inside the noise" if effects else "not answerable here")
    parts = [f"{e.value}: x{e.throughput_ratio.text('.3f')} ({e.pairs} pairs{_blocks(blocks, e.value)}"
             + (f"; {adjusted(len(effects)):.1%} interval x{wide[e.value].text('.3f')}" if e.value in faster else "")
             + ")" for e in effects]
    parts += [f"{v}: no matched pair" for v in missing]
    return Claim(name, study, verdict, f"throughput of other / {claimed}{_blocks(blocks, claimed, ' with ')}, "
                 f"matched pairs: " + "; ".join(parts))


def _blocks(blocks: dict[str, int], value: str, sep: str = "; ") -> str:
    n = blocks.get(value)
    return "" if n is None else f"{sep}{n} dynamic block{'s' if n != 1 else ''} deployed"


def deployed_blocks(view, knob: str = "dynamic_blocks") -> dict[str, int]:
    """How many dynamic blocks each placement puts in the deployed network (the one whose speed was measured)."""
    from wfsearch.arch import ArchConfig

    out = {}
    for t in view.finished():
        value, arch = t.params.get(knob), view.deployed_arch(t)
        if value is not None and arch and str(value) not in out:
            out[str(value)] = len(ArchConfig.from_dict(arch).dynamic_indices)
    return out


def interaction_claim(name: str, study: str, at, knob: str) -> tuple[Claim, list[str]]:
    analysis = at(0.9)
    table = next((i for i in analysis.interactions if i.knob == knob and i.by == "fc1_predictor"), None)
    if analysis.knob(knob) is None or analysis.knob("fc1_predictor") is None:
        return Claim(name, study, "not answerable here", f"{knob} and fc1_predictor are not both searched here"), []
    if table is None:
        return Claim(name, study, "not answerable here", f"no matched pairs of {knob} within an fc1 predictor"), []
    values = list(dict.fromkeys(e.value for e in table.effects))
    m = sum(n * (n - 1) // 2 for n in (sum(e.value == v for e in table.effects) for v in values))
    wide = next(i for i in at(adjusted(m)).interactions if i.knob == knob and i.by == "fc1_predictor")
    found, rows = [], []
    for value in values:
        cells = [e for e in wide.effects if e.value == value and e.accuracy.low is not None]
        for a in cells:
            for b in cells:
                if a.by_value < b.by_value and (a.accuracy.high < b.accuracy.low or b.accuracy.high < a.accuracy.low):
                    found.append(f"{knob} {value} (vs {a.baseline}): {a.by_value} {a.accuracy.text()} against "
                                 f"{b.by_value} {b.accuracy.text()}")
    rows = [f"| {e.by_value} | {e.value} | {e.pairs} | {e.accuracy.text()} | x{e.throughput_ratio.text('.2f')} |"
            for e in table.effects]
    verdict = "interaction found" if found else "inside the noise"
    evidence = (f"{adjusted(m):.1%} intervals (Bonferroni over {m} pairs of cells) that do not overlap: " +
                "; ".join(found) if found else
                f"every fc1 predictor's {adjusted(m):.1%} interval of each {knob} effect overlaps the others' "
                f"({len(table.effects)} cells)")
    return Claim(name, study, verdict, evidence), rows


# --------------------------------------------------------------------------- the page
def judge(label: str, folder: Path, args, where: str = "", reliability: str = "") -> tuple[list[Claim], list[str]]:
    view = read_study(folder)
    analyses = {}

    def at(level: float):
        if level not in analyses:
            analyses[level] = design_analysis(view, level=level, n_boot=args.boot,
                                              baselines={"dynamic_blocks": args.placement})
        return analyses[level]

    analysis = at(0.9)
    placement = "every third block" + (f" ({args.placement})" if args.placement != "every:3:1" else "")
    claims = [best_claim(f"{placement} is the best placement for accuracy at matched throughput", label, at,
                         "dynamic_blocks", args.placement),
              throughput_claim(f"{placement} is the best placement for throughput", label, at,
                               "dynamic_blocks", args.placement, deployed_blocks(view)),
              best_claim("bilateral is the best fc1 predictor at matched throughput", label, at,
                         "fc1_predictor", "bilateral"),
              winner("which fc1 predictor wins at matched throughput", label, analysis, "fc1_predictor"),
              best_claim("adaptive is the best dwconv predictor at matched throughput", label, at,
                         "dwconv_predictor", "adaptive"),
              winner("which dwconv predictor wins at matched throughput", label, analysis, "dwconv_predictor")]
    detail = [f"### {label}", "", f"{where or f'`{folder}`'}: {analysis.architectures} architectures, "
              f"{analysis.runs} runs. {reliability or study_reliability(view)}", ""]
    for knob, what in (("fc1_pool", "spatial"), ("rank_ratio", "channel")):
        claim, rows = interaction_claim(f"{what} compression ({knob}) interacts with the fc1 predictor", label,
                                        at, knob)
        claims.append(claim)
        if rows:
            detail += [f"{what.capitalize()} compression by fc1 predictor (matched pairs against {RELEASED[knob]}):",
                       "", "| fc1 predictor | " + knob + " | pairs | Δ accuracy | throughput ratio |",
                       "|---|---|---|---|---|", *rows, ""]
    detail += ["```", *analysis_text(label, analysis), "```", ""]
    return claims, detail


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("studies", nargs="*", metavar="STUDY", help="study folders (holding optuna.db)")
    p.add_argument("--table", nargs=2, action="append", default=[], metavar=("SPEC", "DIR"),
                   help="also analyse a tabulated space (every architecture and seed of it)")
    p.add_argument("--placement", default="every:3:1", help="the paper's placement (default every:3:1)")
    p.add_argument("--boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS-design.md"))
    args = p.parse_args(argv)
    if not args.studies and not args.table:
        p.error("give at least one STUDY folder or --table SPEC DIR")
    work = Path(tempfile.mkdtemp(prefix="design-claims-"))
    inputs = [(Path(s).name, Path(s), "", "") for s in args.studies]
    for spec, table in args.table:
        inputs.append((f"table {Path(table).name}", table_study(spec, table, work / f"{Path(table).name}-table"),
                       f"the table `{table}` (spec `{spec}`), every architecture and training seed",
                       table_reliability(spec, table)))
    claims, details = [], []
    for label, folder, where, reliability in inputs:
        c, d = judge(label, folder, args, where, reliability)
        claims += c
        details += d
    command = "python benchmarks/design_claims.py " + " ".join(
        [*args.studies, *(f"--table {s} {t}" for s, t in args.table)] +
        ([f"--placement {args.placement}"] if args.placement != "every:3:1" else []))
    lines = ["# The paper's design claims, checked on the proxy", "",
             f"Written by `{command}` on {datetime.date.today()} (`{Path(__file__).name}`'s docstring says how each "
             f"claim is judged; bootstrap {args.boot} resamples, 90% intervals).", "",
             "**These are claims about the proxy**: short trainings on the proxy task at the proxy's resolution, "
             "ranked by the throughput each study measured. They say which design is better *for that proxy*; "
             "an ImageNet-scale training can disagree. And a verdict is only as good as the proxy's ranking: "
             "each study's section says how reliable its runs are.", "",
             "| claim | study | verdict | evidence (90% intervals) |", "|---|---|---|---|",
             *(f"| {c.claim} | {c.study} | **{c.verdict}** | {c.evidence} |" for c in claims), "",
             "## Each study", "", *details]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(f"{c.verdict:>20}  {c.claim}  [{c.study}]" for c in claims))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
