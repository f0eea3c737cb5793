"""Plotly figures drawn from the report's data (`data.py`, `scaling.py`); no study access here.

Every trace carries ``meta={"role": ...}`` (front, dominated, ...) so the page's self-check can count the front.
"""
from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from wfsearch.arch import PREDICTORS
from wfsearch.study.outcome import Status, loss_sign

from .data import Axis, CurvesData, HypervolumeData, Importances, ParallelData, ParetoData, Point
from .design import KnobAnalysis
from .scaling import ScalingData

FC1_COLORS = dict(zip(PREDICTORS["fc1"], qualitative.D3))
DWCONV_SYMBOLS = {"none": "circle", "gap": "square", "adaptive": "diamond", "ampdir": "triangle-up",
                  "conv": "cross", "": "circle"}
GROUP_TITLES = {"front": "Pareto front", "dominated": "dominated", "infeasible": "infeasible (not trained)",
                "pruned": "pruned (score so far)", "failed": "failed"}
UNITS = {"throughput": "images/s", "macs": "MACs", "params": "parameters", "memory": "bytes",
         "latency_highres": "ms"}
LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=50, b=50), font=dict(size=12))


def fmt(v: float | None, missing: str = "–") -> str:
    """A number for people: 4 significant digits, k/M/G above 10^4."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return missing
    for above, scale, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if abs(v) >= above:
            return f"{v / scale:.3g}{suffix}"
    return f"{v:.4g}"


# what a number is called beside the others in a hover (`wfsearch.study.labels` says it in full)
SHORT_NAMES = {"throughput": "img/s paired", "throughput_img_s": "img/s measured", "throughput_ratio": "ratio",
               "peak_memory_bytes": "memory", "memory": "memory", "latency_highres_ms": "latency hi-res ms",
               "macs": "MACs", "params": "params"}
DEPLOYED_COSTS = ("params", "macs", "peak_memory_bytes", "memory", "latency_highres_ms")


def axis_title(name: str, direction: str | None, paired: bool = True) -> str:
    from wfsearch.study.labels import label

    hint = ("higher is better" if loss_sign(direction) < 0 else "lower is better") if direction else ""
    if name in ("throughput", "accuracy"):
        return label(name, paired) + (f" · {hint}" if hint else "")
    unit = UNITS.get(name)
    return name + (f" ({unit})" if unit else "") + (f" · {hint}" if hint else "")


def trial_styles(data: ParetoData) -> dict[str, dict]:
    """Each plotted trial's and reference's marker in the Pareto plot, by label, for the other plots."""
    return {p.label: ({"color": "black", "symbol": "star"} if p.group == "reference" else
                      {"color": _fc1_color(p.fc1), "symbol": DWCONV_SYMBOLS.get(p.dwconv, "x")})
            for p in data.points}


def _fc1_color(fc1: str) -> str:
    return FC1_COLORS.get(fc1) or qualitative.Dark24[sum(map(ord, fc1)) % len(qualitative.Dark24)]


def _arch_text(arch: dict) -> str:
    fields = [f"{k}={v}" for k, v in arch.items()]
    return "<br>".join(", ".join(fields[i:i + 4]) for i in range(0, len(fields), 4))


def hover(p: Point, x: str, y: str, archs: dict[int, tuple[dict, str]] | None = None, paired: bool = True,
          deployed: str = "") -> str:
    """A point's hover text: scores, the deployed network's costs, the proxy network it was trained as (two
    networks, each labelled). ``archs``: architecture texts written so far, by id of the shared dict."""
    head = f"<b>{p.label}</b> ({GROUP_TITLES.get(p.group, p.group)})"
    if p.status and p.status not in (Status.OK, "reference"):
        head += f"<br>{p.status}"
    names = {**SHORT_NAMES, **({} if paired else {"throughput": "img/s measured"})}
    speeds = " · ".join(f"{names[k]} {fmt(p.costs[k])}" for k in ("throughput", "throughput_img_s", "throughput_ratio")
                        if k in p.costs and k not in (x, y) and not (k == "throughput_img_s" and not paired))
    scores = " · ".join(s for s in (f"{names.get(y, y)} {fmt(p.y)}", f"{names.get(x, x)} {fmt(p.x)}", speeds) if s)
    shown = {}  # by display name: memory is stored twice (metrics.memory, costs.peak_memory_bytes)
    for k, v in p.costs.items():
        if k in DEPLOYED_COSTS and k not in (x, y):
            shown.setdefault(names.get(k, k), f"{fmt(v)}B" if "memory" in k else fmt(v))
    costs = " · ".join(f"{n} {v}" for n, v in shown.items())
    costs = f"deployed network{f' ({deployed})' if deployed else ''}: {costs}" if costs else ""
    known = archs.get(id(p.arch)) if archs is not None else None
    if known is None or known[0] is not p.arch:
        known = (p.arch, ("proxy network (trained for accuracy): " if "timm_model" not in p.arch else "")
                 + _arch_text(p.arch))
        if archs is not None:
            archs[id(p.arch)] = known  # holds the dict, so that its id is not reused meanwhile
    return "<br>".join(s for s in (head, scores, costs, known[1]) if s)


def error_bars(points: list, axis: str) -> dict | None:
    """Plotly error bars of the points' 90% intervals on ``axis`` ("x" or "y"); None when none has one."""
    bounds = [(getattr(p, axis), getattr(p, f"{axis}_low", None), getattr(p, f"{axis}_high", None)) for p in points]
    if all(lo is None for _, lo, _ in bounds):
        return None
    return dict(type="data", symmetric=False, thickness=1, width=0,
                array=[hi - v if hi is not None else 0.0 for v, _, hi in bounds],
                arrayminus=[v - lo if lo is not None else 0.0 for v, lo, _ in bounds])


