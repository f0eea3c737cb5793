"""The report's ERF section: what `wfsearch erf` left in ``<study>/erf/erf.json``, as heat maps.

Measuring is `wfsearch erf`'s job (it may train the models on the proxy); the report only reads its
output, so it stays cheap and never imports torch's autograd machinery for this.
"""
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
    models = data["models"][:MAX_MAPS]
    rows = math.ceil(len(models) / COLS)
    cols = min(COLS, len(models))
    titles = [f"{m['label']}<br>out {_pct(m.get('outside_static_rf'))}, r50 {m['r50']:.0f}, r90 {m['r90']:.0f} px"
              for m in models]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.03,
                        vertical_spacing=0.12 / max(rows, 1) + 0.04)
    for i, m in enumerate(models):
        fig.add_trace(go.Heatmap(z=m["map"], colorscale="Viridis", zmin=0, zmax=1, showscale=i == 0,
                                 hovertemplate=f"{m['label']}<br>x %{{x}} y %{{y}}: %{{z:.3f}}<extra></extra>"),
                      row=i // COLS + 1, col=i % COLS + 1)
    fig.update_yaxes(autorange="reversed", showticklabels=False, scaleanchor="x")
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(**{**LAYOUT, "margin": dict(l=20, r=20, t=60, b=20)}, height=260 * rows + 40)
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
    intro = (f"<p>Effective receptive field of each model (<code>wfsearch erf</code>): the gradient of the central "
             f"output token's features with respect to the input, over {data.get('images', 'the proxy images')}, "
             f"at {data.get('img_size')}x{data.get('img_size')} px, shown as log10(1 + m) / max. "
             f"'out' is the share of the ERF mass outside the static network's theoretical receptive field (its "
             f"depthwise convs' reach; exactly 0 for the static network), r50 / r90 the radii from the central "
             f"token holding 50% / 90% of the mass. PNGs: <code>erf/</code> next to the study."
             + (f" {more} more in erf.json." if more > 0 else "") + "</p>")
    return intro, erf_figure(data)
