"""The report in a real browser (headless Chromium) and `wfsearch dashboard` serving a study.

The page writes its own check into ``<pre id="selftest">`` once every plot has been drawn:
JavaScript errors, and the Pareto markers drawn per role. Chromium dumps the DOM after that.
"""
from __future__ import annotations

import dataclasses
import html
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from test_report import FRONT, TRAINED, make_study, new_study
from wfsearch.report import report_data, scaling_data, write_report
from wfsearch.study import read_study

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def open_in_chromium(page: Path, profile: Path, width: int = 1280, screenshot: Path | None = None) -> dict:
    """Load ``page`` offline in headless Chromium ``width`` px wide and return the page's self-check
    (and, with ``screenshot``, write a PNG of the page's first 6000 px)."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",  # parcoords is WebGL
           "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-extensions", "--host-resolver-rules=MAP * ~NOTFOUND",  # no network at all
           f"--user-data-dir={profile}", "--virtual-time-budget=30000", f"--window-size={width},3000",
           "--dump-dom", page.resolve().as_uri()]
    if screenshot is not None:
        shot = [c for c in cmd if c not in ("--dump-dom", f"--window-size={width},3000")]
        shot[-1:-1] = [f"--window-size={width},6000", "--hide-scrollbars", f"--screenshot={screenshot}"]
        subprocess.run(shot, capture_output=True, timeout=180)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    m = re.search(r'<pre id="selftest" data-ok="(\w+)">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"no self-check in the dumped page (rc {proc.returncode}): {proc.stderr[-2000:]}"
    assert m.group(1) != "pending", "the page never finished drawing"
    return json.loads(html.unescape(m.group(2)))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_report_in_headless_chromium(tmp_path: Path) -> None:
    make_study(tmp_path / "studies" / "mixed")
    view = read_study(tmp_path / "studies" / "mixed")
    page = write_report(report_data(view, scaling_data(view, (224, 448, 896), measure=False)),
                        tmp_path / "report.html")
    check = open_in_chromium(page, tmp_path / "profile")
    assert check["errors"] == []
    assert check["plots"] == check["plots_drawn"] == 9
    assert check["section_plots"]["sec-design"] == 3  # fc1_predictor, dwconv_predictor, rank_ratio
    assert check["front_points_drawn"] == check["front_points"] == len(view.front) == len(FRONT)
    # pruned, failed and infeasible trials are hidden until clicked in the legend
    assert check["drawn"] == {"front": 3, "dominated": len(TRAINED) - 3, "reference": 2}
    assert check["ok"] is True


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_design_space_section_in_headless_chromium(tmp_path: Path) -> None:
    """The Design space section of a 144-architecture random sample: one EDF plot per knob, drawn without
    a JavaScript error, its verdicts and matched-pair tables on the page."""
    import numpy as np

    from test_analyze import SPACE, draw, write_study

    folder = write_study(tmp_path / "studies" / "truth", draw(np.random.default_rng(0)), seed_noise=0.02)
    view = read_study(folder)
    page = write_report(report_data(view, scaling_data(view, measure=False)), tmp_path / "report.html")
    check = open_in_chromium(page, tmp_path / "profile", 900)
    assert check["errors"] == [] and check["plots"] == check["plots_drawn"]
    assert check["section_plots"]["sec-design"] == len(SPACE)
    assert check["overlaps"] == [] and check["empty_sections"] == [] and check["ok"] is True
    text = page.read_text()
    assert "<b>bilateral is better at matched throughput" in text and "<b>inside the noise: " in text


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_report_of_an_empty_study_in_headless_chromium(tmp_path: Path) -> None:
    new_study(tmp_path / "studies" / "empty")
    view = read_study(tmp_path / "studies" / "empty")
    page = write_report(report_data(view, scaling_data(view, measure=False)), tmp_path / "report.html")
    check = open_in_chromium(page, tmp_path / "profile")
    assert check["errors"] == [] and check["front_points_expected"] == 0 and check["ok"] is True


def _measured(sc):
    """``sc`` as if throughput had been measured (1/N scaling), so both scaling panels are drawn."""
    series = tuple(dataclasses.replace(s, throughput=tuple(3000.0 / (r / 224) ** 2 * (1 + i / 5)
                                                           for r in sc.resolutions)) for i, s in enumerate(sc.series))
    return dataclasses.replace(sc, series=series, measured=True, device="cpu, 1 thread, CPU time")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
@pytest.mark.parametrize("width", [900, 1400])
def test_no_text_overlaps_and_no_empty_section(width: int, tmp_path: Path) -> None:
    """At a laptop's and a narrow window's width, no plot title, axis title or legend entry overlaps another
    one or a tick label, and every section shows something (a plot with data, a table, or why not)."""
    make_study(tmp_path / "studies" / "mixed")
    view = read_study(tmp_path / "studies" / "mixed")
    data = report_data(view, _measured(scaling_data(view, (224, 448, 896), measure=False)))
    check = open_in_chromium(write_report(data, tmp_path / "report.html"), tmp_path / "profile", width)
    assert check["width"] == width
    assert check["overlaps"] == [] and check["empty_sections"] == [] and check["ok"] is True


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_the_self_check_sees_overlaps_and_empty_sections(tmp_path: Path, monkeypatch) -> None:
    """The check itself: two subplots side by side with long titles at 900 px collide, and a section whose
    plot has no data counts as empty."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    import wfsearch.report.page as page

    def crowded(data, styles=None):
        fig = make_subplots(rows=1, cols=2, subplot_titles=["a long title of the left-hand panel of this figure",
                                                            "a long title of the right-hand panel of this figure"])
        for col in (1, 2):
            fig.add_trace(go.Scatter(x=[1, 2], y=[1, 2]), row=1, col=col)
            fig.update_xaxes(title_text="an axis title long enough to run into its neighbour's", row=1, col=col)
        return fig

    sections = page._sections
    monkeypatch.setattr(page.figures, "scaling_figure", crowded)
    monkeypatch.setattr(page, "_sections", lambda data: sections(data) + [
        ("blank", "A section with nothing drawn", page._figure("blank", go.Figure()))])
    make_study(tmp_path / "studies" / "mixed")
    view = read_study(tmp_path / "studies" / "mixed")
    data = report_data(view, scaling_data(view, (224, 448, 896), measure=False))
    check = open_in_chromium(write_report(data, tmp_path / "report.html"), tmp_path / "profile", 900)
    assert any(o.startswith("scaling: ") and "left-hand panel" in o for o in check["overlaps"])
    assert check["empty_sections"] == ["sec-blank"] and check["ok"] is False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_serves_the_study(tmp_path: Path) -> None:
    pytest.importorskip("optuna_dashboard")
    make_study(tmp_path / "studies" / "mixed")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "wfsearch", "dashboard", "studies/mixed", "--port", str(port)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline, studies = time.monotonic() + 90, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                    studies = json.load(r)
                break
            except OSError:
                time.sleep(0.5)
        assert studies is not None, f"the dashboard did not answer (rc {proc.poll()})"
        names = {s["study_name"] for s in studies["study_summaries"]}
        assert names == {"mixed", "mixed:references"}
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert f"open http://127.0.0.1:{port}/dashboard/" in out