# Traces go in as dicts: plotly checks them once, a `go.Scatter` twice (3x slower for 10,000 points)
def pareto_figure(data: ParetoData) -> go.Figure:
    fig = go.Figure()
    archs: dict[int, tuple[dict, str]] = {}

    def hovers(pts: list[Point]) -> dict:
        return dict(hovertext=[hover(p, data.x, data.y, archs, data.paired, data.deployed) for p in pts],
                    hovertemplate="%{hovertext}<extra></extra>")
    order = PREDICTORS["fc1"] + sorted({p.fc1 for p in data.points} - set(PREDICTORS["fc1"]))
    for group in ("front", "dominated"):
        pts = data.group(group)
        for fc1 in [f for f in order if any(p.fc1 == f for p in pts)]:
            sel = [p for p in pts if p.fc1 == fc1]
            fig.add_trace(dict(type="scatter",
                x=[p.x for p in sel], y=[p.y for p in sel], mode="markers", name=f"fc1={fc1 or '?'}",
                legendgroup=group, legendgrouptitle_text=GROUP_TITLES[group], meta={"role": group},
                opacity=1.0 if group == "front" else 0.7,  # dominated: the same hue, lighter, no outline
                error_x=error_bars(sel, "x"), error_y=error_bars(sel, "y"),  # 90% intervals
                marker=dict(color=_fc1_color(fc1), size=13 if group == "front" else 9,
                            symbol=[DWCONV_SYMBOLS.get(p.dwconv, "x") for p in sel],
                            line=dict(width=2 if group == "front" else 0, color="black")), **hovers(sel)))
    for group in ("pruned", "failed", "infeasible"):  # hidden until clicked in the legend
        sel = data.group(group)
        if sel:
            fig.add_trace(dict(type="scatter",
                x=[p.x for p in sel], y=[p.y for p in sel], mode="markers", name=GROUP_TITLES[group],
                legendgroup="other", legendgrouptitle_text="other trials", visible="legendonly",
                meta={"role": group}, marker=dict(color="gray", size=8, symbol="x" if group == "failed" else "circle-open"),
                **hovers(sel)))
    refs = data.group("reference")
    if refs:
        fig.add_trace(dict(type="scatter",
            x=[p.x for p in refs], y=[p.y for p in refs], mode="markers+text", name="references",
            text=[p.label for p in refs], textposition="top center", legendgroup="reference",
            legendgrouptitle_text="references", meta={"role": "reference"},
            marker=dict(color="black", size=18, symbol="star-open", line=dict(width=2)),  # open: a trial under it shows
            **hovers(refs)))
    front = sorted(data.group("front"), key=lambda p: p.x)
    if len(front) > 1 and data.x_direction and data.y_direction and data.n_objectives == 2:
        fig.add_trace(dict(type="scatter", x=[p.x for p in front], y=[p.y for p in front], mode="lines",
                                 line=dict(color="black", width=1, dash="dot",  # through the worse corner of each pair
                                           shape="vh" if loss_sign(data.x_direction) < 0 else "hv"),
                                 hoverinfo="skip", showlegend=False, meta={"role": "front-line"}))
    for dw in sorted({p.dwconv for p in data.points if p.group in ("front", "dominated")}):
        fig.add_trace(dict(type="scatter", x=[None], y=[None], mode="markers", name=f"dwconv={dw or '?'}",
                                 legendgroup="key", legendgrouptitle_text="marker: dwconv predictor",
                                 meta={"role": "key"}, marker=dict(color="gray", size=10, symbol=DWCONV_SYMBOLS.get(dw, "x"))))
    chance_line(fig, data.chance, "y" if data.y == "accuracy" else "x" if data.x == "accuracy" else None)
    fig.update_layout(**LAYOUT, height=560, legend=dict(groupclick="toggleitem"),
                      xaxis_title=axis_title(data.x, data.x_direction, data.paired),
                      yaxis_title=axis_title(data.y, data.y_direction, data.paired))
    fig.update_xaxes(automargin=True, title_standoff=8)
    fig.update_yaxes(automargin=True, title_standoff=8)
    return fig


