"""Every number means one thing, in every place: duplicates, chance, intervals, labels (show, report, export)."""
from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import create_trial

from wfsearch.cli import main
from wfsearch.models import ArchConfig
from wfsearch.report import curves_data, hypervolume_data, pareto_data, show_text
from wfsearch.report import figures
from wfsearch.study import read_study, references_study_name

from test_report import DISTRIBUTIONS, TEST_SIZE, _add, _attrs, new_study

FOUR = {**TEST_SIZE, "num_classes": 4}  # a 4-class proxy task: chance 0.25
SAME = "ok (same architecture as trial {}, not trained again)"
# (fc1, dwconv, accuracy, throughput, reason): 0 and 1 on the front, 1 below chance; 3, 4 repeat 0; 5 repeats 2
TRIALS = [("bilateral", "adaptive", 0.60, 800.0, "ok"), ("none", "none", 0.203, 1500.0, "ok"),
          ("deep", "adaptive", 0.45, 500.0, "ok"), ("bilateral", "adaptive", 0.60, 800.0, SAME.format(0)),
          ("bilateral", "adaptive", 0.60, 800.0, SAME.format(0)), ("deep", "adaptive", 0.45, 500.0, SAME.format(2))]


def _cfg(fc1: str, dw: str) -> ArchConfig:
    return ArchConfig(**FOUR, fc1_predictor=fc1, dwconv_predictor=dw)


def repeats_study(folder: Path) -> Path:
    study = new_study(folder)
    study.set_user_attr("spec", {**study.user_attrs["spec"],
                                 "proxy": {"dataset": {"name": "synthetic", "num_classes": 4, "val_size": 128}}})
    for i, (fc1, dw, acc, tput, reason) in enumerate(TRIALS):
        params = {"fc1_predictor": fc1, "dwconv_predictor": dw}
        attrs = _attrs(_cfg(fc1, dw), acc, tput, reason)
        attrs["metrics"].update(throughput_low=tput, throughput_high=tput, accuracy_low=acc - 0.05,
                                accuracy_high=acc + 0.05)  # one repeat: a zero-width speed "interval"
        attrs["costs"].update(throughput_samples=[tput], throughput_interval={"value": tput, "low": tput, "high": tput,
                                                                              "level": 0.0})
        _add(study, i, values=[acc, tput], params=params, distributions={k: DISTRIBUTIONS[k] for k in params},
             user_attrs=attrs)
    refs = optuna.create_study(study_name=references_study_name(folder.name), storage=f"sqlite:///{folder / 'optuna.db'}",
                               directions=["maximize", "maximize"])
    refs.add_trial(create_trial(values=[0.60, 800.0], user_attrs={  # the released design: trial 0's architecture
        **_attrs(_cfg("bilateral", "adaptive"), 0.60, 800.0), "kind": "reference", "reference_name": "released"}))
    return folder


@pytest.fixture
def repeats(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return repeats_study(Path("studies") / "repeats")


def cli(args: list, capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_repeats_are_never_counted_as_trained_nor_as_separate_points(repeats):
    view = read_study(repeats)
    assert view.repeat_of == {3: 0, 4: 0, 5: 2}
    assert [view.group(t) for t in view.trials] == ["front", "front", "dominated", "repeat", "repeat", "repeat"]
    assert view.counts_text().startswith("3 architectures trained, ") and "3 repeats of an architecture" in view.counts_text()
    assert {p.number for p in pareto_data(view).points if p.number is not None} == {0, 1, 2}
    assert {c.number for c in curves_data(view).curves} == {0, 1, 2}
    hv = hypervolume_data(view)
    assert [s.number for s in hv.steps] == [0, 1, 2] and [s.finished for s in hv.steps] == [1, 2, 3]
    text = show_text(view)
    assert "3 architectures trained" in text and "6 trained" not in text


def test_chance_is_drawn_and_a_front_trial_at_chance_is_flagged_not_offered_for_export(repeats, capsys):
    view = read_study(repeats)
    assert view.chance == 0.25 and view.at_chance(view.trial(1)) and not view.at_chance(view.trial(0))
    text = show_text(view)
    assert "wfsearch export studies/repeats --trial 0" in text
    assert "--trial 1" not in text and "at chance: accuracy 0.203 is not above 1/4 classes = 0.250" in text
    data = pareto_data(view)
    assert data.chance == 0.25 and curves_data(view).chance == 0.25
    fig = figures.pareto_figure(data)
    assert [s.y0 for s in fig.layout.shapes] == [0.25]  # the chance line
    assert any("chance (1/4 classes)" in a.text for a in fig.layout.annotations)
    assert [s.y0 for s in figures.curves_figure(curves_data(view)).layout.shapes if s.y0 == s.y1] == [0.25]
    rc, out, _ = cli(["export", repeats, "--trial", "1"], capsys)
    assert rc == 0 and "warning: trial 1 is at chance" in out


def test_export_of_a_repeat_says_which_trial_it_repeats(repeats, capsys):
    import yaml

    rc, out, _ = cli(["export", repeats, "--trial", "3"], capsys)
    assert rc == 0 and "note: trial 3 repeats trial 0's architecture" in out
    recipe = yaml.safe_load((repeats / "recipes" / "trial-3.yaml").read_text())
    assert recipe["provenance"]["repeat_of_trial"] == 0
    rc, out, _ = cli(["export", repeats, "--trial", "0", "--force"], capsys)
    assert "note: trial 0 repeats" not in out


def test_a_reference_does_not_hide_the_trial_with_its_architecture(repeats):
    view = read_study(repeats)
    data = pareto_data(view)
    ref = next(p for p in data.points if p.group == "reference")
    assert ref.status == "reference (the architecture of trial 0)"
    trace = next(t for t in figures.pareto_figure(data).data if t.meta and t.meta["role"] == "reference")
    assert trace.marker.symbol.endswith("-open")  # an outline: trial 0's marker under it shows


def test_intervals_say_their_real_coverage_and_a_single_repeat_has_none(repeats):
    text = show_text(read_study(repeats))
    assert "800.0 [800.0, 800.0]" not in text and "0.6000 [0.5500, 0.6500]" in text
    assert "speed none (1 repeat)" in text
    from wfsearch.report.data import intervals_text

    view = read_study(repeats)
    for t in view.trials:
        t.costs["throughput_interval"]["level"] = 0.75
        t.costs["throughput_samples"] = [1.0, 2.0, 3.0]
    assert "speed 75% (the whole range of 3 repeats; 5 or more reach 90%)" in intervals_text(view)
