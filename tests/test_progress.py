"""The live line of `wfsearch run`: it redraws on its own, names its phase, and its hypervolume never falls;
the summary's next commands are the ones a user types."""
from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest

from wfsearch.study.hypervolume import HypervolumeBox, study_box

# the smoke study's trials in the order they finished: (accuracy, paired img/s). With a box drawn around
# the trials so far the hypervolume went 1.000 -> 0.174 -> 0.483
SMOKE = [(0.2812, 608.1), (0.2031, 1085.0), (0.1562, 794.4), (0.35, 500.0), (0.30, 900.0)]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_live_hypervolume_never_falls_and_uses_the_studys_fixed_box():
    from wfsearch.search.progress import SearchProgress

    prog = SearchProgress(total=5, objectives=["accuracy", "throughput"], directions=["maximize", "maximize"],
                          chance=0.25, reference_img_s=433.8)
    seen = []
    for i, v in enumerate(SMOKE):
        prog.add_point(list(v), arch_hash=f"a{i}")
        seen.append(prog.hypervolume())
    assert seen == sorted(seen) and seen[0] > 0 and seen[-1] > seen[0]
    box = study_box(["accuracy", "throughput"], ["maximize", "maximize"], chance=0.25, reference_img_s=433.8)
    assert prog.hv_box == box and HypervolumeBox.from_dict(box.to_dict()) == box
    u = box.normalize([(0.25, 433.8), (1.0, 0.0)])
    assert u.tolist() == [[0.0, 0.5], [1.0, 0.0]]  # chance scores 0, the reference's speed 0.5
    assert prog.hypervolume() == pytest.approx(box.hypervolume(prog.front()))
    # a drawn-around box would have fallen: the fixed one cannot, whatever the order
    rng = np.random.default_rng(0)
    for _ in range(20):
        prog = SearchProgress(total=50, objectives=["accuracy", "throughput"], directions=["maximize", "minimize"])
        hv = []
        for i, (a, p) in enumerate(rng.random((50, 2))):
            prog.add_point([a, 1e6 * p], arch_hash=str(i))
            hv.append(prog.hypervolume())
        assert all(b >= a - 1e-12 for a, b in zip(hv, hv[1:]))


def test_readers_use_the_box_the_run_stored_and_their_history_never_falls(tmp_path, monkeypatch):
    from test_numbers import repeats_study
    from wfsearch.report import hypervolume_data, show_text
    from wfsearch.study import read_study

    monkeypatch.chdir(tmp_path)
    folder = repeats_study(Path("studies") / "r")
    view = read_study(folder)
    hv = hypervolume_data(view)
    assert hv.box.fixed and hv.box.worst[0] == 0.25  # accuracy from chance
    assert hv.box.half[1] == 800.0  # no reference speed stored: trial 0's throughput scores 0.5
    values = [s.hypervolume for s in hv.steps]
    assert values == sorted(values)
    assert "never falls" in show_text(view)
    import optuna

    box = study_box(view.objectives, view.directions, chance=0.25, reference_img_s=400.0)
    optuna.load_study(study_name="r", storage=f"sqlite:///{folder / 'optuna.db'}").set_user_attr(
        "hypervolume_box", box.to_dict())
    assert hypervolume_data(read_study(folder)).box == box


def test_the_live_line_redraws_every_second_and_names_its_phase():
    from wfsearch.search.progress import SearchProgress
    from wfsearch.search.tune import ProgressPrinter

    term = Terminal()
    prog = SearchProgress(total=3, objectives=["accuracy", "throughput"], directions=["maximize", "maximize"])
    printer = ProgressPrinter(prog, stream=term, interval_s=0.2)
    printer.set_phase("starting Ray")
    printer.start()
    try:
        time.sleep(1.3)  # no event at all: the clock must still move
        printer.set_phase("searching")
        prog.finished, prog.running = 3, 1
        prog.add_point([0.3, 500.0])
        printer.emit()
    finally:
        printer.stop()
    lines = [s for s in term.getvalue().split("\r\x1b[K") if s]
    assert lines[0].startswith("starting Ray | elapsed 0m00s")
    assert any("elapsed 0m01s" in s and s.startswith("starting Ray") for s in lines)
    assert lines[-1].startswith("searching | trials 3/3") and "ETA" not in lines[-1]  # done: no ETA 0m00s
    log = io.StringIO()  # a log file: a line per change, not per second
    printer = ProgressPrinter(prog, stream=log, interval_s=0.05)
    printer.start()
    printer.emit()
    time.sleep(1.2)
    printer.emit()  # only the clock moved
    printer.set_phase("finishing")
    printer.stop()
    assert len(log.getvalue().splitlines()) == 2


def test_the_summary_names_the_study_as_typed_and_offers_export(tmp_path, monkeypatch):
    from wfsearch.cli.run import summary_text
    from wfsearch.search.engine import RunSummary
    from wfsearch.study import read_study
    from test_numbers import repeats_study

    monkeypatch.chdir(tmp_path)
    folder = repeats_study(Path("studies") / "r")
    view = read_study(folder)
    s = RunSummary(study_name="r", storage="sqlite:///studies/r/optuna.db", study_dir=(tmp_path / folder).resolve(),
                   finished=3, pruned=0, failed=0, front=list(view.front), hypervolume=0.5)
    text = summary_text(s)
    assert "next:    wfsearch show studies/r   |   wfsearch report studies/r   |   wfsearch export studies/r --trial 0" in text
    assert str(tmp_path) not in text
    # the proxy's reliability is said beside the front it qualifies
    verdict = "proxy check: FAIL: the proxy cannot tell designs apart (ICC(1,1) 0.40 [0.20, 0.55], 60% of runs above chance)"
    lines = summary_text(RunSummary(**{**s.__dict__, "verdict": verdict})).splitlines()
    assert verdict in lines and lines.index(verdict) > max(i for i, l in enumerate(lines) if l.startswith("Pareto front"))