def chance_line(fig: go.Figure, chance: float | None, axis: str | None) -> None:
    """A dashed line at the proxy task's chance accuracy on ``axis`` ("x", "y" or None: none)."""
    if chance is None or axis is None:
        return
    text = f"chance (1/{round(1 / chance)} classes)"
    style = dict(line=dict(color="firebrick", width=1, dash="dash"), annotation_text=text,
                 annotation_font_size=11, annotation_font_color="firebrick")
    if axis == "y":
        fig.add_hline(y=chance, annotation_position="bottom right", **style)
    else:
        fig.add_vline(x=chance, annotation_position="top right", **style)


def _time_unit(seconds: list[float]) -> tuple[float, str]:
    top = max(seconds, default=0.0)
    return (3600.0, "hours") if top > 3 * 3600 else (60.0, "minutes") if top > 300 else (1.0, "seconds")


def hypervolume_figure(data: HypervolumeData) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("against finished trials", "against wall time"))
    timed = [s for s in data.steps if s.seconds is not None]
    scale, unit = _time_unit([s.seconds for s in timed])
    for col, steps, x in ((1, data.steps, lambda s: s.finished), (2, timed, lambda s: s.seconds / scale)):
        fig.add_trace(dict(type="scatter", x=[x(s) for s in steps], y=[s.hypervolume for s in steps],
                           mode="lines+markers", line_shape="hv", name="hypervolume", showlegend=col == 1,
                           hovertext=[f"after trial {s.number}: {s.hypervolume:.5g}" for s in steps],
                           hovertemplate="%{hovertext}<extra></extra>"), row=1, col=col)
    fig.update_xaxes(title_text="finished search trials", row=1, col=1)
    fig.update_xaxes(title_text=f"{unit} since the first trial started", row=1, col=2)
    fig.update_yaxes(title_text="normalized hypervolume (0..1, fixed box)" if data.box is not None and data.box.fixed
                     else "normalized hypervolume (0..1)", row=1, col=1)
    fig.update_layout(**LAYOUT, height=380, showlegend=False)
    return fig


def importance_figure(items: list[Importances]) -> go.Figure | None:
    shown = [i for i in items if i.importances]
    if not shown:
        return None
    fig = make_subplots(rows=1, cols=len(shown), subplot_titles=[f"for {i.objective}" for i in shown],
                        horizontal_spacing=0.15)
    for col, item in enumerate(shown, 1):
        names = [k for k, _ in reversed(item.importances)]
        vals = [v for _, v in reversed(item.importances)]
        fig.add_trace(go.Bar(x=vals, y=names, orientation="h", name=item.objective, showlegend=False,
                             hovertemplate="%{y}: %{x:.3f}<extra></extra>"), row=1, col=col)
        fig.update_xaxes(title_text=f"importance ({item.evaluator})", range=[0, 1], row=1, col=col)
    n = max(len(i.importances) for i in shown)
    fig.update_layout(**LAYOUT, height=max(260, 80 + 32 * n))
    return fig


