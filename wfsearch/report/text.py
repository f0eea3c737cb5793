"""The front and the references as a plain-text table (``wfsearch show``; fine over SSH, no colours)."""
from __future__ import annotations

from wfsearch.study import StudySnapshot
from wfsearch.study.verdict import verdict_line

from .data import front_rows, intervals_text, hypervolume_data, knob_names, noise_data, reference_rows
from .figures import fmt
from .table import record_row, sort_trials, text_table


def scales_text(view: StudySnapshot) -> str:
    """Which network each kind of number belongs to."""
    tp = view.throughput
    spec = view.spec
    proxy = spec.get("proxy") or {}
    deployed = ", ".join(f"{k}={v}" for k, v in (tp.get("arch") or {}).items())
    return (f"scales: accuracy of the proxy network (base at {proxy.get('img_size', '?')} px); img/s, ratio, params, "
            f"MACs and memory of the deployed network ({deployed + ' on the design, ' if deployed else 'the design '}"
            f"at {tp.get('img_size', '?')} px), which `export` writes")


def show_text(view: StudySnapshot, order: dict | None = None) -> str:
    """The study's header, its front (``order``: `sort_trials`'s key, top and reverse) and its references."""
    counts = view.counts()
    hv = hypervolume_data(view)
    lines = [f"study {view.name!r}  ({view.storage_url})",
             f"objectives: " + ", ".join(f"{o} ({d[:3]})" for o, d in zip(view.objectives, view.directions)),
             f"trials: {view.counts_text()}; {len(view.front)} on the Pareto front",
             f"hypervolume: {hv.final:.3f} ({hv.describe()})", scales_text(view)]
    if counts["failed"]:
        lines.append("failures: " + ", ".join(f"{k} x{v}" for k, v in view.failure_reasons().items()))
    if counts["running"]:
        lines.append(f"note: a run is still writing ({counts['running']} running); this is a snapshot")
    lines.append("")
    front = front_rows(view)
    if order and (order.get("key") or order.get("top") or order.get("reverse")):
        by_number = {r.number: r for r in front}
        front = [by_number[t.number] for t in sort_trials(view, view.front, **order)]
    if front:
        lines += ["Pareto front (export a row with the command under it)", *text_table(front, "trial", True)]
        lines += [s for s in [intervals_text(view)] if s] + [f"noise: {line}" for line in noise_data(view).lines()]
    elif not view.trials:
        lines.append("no trials yet: start or continue the study with `wfsearch run SPEC`")
    else:
        lines.append("no trained trial yet: the front fills in as trials finish")
    lines.append(verdict_line(view.user_attrs, view.spec.get("proxy")))
    refs = reference_rows(view)
    if refs:
        lines += ["", "references", *text_table(refs, "name")]
    lines += ["", f"next: {view.study_command('report')}   |   {view.study_command('dashboard')}"]
    return "\n".join(lines)


def all_trials_text(view: StudySnapshot, trials: list | None = None) -> str:
    """Every search trial (or ``trials``) as one table, by number, with its status (``wfsearch show --all``)."""
    rows = [record_row(t, view.objectives, knobs=knob_names(view, [t]) or None)
            for t in (view.trials if trials is None else trials)]
    head = [f"study {view.name!r}  ({view.storage_url}): {view.counts_text()}", scales_text(view), ""]
    return "\n".join(head + (text_table(rows, "trial", with_status=True) if rows else ["no trials yet"]))
