"""The report's ERF section: what `wfsearch erf` left in ``<study>/erf/erf.json``, as heat maps (the report
only reads it, so it stays cheap)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .figures import LAYOUT

COLS = 4
MAX_MAPS = 24


def load_erf(folder: str | Path) -> dict[str, Any] | None:
    """``<folder>/erf/erf.json`` or None (not measured, or unreadable)."""
    path = Path(folder) / "erf" / "erf.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("models") else None


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def erf_figure(data: dict[str, Any]) -> go.Figure:
    """One square panel per model, its state in the title, the static network's receptive field outlined."""
    models = data["models"][:MAX_MAPS]
    rows = math.ceil(len(models) / COLS)
    cols = min(COLS, len(models))
    titles = [f"{m['model']} ({m.get('state', '?')})<br>out {_pct(m.get('outside_static_rf'))}, r50 {m['r50']:.0f}, "
              f"r90 {m['r90']:.0f} px" if m.get("model") else m["label"] for m in models]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.03,
                        vertical_spacing=0.12 / max(rows, 1) + 0.04)
    for i, m in enumerate(models):
        row, col = i // COLS + 1, i % COLS + 1
        n = len(m["map"])
        fig.add_trace(go.Heatmap(z=m["map"], colorscale="Viridis", zmin=0, zmax=1, showscale=i == 0,
                                 hovertemplate=f"{m['label']}<br>x %{{x}} y %{{y}}: %{{z:.3f}}<extra></extra>"),
                      row=row, col=col)
        axis = "" if i == 0 else str(i + 1)
        fig.update_yaxes(scaleanchor=f"x{axis}", constrain="domain", range=[n - 0.5, -0.5], row=row, col=col)
        fig.update_xaxes(constrain="domain", range=[-0.5, n - 0.5], row=row, col=col)
        box, size = m.get("static_rf_box"), m.get("img_size")
        if box and size:  # in the map's cells (the map may be a pooled copy of the image)
            t, b, l, r = (v * n / size - 0.5 for v in box)
            fig.add_shape(type="rect", x0=l, x1=r, y0=t, y1=b, line=dict(color="white", width=1.5), row=row, col=col)
    fig.update_yaxes(showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(**{**LAYOUT, "margin": dict(l=20, r=20, t=60, b=20)}, height=280 * rows + 40)
    fig.update_annotations(font_size=11)
    return fig


def erf_section(folder: str | Path, study_command: str) -> tuple[str, go.Figure | None]:
    """(the section's introduction as HTML, its figure or None)."""
    data = load_erf(folder)
    if data is None:
        return (f'<p class="empty">No effective receptive fields measured yet: run <code>{study_command} --front '
                f'--references --trained</code> (untrained and trained on the proxy), then this report again.</p>',
                None)
    more = len(data["models"]) - MAX_MAPS
    states = {m.get("state") for m in data["models"]}
    untrained = ("<b>Every map here is of an untrained network</b> (random initial weights): it shows how far the "
                 "architecture can reach, not what training made of it; <code>--trained</code> adds the maps after "
                 "the proxy training. " if states <= {"untrained", None} else
                 "Untrained: random initial weights (the architecture's reach); trained: after the proxy training. ")
    intro = (f"<p>Effective receptive field of each model (<code>wfsearch erf</code>): the gradient of the central "
             f"output token's features with respect to the input, over {data.get('images', 'the proxy images')}, "
             f"at {data.get('img_size')}x{data.get('img_size')} px, shown as log10(1 + m) / max of the mean map. "
             + untrained +
             f"'out' is the share of the ERF mass outside the static network's theoretical receptive field (its "
             f"depthwise convs' reach, outlined in white; exactly 0 for the static network), r50 / r90 the radii from "
             f"the central "
             f"token holding 50% / 90% of the mass. PNGs: <code>erf/</code> next to the study."
             + (f" {more} more in erf.json." if more > 0 else "") + "</p>")
    return intro, erf_figure(data)
