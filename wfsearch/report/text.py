"""The front and the references as a plain-text table (``wfsearch show``; fine over SSH, no colours)."""
from __future__ import annotations

from .data import Row, distinct_trained, front_rows, hypervolume_data, noise_data, reference_rows
from .figures import SHORT_NAMES, fmt
from .study import StudyView


def table(rows: list[Row], first: str, with_command: bool = False) -> list[str]:
    """Aligned columns: the label, every value known for the rows, the architecture (and export command)."""
    keys = list(dict.fromkeys(k for r in rows for k in r.values))
    header = [first, *(SHORT_NAMES.get(k, k) for k in keys), "architecture"]
    cells = [[r.label, *(fmt(r.values.get(k), missing="-")
                         + (f" [{fmt(r.intervals[k][0])}, {fmt(r.intervals[k][1])}]" if k in r.intervals else "")
                         for k in keys), r.arch] for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *cells)]
    numeric = [False, *([True] * len(keys)), False]

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    out = [line(header), "-" * len(line(header))]
    for r, c in zip(rows, cells):
        out.append(line(c))
        if with_command and r.command:
            out.append(f"    {r.command}")
    return out


def show_text(view: StudyView) -> str:
    counts = view.counts()
    hv = hypervolume_data(view)
    repeats = len(view.finished()) - len(distinct_trained(view))
    lines = [f"study {view.name!r}  ({view.storage_url})",
             f"objectives: " + ", ".join(f"{o} ({d[:3]})" for o, d in zip(view.objectives, view.directions)),
             f"trials: {view.counts_text()}; {len(view.front)} on the Pareto front"
             + (f" ({repeats} trained trial{'s' if repeats != 1 else ''} re-sampled an architecture already evaluated: "
                "not counted)" if repeats else ""),
             f"hypervolume: {hv.final:.3f} ({hv.describe()})"]
    if counts["failed"]:
        lines.append("failures: " + ", ".join(f"{k} x{v}" for k, v in view.failure_reasons().items()))
    if counts["running"]:
        lines.append(f"note: a run is still writing ({counts['running']} running); this is a snapshot")
    lines.append("")
    front = front_rows(view)
    if front:
        lines += ["Pareto front (export a row with the command under it)", *table(front, "trial", True)]
        lines += [f"noise: {line}" for line in noise_data(view).lines()]
    elif not view.trials:
        lines.append("no trials yet: start or continue the study with `wfsearch run SPEC`")
    else:
        lines.append("no trained trial yet: the front fills in as trials finish")
    refs = reference_rows(view)
    if refs:
        lines += ["", "references", *table(refs, "name")]
    lines += ["", f"next: {view.study_command('report')}   |   {view.study_command('dashboard')}"]
    return "\n".join(lines)