def _dimension(axis: Axis) -> dict:
    d = dict(label=axis.name, values=list(axis.values))
    if axis.categories:  # a discrete knob: one tick per value, nothing in between
        d.update(tickvals=list(range(len(axis.categories))), ticktext=list(axis.categories),
                 range=[-0.5, len(axis.categories) - 0.5])
    elif axis.values:  # a number: five ticks over the range, all with the same precision
        lo, hi = min(axis.values), max(axis.values)
        ticks = [lo + (hi - lo) * i / 4 for i in range(5)] if hi > lo else [lo]
        digits = _shared_digits(ticks)
        d.update(range=[lo, hi] if hi > lo else [lo - 1, lo + 1], tickvals=ticks,
                 ticktext=[_tick(v, digits) for v in ticks])
    return d


def _shared_digits(ticks: list[float]) -> int:
    """Decimals that tell neighbouring ticks apart (at most 3), the same for every tick of an axis."""
    step = (max(ticks) - min(ticks)) / max(len(ticks) - 1, 1)
    if step <= 0 or max(abs(t) for t in ticks) >= 1e4:
        return 0
    return max(0, min(3, -math.floor(math.log10(step)) + 1))


def _tick(v: float, digits: int) -> str:
    return fmt(v) if abs(v) >= 1e4 else f"{v:.{digits}f}"


def parallel_figure(data: ParallelData) -> go.Figure:
    fig = go.Figure([dict(
        type="parcoords", dimensions=[_dimension(a) for a in data.axes],
        line=dict(color=[1.0 if f else 0.0 for f in data.on_front], cmin=0, cmax=1, showscale=False,
                  colorscale=[[0.0, "rgba(150,150,150,0.45)"], [1.0, "crimson"]]),
        meta={"role": "parallel", "trials": list(data.numbers)})])
    fig.update_layout(**{**LAYOUT, "margin": dict(l=80, r=80, t=60, b=40)}, height=440)
    return fig


def _series_name(data: ScalingData, s) -> str:
    """``trial 3 (MACs ∝ N^1.00, time ∝ N^0.95)``: the exponents between the two largest resolutions."""
    parts = [f"{what} ∝ N^{k:.2f}" for what, k in (("MACs", data.exponent(s, "macs")),
                                                  ("time", data.exponent(s, "throughput") if data.measured else None))
             if k is not None]
    return s.label + (f" ({', '.join(parts)})" if parts else "")


REFERENCE_DASHES = ("dash", "longdash", "dashdot", "longdashdot")


