"""The report in a real browser (headless Chromium) and `wfsearch dashboard` serving a study.

The page writes its own check into ``<pre id="selftest">`` once every plot has been drawn:
JavaScript errors, and the Pareto markers drawn per role. Chromium dumps the DOM after that.
"""
from __future__ import annotations

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


def open_in_chromium(page: Path, profile: Path) -> dict:
    """Load ``page`` offline in headless Chromium and return the page's self-check."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",  # parcoords is WebGL
           "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-extensions", "--host-resolver-rules=MAP * ~NOTFOUND",  # no network at all
           f"--user-data-dir={profile}", "--virtual-time-budget=30000", "--dump-dom", page.resolve().as_uri()]
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
    assert check["plots"] == check["plots_drawn"] == 5
    assert check["front_points_drawn"] == check["front_points"] == len(view.front) == len(FRONT)
    # pruned, failed and infeasible trials are hidden until clicked in the legend
    assert check["drawn"] == {"front": 3, "dominated": len(TRAINED) - 3, "reference": 2}
    assert check["ok"] is True


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_report_of_an_empty_study_in_headless_chromium(tmp_path: Path) -> None:
    new_study(tmp_path / "studies" / "empty")
    view = read_study(tmp_path / "studies" / "empty")
    page = write_report(report_data(view, scaling_data(view, measure=False)), tmp_path / "report.html")
    check = open_in_chromium(page, tmp_path / "profile")
    assert check["errors"] == [] and check["front_points_expected"] == 0 and check["ok"] is True


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
