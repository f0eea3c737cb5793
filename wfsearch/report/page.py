"""The report as one self-contained HTML file: plotly.js embedded once, every figure inline, no network.

Once drawn, the page writes a self-check into ``<pre id="selftest">``: JavaScript errors, Pareto points drawn.
"""
from __future__ import annotations

import datetime
import html
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import plotly.io as pio
import plotly.offline

from . import figures
from wfsearch.study.verdict import verdict_line

from .data import (CurvesData, HypervolumeData, Importances, ParallelData, ParetoData, Row, TrialRow, captions,
                   curves_data, front_rows, hypervolume_data, importance_data, intervals_text, noise_data, parallel_data, pareto_data,
                   reference_rows, trial_rows)
from .design import DesignAnalysis, design_analysis
from .erf import erf_section
from .scaling import ScalingData
from .table import MISSING, column_formats, columns_of
from wfsearch.study import StudySnapshot

log = logging.getLogger(__name__)

PLOT_CONFIG = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"format": "svg"}}


@dataclass(frozen=True)
class ReportData:
    """Everything one report shows, computed from one reading of the study."""
    view: StudySnapshot
    pareto: ParetoData
    hypervolume: HypervolumeData
    importances: list[Importances]
    parallel: ParallelData | None
    front: list[Row]
    references: list[Row]
    scaling: ScalingData | None = None
    notes: list[str] = field(default_factory=list)
    curves: CurvesData | None = None
    trials: list[TrialRow] = field(default_factory=list)
    captions: dict[str, str] = field(default_factory=dict)
    design: DesignAnalysis | None = None


def report_data(view: StudySnapshot, scaling: ScalingData | None = None) -> ReportData:
    counts = view.counts()
    notes = []
    if not view.trials:
        notes.append("The study has no trials yet: start or continue it with `wfsearch run SPEC`.")
    elif not view.front:
        notes.append(f"No trained trial yet ({view.counts_text()}); the plots fill in as trials finish.")
    if counts["running"]:
        notes.append(f"A run is still writing ({counts['running']} trial(s) running): this is a snapshot; "
                     f"run `{view.study_command('report')}` again to update it.")
    if counts["failed"]:
        reasons = ", ".join(f"{k} ×{v}" for k, v in view.failure_reasons().items())
        notes.append(f"{counts['failed']} trial(s) failed ({reasons}); they are hidden in the Pareto plot "
                     f"(click 'failed' in its legend where they have scores).")
    return ReportData(view=view, pareto=pareto_data(view), hypervolume=hypervolume_data(view),
                      importances=importance_data(view), parallel=parallel_data(view), front=front_rows(view),
                      references=reference_rows(view), scaling=scaling, notes=notes, curves=curves_data(view),
                      trials=trial_rows(view), captions=captions(view),
                      design=design_analysis(view) if view.front else None)


def _esc(s: object) -> str:
    return html.escape(str(s), quote=True)


def _figure(div_id: str, fig, extra_attrs: str = "") -> str:
    spec = pio.to_json(fig, validate=False, pretty=False).replace("</", "<\\/")  # never close the script early
    return (f'<div id="{div_id}" class="plot"{extra_attrs}></div>\n'
            f'<script>wfPlot("{div_id}", {spec});</script>')


def _command(cmd: str) -> str:
    """A shell command that wraps only between arguments, a flag kept with its value."""
    import shlex
    try:
        words = shlex.split(cmd)
    except ValueError:
        return f"<code>{_esc(cmd)}</code>"
    groups: list[list[str]] = []
    for w in words:
        if groups and groups[-1][-1].startswith("--") and not w.startswith("--") and len(groups[-1]) == 1:
            groups[-1].append(w)
        else:
            groups.append([w])
    spans = " ".join(f'<span>{_esc(shlex.join(g))}</span>' for g in groups)
    return f'<code class="cmd" title="{_esc(cmd)}">{spans}</code>'