def scaling_figure(data: ScalingData, styles: dict[str, dict] | None = None) -> go.Figure:
    """One full-width panel per quantity, stacked; ``styles``: each trial's marker as in the Pareto plot."""
    panels = (["throughput"] if data.measured else []) + ["macs"]
    titles = {"throughput": f"measured throughput (batch {data.batch_size}, {data.device})",
              "macs": "MACs per image (analytic / counted)"}
    fig = make_subplots(rows=len(panels), cols=1, subplot_titles=[titles[p] for p in panels],
                        vertical_spacing=0.16 if len(panels) > 1 else 0.1)
    styles = styles or {}
    colors = qualitative.D3 + qualitative.Dark24
    res = list(data.resolutions)
    for row, panel in enumerate(panels, 1):
        col = 1
        firsts = []
        for i, s in enumerate(data.series):
            ys = list(s.throughput if panel == "throughput" else s.macs)
            if not any(y is not None for y in ys):
                continue
            firsts += [y for y in ys[:1] if y]
            style = styles.get(s.label) or {}
            ref = s.kind == "reference"
            color = style.get("color") or ("black" if ref else colors[i % len(colors)])
            fig.add_trace(go.Scatter(
                x=res, y=ys, mode="lines+markers", legendgroup=s.label, showlegend=row == 1,
                name=_series_name(data, s), meta={"role": s.kind},
                line=dict(color=color, dash=REFERENCE_DASHES[i % len(REFERENCE_DASHES)] if ref else "solid"),
                marker=dict(symbol="star" if ref else style.get("symbol", "circle"), size=10 if ref else 9,
                            color=color, line=dict(width=1, color="black")),
                hovertemplate=f"{s.label}<br>%{{x}} px: %{{y:.4g}}<extra></extra>"), row=row, col=col)
        if firsts and len(res) > 1:  # guides through the geometric mean of the first points
            y0 = math.exp(sum(math.log(y) for y in firsts) / len(firsts))
            sign = -1 if panel == "throughput" else 1
            for power, name, dash in ((1, "∝ N (linear in tokens)", "dot"), (2, "∝ N² (quadratic, attention)", "dashdot")):
                fig.add_trace(go.Scatter(
                    x=res, y=[y0 * (r / res[0]) ** (2 * power * sign) for r in res], mode="lines", name=name,
                    legendgroup=name, showlegend=row == 1, hoverinfo="skip", meta={"role": "guide"},
                    line=dict(color="gray", width=1, dash=dash)), row=row, col=col)
        fig.update_xaxes(type="log", tickvals=res, ticktext=[str(r) for r in res], automargin=True,
                         title_text="resolution (px; tokens N ∝ resolution²)", title_standoff=6, row=row, col=col)
        fig.update_yaxes(type="log", automargin=True, title_standoff=6, exponentformat="SI", showexponent="all",
                         title_text="images/s" if panel == "throughput" else "MACs per image",
                         **_decade_ticks([y for tr in fig.data if tr.xaxis == ("x" if row == 1 else f"x{row}")
                                          for y in tr.y if y]), row=row, col=col)
    fig.update_layout(**LAYOUT, height=380 * len(panels) + 60)
    return fig


def _decade_ticks(ys: list[float]) -> dict:
    """Log-axis ticks: one per decade (SI labels) over a wide span, else 1-2-5 steps; never plotly's minor digits."""
    ys = [y for y in ys if y and y > 0]
    if not ys:
        return {}
    lo, hi = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    if hi - lo >= 2:
        return dict(dtick=1, tickformat="~s")
    vals = [m * 10 ** e for e in range(lo, hi + 1) for m in (1, 2, 5) if min(ys) / 1.5 <= m * 10 ** e <= max(ys) * 1.5]
    return dict(tickvals=vals, ticktext=[fmt(v) for v in vals]) if len(vals) >= 2 else dict(tickformat="~s")


CURVE_TRACES_MAX = 60  # more dominated/pruned curves than this: one trace per (group, predictors), not per trial


def _batched_curves(fig: go.Figure, curves: list) -> None:
    """Many curves as one trace per (group, fc1, dwconv), separated by gaps: 10,000 trials in a few dozen traces."""
    batches: dict[tuple[str, str, str], list] = {}
    for c in curves:
        batches.setdefault((c.group, c.fc1, c.dwconv), []).append(c)
    for (group, fc1, dwconv), cs in batches.items():
        pruned = group == "pruned"
        xs, ys, text = [], [], []
        for c in cs:
            xs += [*c.epochs, None]
            ys += [*c.values, None]
            text += [f"{c.label} ({c.group}: {c.status})"] * len(c.epochs) + [""]
        fig.add_trace(dict(type="scatter",
            x=xs, y=ys, text=text, mode="lines+markers", connectgaps=False,
            name=f"fc1 {fc1 or '-'}, dwconv {dwconv or '-'} ({len(cs)} trial{'s' if len(cs) != 1 else ''})",
            legendgroup=group, legendgrouptitle_text=GROUP_TITLES.get(group, group), meta={"role": group},
            opacity=0.75, line=dict(color=_fc1_color(fc1), width=1.2, dash="dot" if pruned else "solid"),
            marker=dict(color=_fc1_color(fc1), symbol="x" if pruned else DWCONV_SYMBOLS.get(dwconv, "circle"), size=6,
                        line=dict(width=0, color="black")),
            hovertemplate="%{text}<br>epoch %{x}: %{y:.4g}<extra></extra>"))


def curves_figure(data: CurvesData) -> go.Figure:
    """Proxy accuracy against epoch for every trained and pruned trial; the rungs as vertical lines."""
    fig = go.Figure()
    rest = [c for c in data.curves if c.group != "front"]
    curves = data.curves
    if len(rest) > CURVE_TRACES_MAX:
        _batched_curves(fig, rest)
        curves = tuple(c for c in data.curves if c.group == "front")
    for c in curves:
        pruned = c.group == "pruned"
        fig.add_trace(dict(type="scatter",
            x=list(c.epochs), y=list(c.values), mode="lines+markers", name=f"{c.label} ({c.group})",
            legendgroup=c.group, legendgrouptitle_text=GROUP_TITLES.get(c.group, c.group), meta={"role": c.group},
            opacity=1.0 if c.group == "front" else 0.75,
            line=dict(color=_fc1_color(c.fc1), width=2.5 if c.group == "front" else 1.2, dash="dot" if pruned else "solid"),
            marker=dict(color=_fc1_color(c.fc1), symbol="x" if pruned else DWCONV_SYMBOLS.get(c.dwconv, "circle"),
                        size=9 if c.group == "front" else 6, line=dict(width=1 if c.group == "front" else 0, color="black")),
            hovertemplate=f"{c.label} ({c.group}: {c.status})<br>epoch %{{x}}: %{{y:.4g}}<extra></extra>"))
    for r in data.rungs:
        fig.add_vline(x=r, line=dict(color="gray", width=1, dash="dash"), annotation_text=f"rung {r}",
                      annotation_position="top left", annotation_font_size=11)
    chance_line(fig, data.chance, "y")
    fig.update_layout(**LAYOUT, height=440, legend=dict(groupclick="toggleitem"),
                      xaxis_title="proxy epoch", yaxis_title=f"{data.metric} (validation)")
    fig.update_xaxes(dtick=1, automargin=True)
    fig.update_yaxes(automargin=True)
    return fig


def design_figure(knob: KnobAnalysis, seed_noise: float | None, level: float) -> go.Figure:
    """Each value's throughput-normalized EDF of the proxy error with its band, and the seed noise at its median."""
    fig = go.Figure()
    for i, e in enumerate(knob.edfs):
        color = qualitative.D3[i % len(qualitative.D3)]
        name = f"{e.value} ({e.n} arch.{'' if e.coverage > 0.999 else f', {100 * e.coverage:.0f}% of throughput'})"
        x = list(e.errors)
        fig.add_trace(dict(type="scatter", x=x + x[::-1], y=list(e.high) + list(e.low)[::-1], fill="toself",
                           fillcolor=color, opacity=0.18, line=dict(width=0), hoverinfo="skip", showlegend=False,
                           legendgroup=e.value, meta={"role": "band"}))
        fig.add_trace(dict(type="scatter", x=x, y=list(e.cdf), mode="lines", name=name, legendgroup=e.value,
                           line=dict(color=color, width=2, shape="hv"), meta={"role": "edf"},
                           hovertemplate=f"{knob.knob}={e.value}<br>error %{{x:.3f}}: %{{y:.2f}}<extra></extra>"))
        if seed_noise:
            fig.add_trace(dict(type="scatter", x=[e.median_error], y=[0.5], mode="markers", showlegend=False,
                               legendgroup=e.value, marker=dict(color=color, size=7, symbol="line-ns-open"),
                               error_x=dict(type="constant", value=seed_noise, color=color, thickness=1.5, width=4),
                               meta={"role": "noise"},
                               hovertemplate=f"seed noise: ±{seed_noise:.3f} around the median<extra></extra>"))
    fig.update_layout(**LAYOUT, height=360, legend=dict(title_text=knob.knob),
                      xaxis_title="proxy error (1 - accuracy) · lower is better",
                      yaxis_title=f"share of architectures<br>(throughput-normalized, {100 * level:.0f}% band)")
    fig.update_yaxes(range=[0, 1.02], automargin=True)
    fig.update_xaxes(automargin=True)
    return fig