def _table(rows: list[Row], first: str, commands: bool) -> str:
    """The front or the references: the columns, headers and numbers of the text table (`report.table`)."""
    if not rows:
        return ""
    keys = columns_of(rows)
    formats = column_formats(rows, keys)
    head = f"<th>{_esc(first)}</th>" + "".join(f"<th>{_esc(formats[k][0])}</th>" for k in keys) + \
        "<th>architecture</th>" + ("<th>export</th>" if commands else "")
    body = []
    for r in rows:
        cells = [f"<td>{_esc(r.label)}</td>"] + [
            f'<td class="num">{_esc(formats[k][1](r.values.get(k)))}'
            + (f'<br><small>[{_esc(formats[k][1](r.intervals[k][0]))}, {_esc(formats[k][1](r.intervals[k][1]))}]</small>'
               if k in r.intervals else "") + "</td>" for k in keys]
        cells.append(f"<td>{_esc(r.arch)}</td>")
        if commands:
            cells.append(f'<td class="flag">{_esc(r.flag)}</td>' if r.flag else f"<td>{_command(r.command)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _trials_table(rows: list[TrialRow]) -> str:
    """Every trial; a click on a header sorts by that column (numbers as numbers)."""
    keys = columns_of(rows)
    formats = column_formats(rows, keys)
    head = ("<th>trial</th><th>status</th><th>reason</th><th>epochs<br><small>proxy</small></th>"
            + "".join(f"<th>{_esc(formats[k][0])}</th>" for k in keys) + "<th>architecture</th>")
    body = []
    for r in rows:
        nums = "".join(f'<td class="num" data-v="{r.values[k] if k in r.values else ""}">'
                       f'{_esc(formats[k][1](r.values.get(k)))}</td>' for k in keys)
        body.append(f'<tr class="st-{_esc(r.status)}"><td class="num" data-v="{r.number}">{r.number}</td>'
                    f"<td>{_esc(r.status)}</td><td>{_esc(r.reason)}</td>"
                    f'<td class="num" data-v="{"" if r.epochs is None else r.epochs}">'
                    f'{MISSING if r.epochs is None else r.epochs}</td>{nums}<td>{_esc(r.arch)}</td></tr>')
    return (f'<table class="sortable" id="trials-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _header(data: ReportData) -> str:
    v = data.view
    attrs = v.user_attrs
    hw = attrs.get("hardware") or {}
    device = ", ".join(str(x) for x in (hw.get("gpus") or [hw.get("device") or hw.get("cpu")]) if x)
    hv = data.hypervolume
    objectives = ", ".join(f"{o} ({d[:3]})" for o, d in zip(v.objectives, v.directions))
    items = [
        ("storage", f"<code>{_esc(v.storage_url)}</code>"),
        ("spec", _esc(f"{attrs.get('spec_path', '?')} (hash {attrs.get('spec_hash', '?')})")),
        ("objectives", _esc(objectives)),
        ("trials", _esc(v.counts_text() + f"; {len(v.front)} on the Pareto front")),
        ("hypervolume", _esc(f"{hv.final:.3f} ({hv.describe()})")),
        ("hardware", _esc(_hardware(hw, device))),
        ("written", _esc(f"{datetime.datetime.now():%Y-%m-%d %H:%M} by wfsearch {attrs.get('wfsearch_version', '')}")),
    ]
    dl = "".join(f"<dt>{k}</dt><dd>{val}</dd>" for k, val in items)
    notes = "".join(f'<p class="note">{_esc(n)}</p>' for n in data.notes)
    return f"<h1>Study {_esc(v.name)}</h1><dl>{dl}</dl>{notes}"


def _hardware(hw: dict, device: str) -> str:
    """Where the study ran (a simulated study replayed a table measured elsewhere)."""
    if hw.get("simulated"):
        where = ", ".join(str(x) for x in (hw.get("platform"), f"{hw['cpus']} CPUs" if hw.get("cpus") else "") if x)
        return f"none: replayed from the table {hw.get('table', '?')}" + (f" (measured on {where})" if where else "")
    parts = [device, f"{hw['cpu_count']} CPUs" if hw.get("cpu_count") else "",
             f"torch {hw['torch']}" if hw.get("torch") else ""]
    return "; ".join(p for p in parts if p) or "not recorded"


def _message(text: str) -> str:
    return f'<p class="empty">{_esc(text)}</p>'


def _sections(data: ReportData) -> list[tuple[str, str, str]]:
    """(anchor, title, body) of each section."""
    v, p = data.view, data.pareto
    hidden = ", ".join(f"{n} {g}" for g, n in p.unplotted.items())
    out = []
    if any(pt.group in ("front", "dominated") for pt in p.points):
        intro = (f"<p>{_esc(p.y)} against {_esc(p.x)} of the trained trials: colour = fc1 predictor, marker = dwconv "
                 f"predictor (the same in every plot below), large and outlined = on the Pareto front, small and "
                 f"lighter = dominated. Pruned, failed and infeasible trials "
                 f"are hidden (click them in the legend); references are stars. Hover a point for its architecture "
                 f"and costs.{' Not plotted (no scores): ' + _esc(hidden) + '.' if hidden else ''}</p>")
        noise = noise_data(v).lines()
        intro += ("<p>Error bars: " + _esc(intervals_text(v).removeprefix("intervals: ") or "none stored") + ". " + " ".join(_esc(n[0].upper() + n[1:]) + "." for n in noise) + "</p>")
        intro += f'<p class="verdict">{_esc(verdict_line(v.user_attrs, (v.spec or {}).get("proxy")))}</p>'
        body = intro + _captions(data) + _figure("pareto", figures.pareto_figure(p), f' data-front-points="{len(v.front)}"')
        if v.references:
            body += (f'<p class="small">The references live in a study of their own, '
                     f'<code>{_esc(v.name)}:references</code> in the same storage, so optuna-dashboard '
                     f'(<code>{_esc(v.study_command("dashboard"))}</code>) shows them there, not in the search '
                     f"study's Pareto plot; this page draws both.</p>")
    else:
        body = _message("No trained trials to plot yet.") + \
            f'<div id="pareto" class="plot-empty" data-front-points="{len(v.front)}"></div>'
    out.append(("pareto", "Pareto front", body))
    refs = _table(data.references, "reference", False)
    if data.front:
        out.append(("front-table", "The front, and how to export it",
                    "<p>Each row's command writes its full training recipe to "
                    f"<code>{_esc(v.folder)}/recipes/</code>.</p>" + _table(data.front, "trial", True)
                    + ("<h3>References</h3>" + refs if refs else "")))
    elif refs:
        out.append(("front-table", "References", refs))
    hv = data.hypervolume
    if any(s.hypervolume > 0 for s in hv.steps):
        out.append(("hypervolume", "Hypervolume of the front as the search went on",
                    f"<p>The hypervolume is {_esc(hv.describe())}. Pruned and failed trials count as spent budget.</p>"
                    + _figure("hypervolume", figures.hypervolume_figure(hv))))
    else:
        out.append(("hypervolume", "Hypervolume", _message("Needs at least one trained trial.")))
    if data.curves is not None:
        rungs = (f" Dashed vertical lines mark the rungs (epochs {', '.join(map(str, data.curves.rungs))}) where the "
                 f"scheduler stops the dominated share of the trials that reached them." if data.curves.rungs else "")
        out.append(("curves", "Learning curves of the proxy training",
                    f"<p>Validation {_esc(data.curves.metric)} per proxy epoch of every trained and pruned trial "
                    f"(pruned: dotted, x markers; the front: thick).{_esc(rungs)}</p>"
                    + _figure("curves", figures.curves_figure(data.curves))))
    notes = "".join(f"<li>{_esc(i.objective)}: {_esc(i.note)}</li>" for i in data.importances if i.note)
    fig = figures.importance_figure(data.importances)
    body = (_figure("importances", fig) if fig is not None else "") + (f"<ul>{notes}</ul>" if notes else "")
    out.append(("importances", "Which knobs matter (parameter importances)", body or _message("Nothing to show.")))
    if data.parallel is not None:
        out.append(("parallel", "Knobs of the trained trials (parallel coordinates)",
                    "<p>One line per trained trial; red = on the Pareto front. Drag along an axis to filter.</p>"
                    + _figure("parallel", figures.parallel_figure(data.parallel))))
    sc = data.scaling
    if sc is not None and sc.series:
        what = ("measured throughput and analytic MACs" if sc.measured else
                "analytic MACs (throughput not measured: --no-scaling)")
        body = (f"<p>Cost per image against resolution, log-log, for the front and the references: {what}. "
                f"WeightFormer-style blocks cost O(N) in the token count N (slope 1 against N, 2 against resolution); "
                f"attention costs O(N²). The legend gives each model's exponent k in MACs ∝ N^k and time per image "
                f"∝ N^k between the two largest resolutions.{' ' + _esc(sc.note) + '.' if sc.note else ''}"
                + (f" Throughput measured for this page with batch {sc.batch_size} on {_esc(sc.device)}, the models "
                   f"interleaved at each resolution (the search's own throughput objective was measured as the "
                   f"caption of the Pareto plot says)." if sc.measured else "") + "</p>")
        out.append(("scaling", "Throughput against resolution",
                    body + _figure("scaling", figures.scaling_figure(sc, figures.trial_styles(p)))))
    out.append(("design", "Design space", _design_section(data)))
    intro, fig = erf_section(v.folder, v.study_command("erf"))
    out.append(("erf", "Effective receptive fields", intro + (_figure("erf", fig) if fig is not None else "")))
    if data.trials:
        out.append(("trials", f"Every trial ({len(data.trials)})",
                    "<p>Click a column header to sort by it. The status is the trial's place in the study; the "
                    "reason is what its run recorded.</p>" + _trials_table(data.trials)))
    return out


def _effects_table(effects, first: str, key) -> str:
    head = f"<th>{_esc(first)}</th><th>pairs</th><th>Δ accuracy</th><th>throughput ratio</th>"
    rows = "".join(f"<tr><td>{_esc(key(e))}</td><td class=\"num\">{e.pairs}</td><td class=\"num\">"
                   f"{_esc(e.accuracy.text())}</td><td class=\"num\">{_esc(e.throughput_ratio.text('.2f'))}</td></tr>"
                   for e in effects)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _design_section(data: ReportData) -> str:
    """Per knob: the verdict, the throughput-normalized EDFs with bands, the matched pairs; then interactions."""
    d, v = data.design, data.view
    if d is None or not d.knobs:
        why = "; ".join(d.skipped) if d and d.skipped else "needs trained architectures with two or more values of a knob"
        return _message(f"Nothing to compare: {why}.")
    pct = f"{100 * d.level:.0f}%"
    noise = (f"Seed noise (one run's standard deviation, from {d.seed_noise_source}): ±{d.seed_noise:.3f}, drawn as "
             f"a bar at each EDF's median." if d.seed_noise is not None else
             f"No seed-noise estimate: record one with wfsearch proxy-check SPEC --record.")
    body = (f"<p>{d.architectures} trained architectures ({d.runs} runs, the runs of one architecture averaged). "
            f"For each knob and value: the EDF of the proxy error, throughput-normalized (each value's architectures "
            f"reweighted so that their throughput distribution is the study's), with a {pct} bootstrap band over "
            f"architectures; the verdict compares the two best values at matched throughput; matched pairs are "
            f"architectures that differ in that knob only (median Δ accuracy and median throughput ratio against "
            f"the baseline, {pct} intervals). The same in text: <code>{_esc(v.study_command('analyze'))}</code>. "
            f"{_esc(noise)}</p>" + "".join(f'<p class="note">{_esc(c[0].upper() + c[1:])}.</p>' for c in d.caveats))
    for k in d.knobs:
        body += (f"<h3>{_esc(k.knob)}</h3><p><b>{_esc(k.verdict.text)}</b></p>"
                 + _figure(f"design-{k.knob}", figures.design_figure(k, d.seed_noise, d.level)))
        if k.effects:
            body += f"<p class=\"small\">Matched pairs against {_esc(k.baseline)}:</p>" + \
                _effects_table(k.effects, k.knob, lambda e: e.value)
    if d.interactions:
        body += "<h3>Interactions</h3><p>Matched-pair effects of one knob against its baseline, by the value of another.</p>"
        for it in d.interactions:
            body += (f"<details><summary>{_esc(it.knob)} by {_esc(it.by)}</summary>"
                     + _effects_table(it.effects, f"{it.by}: {it.knob}", lambda e: f"{e.by_value}: {e.value}")
                     + "</details>")
    if d.skipped:
        body += "<ul>" + "".join(f"<li>not compared: {_esc(s)}</li>" for s in d.skipped) + "</ul>"
    return body


def _captions(data: ReportData) -> str:
    return "".join(f'<p class="caption">{_esc(data.captions[k])}.</p>' for k in ("accuracy", "throughput")
                   if data.captions.get(k))


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1280px;padding:0 24px 48px;color:#222}
h1{margin-top:24px} h2{margin-top:40px;border-bottom:1px solid #ddd;padding-bottom:4px}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px} dt{font-weight:600} dd{margin:0}
nav a{margin-right:14px} .note{background:#fff6d6;padding:6px 10px;border-left:4px solid #e0b000}
.empty{color:#777;font-style:italic} table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border-bottom:1px solid #e4e4e4;padding:4px 8px;text-align:left;vertical-align:top} td.num{text-align:right}
code{font-size:12px;background:#f4f4f4;padding:1px 4px} #selftest{display:none}
code.cmd span{white-space:nowrap} th small{font-weight:400;color:#666} .caption,.small{font-size:13px;color:#444}
table.sortable th{cursor:pointer;user-select:none} table.sortable th:hover{background:#f0f0f0}
th.asc::after{content:" ▲"} th.desc::after{content:" ▼"} tr.st-front td:first-child{font-weight:700}
tr.st-failed,tr.st-infeasible{color:#888}
"""

# Errors are collected from the first script on, before plotly.js loads.
HEAD_SCRIPT = """
window.wfErrors = []; window.wfPlots = [];
window.addEventListener('error', function (e) { wfErrors.push(String(e.message || e)); });
window.addEventListener('unhandledrejection', function (e) { wfErrors.push('unhandled rejection: ' + String(e.reason)); });
function wfPlot(id, fig) {
  try { wfPlots.push(Plotly.newPlot(id, fig.data, fig.layout, Object.assign({}, WF_CONFIG, fig.config || {}))); }
  catch (e) { wfErrors.push(id + ': ' + String(e)); }
}
"""

SELFTEST_SCRIPT = """
function wfSelftest() {
  var gd = document.getElementById('pareto'), drawn = {}, data = 0;
  if (gd && gd.data) {
    (gd._fullData || gd.data).forEach(function (t) {  // traces as drawn: numbers come as typed arrays
      if (t.meta && t.meta.role === 'front')
        data += Array.prototype.filter.call(t.x, function (v) { return v !== null && v === v; }).length;
    });
    gd.querySelectorAll('.scatterlayer .trace').forEach(function (g) {  // the markers actually drawn, by role
      var cd = g.__data__, tr = cd && cd[0] && cd[0].trace, role = tr && tr.meta && tr.meta.role;
      var n = g.querySelectorAll('path.point').length;
      if (role && n) drawn[role] = (drawn[role] || 0) + n;
    });
  }
  var plots = document.querySelectorAll('.plot').length, done = document.querySelectorAll('.js-plotly-plot').length;
  var out = {errors: wfErrors, plots: plots, plots_drawn: done, front_points: data, front_points_drawn: drawn.front || 0, drawn: drawn,
             front_points_expected: gd ? Number(gd.getAttribute('data-front-points')) : null};
  out.overlaps = wfOverlaps(); out.empty_sections = wfEmptySections(); out.width = window.innerWidth;
  out.section_plots = {};  // plots drawn per section
  document.querySelectorAll('section').forEach(function (s) { out.section_plots[s.id] = s.querySelectorAll('.js-plotly-plot').length; });
  out.ok = out.errors.length === 0 && done === plots && out.front_points_drawn === out.front_points_expected &&
           out.overlaps.length === 0 && out.empty_sections.length === 0;
  var pre = document.getElementById('selftest');
  pre.textContent = JSON.stringify(out); pre.setAttribute('data-ok', out.ok ? 'true' : 'false');
}
function wfOverlaps() {  // pairs of plot titles / axis titles / tick labels whose boxes intersect
  var out = [];
  document.querySelectorAll('.js-plotly-plot').forEach(function (gd) {
    var sel = '.gtitle, .g-xtitle text, .g-ytitle text, .annotation-text, .xtick text, .ytick text, .legendtext, ' +
              '[class*="g-x"][class*="title"] text, [class*="g-y"][class*="title"] text';
    var seen = [], boxes = [];
    gd.querySelectorAll(sel).forEach(function (el) {
      if (seen.indexOf(el) >= 0 || !el.textContent.trim()) return;
      seen.push(el);
      var r = el.getBoundingClientRect();
      var kind = el.classList.contains('legendtext') ? 'legend' : /tick/.test(el.parentNode.getAttribute('class') || '') ? 'tick' : 'title';
      if (r.width > 0 && r.height > 0) boxes.push({t: el.textContent, r: r, kind: kind});
    });
    for (var i = 0; i < boxes.length; i++) for (var j = i + 1; j < boxes.length; j++) {
      var a = boxes[i], b = boxes[j];
      if (a.kind === b.kind && a.kind !== 'title') continue;  // ticks and legend entries are plotly's to space
      var w = Math.min(a.r.right, b.r.right) - Math.max(a.r.left, b.r.left);
      var h = Math.min(a.r.bottom, b.r.bottom) - Math.max(a.r.top, b.r.top);
      if (w > 1 && h > 1) out.push(gd.id + ': "' + a.t + '" / "' + b.t + '"');
    }
  });
  return out;
}
function wfEmptySections() {  // a section with neither a drawn plot, a table, a list nor a stated reason
  var out = [];
  document.querySelectorAll('section').forEach(function (s) {
    var drawn = Array.prototype.some.call(s.querySelectorAll('.js-plotly-plot'), function (gd) {
      return gd.data && gd.data.length > 0; });
    if (!drawn && !s.querySelector('table tbody tr, ul li, .empty')) out.push(s.id);
  });
  return out;
}
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0], asc = !th.classList.contains('asc');
    table.querySelectorAll('th').forEach(function (h) { h.classList.remove('asc', 'desc'); });
    th.classList.add(asc ? 'asc' : 'desc');
    var key = function (tr) { var td = tr.cells[col], v = td.getAttribute('data-v');
      return v === null ? td.textContent : (v === '' ? NaN : Number(v)); };
    Array.prototype.slice.call(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b), d;
      if (typeof x === 'number') { d = isNaN(x) ? (isNaN(y) ? 0 : 1) : isNaN(y) ? -1 : (asc ? x - y : y - x); }
      else { d = asc ? String(x).localeCompare(y) : String(y).localeCompare(x); }
      return d;
    }).forEach(function (tr) { body.appendChild(tr); });
  });
});
Promise.all(wfPlots).then(wfSelftest, function (e) { wfErrors.push('plot failed: ' + String(e)); wfSelftest(); });
"""


def render_html(data: ReportData) -> str:
    sections = _sections(data)
    nav = "".join(f'<a href="#sec-{a}">{_esc(t)}</a>' for a, t, _ in sections)
    body = "".join(f'<section id="sec-{a}"><h2>{_esc(t)}</h2>{b}</section>' for a, t, b in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>wfsearch report: {_esc(data.view.name)}</title><style>{CSS}</style>\n"
        f"<script>var WF_CONFIG = {json.dumps(PLOT_CONFIG)};{HEAD_SCRIPT}</script>\n"
        f"<script>{plotly.offline.get_plotlyjs()}</script>\n"  # plotly.js, once
        f"</head><body>{_header(data)}<nav>{nav}</nav>{body}"
        f'<pre id="selftest" data-ok="pending">pending</pre><script>{SELFTEST_SCRIPT}</script></body></html>\n')


def write_report(data: ReportData, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_html(data), encoding="utf-8")
    tmp.replace(path)  # a browser reloading the report never sees half a file
    log.info("report written to %s", path)
    return path
