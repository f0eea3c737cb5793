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


def repeats_study(folder: Path, paired: bool = False) -> Path:
    """``paired``: speeds stored as `wfsearch run` stores them: ``throughput`` the paired objective (ratio x
    the reference's 400 img/s), ``throughput_img_s`` (metrics and costs) the trial's own 0.8 x that."""
    study = new_study(folder)
    study.set_user_attr("spec", {**study.user_attrs["spec"],
                                 "proxy": {"dataset": {"name": "synthetic", "num_classes": 4, "val_size": 128}}})
    if paired:
        study.set_user_attr("throughput_scale", {"reference": "deit_tiny_patch16_224", "img_s": 400.0})
    for i, (fc1, dw, acc, tput, reason) in enumerate(TRIALS):
        params = {"fc1_predictor": fc1, "dwconv_predictor": dw}
        attrs = _attrs(_cfg(fc1, dw), acc, tput, reason)
        attrs["metrics"].update(throughput_low=tput, throughput_high=tput, accuracy_low=acc - 0.05,
                                accuracy_high=acc + 0.05)  # one repeat: a zero-width speed "interval"
        attrs["costs"].update(throughput_img_s_samples=[tput], throughput_img_s_interval={
            "value": tput, "low": tput, "high": tput, "level": 0.0})
        if paired:
            attrs["metrics"].update(throughput_img_s=0.8 * tput, throughput_ratio=tput / 400.0)
            attrs["costs"].update(throughput_img_s=0.8 * tput, ratio_samples=[tput / 400.0], throughput_ratio=tput / 400.0)
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
        t.costs["throughput_img_s_interval"]["level"] = 0.75
        t.costs["throughput_img_s_samples"] = [1.0, 2.0, 3.0]
    assert "speed 75% (the whole range of 3 repeats; 5 or more reach 90%)" in intervals_text(view)


# --------------------------------------------------------------------------- one name, one figure
@pytest.fixture
def paired_study(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return repeats_study(Path("studies") / "paired", paired=True)


def test_the_paired_and_the_measured_speed_are_told_apart_everywhere(paired_study, capsys):
    import yaml

    from wfsearch.report import captions, render_html, report_data

    view = read_study(paired_study)
    text = show_text(view)
    head = next(line for line in text.splitlines() if line.startswith("trial "))
    assert "img/s paired" in head and "img/s measured" in head
    row0 = next(line for line in text.splitlines() if line.startswith("0 "))
    assert " 800.0 " in row0 and " 640.0 " in row0  # the objective, and what the trial measured
    assert captions(view)["throughput"].startswith("throughput = img/s paired of the deployed network, derived: its "
                                                   "ratio to deit_tiny_patch16_224 measured alongside it, times "
                                                   "deit_tiny_patch16_224's 400.0 img/s")
    fig = figures.pareto_figure(pareto_data(view))
    assert fig.layout.xaxis.title.text.startswith("img/s paired (derived: ratio x the reference's img/s)")
    hovers = [h for t in fig.data if t.meta["role"] == "front" for h in t.hovertext]
    assert any("accuracy 0.6 · img/s paired 800 · img/s measured 640 · ratio 2" in h for h in hovers)
    rc, out, _ = cli(["export", paired_study, "--trial", "0"], capsys)
    assert rc == 0 and ("trial 0: accuracy 0.6000 (proxy top-1); 800.0 img/s paired (derived: ratio 2 x the "
                        "reference's 400.0 img/s); 640.0 img/s measured -> ") in out
    text = (paired_study / "recipes" / "trial-0.yaml").read_text()
    notes = {line.split(":")[0].strip(): line.split("#", 1)[1].strip() for line in text.splitlines()
             if line.startswith("    throughput") and "#" in line}
    assert notes == {"throughput": "img/s paired (derived: ratio x the reference's img/s)",
                     "throughput_img_s": "img/s measured (this trial's own)",
                     "throughput_ratio": "ratio to the reference (paired, measured alongside)"}
    assert yaml.safe_load(text)["provenance"]["metrics"]["throughput_img_s"] == 640.0  # comments leave values alone
    from wfsearch.export.recipe import _noted

    costs = _noted("provenance:\n  costs:\n    throughput_img_s: 640.0\n")  # where the search measured the network built
    assert costs.endswith("throughput_img_s: 640.0  # img/s measured (this trial's own)\n")
    page = render_html(report_data(view))
    assert "<th>img/s paired</th>" in page and "<th>img/s measured</th>" in page


def test_labels_say_which_network_and_which_unit(repeats, tmp_path, capsys):
    view = read_study(repeats)
    fig = figures.pareto_figure(pareto_data(view))
    hover = next(t for t in fig.data if t.meta["role"] == "front").hovertext[0]
    assert "deployed network (32 px, 1000 classes): params " in hover
    assert "proxy network (trained for accuracy): img_size=16" in hover
    head = next(line for line in show_text(view).splitlines() if line.startswith("trial "))
    assert "MACs (k)" in head and "params (k)" in head  # not "0.000" G for every row
    hv = figures.hypervolume_figure(hypervolume_data(view))
    assert hv.layout.yaxis.title.text == "normalized hypervolume (0..1, fixed box)"
    rc, out, _ = cli(["validate", Path(__file__).resolve().parents[1] / "spaces" / "smoke.yaml"], capsys)
    cost = [line for line in out.splitlines() if "params " in line or "MACs " in line]
    assert rc == 0 and "deployed network (the design at 32px, 1000 classes" in cost[0] and "proxy" in cost[0]
    assert "deployed;" in cost[1] and "proxy network (at 16px, 4 classes" in cost[1]


def test_a_simulated_study_says_it_was_replayed(tmp_path, monkeypatch):
    from wfsearch.report import captions, render_html, report_data
    from test_readme_examples import ROOT

    monkeypatch.chdir(tmp_path)
    assert main(["simulate", str(ROOT / "benchmarks/tables/predictors-table.yaml"), "--table",
                 str(ROOT / "benchmarks/tables/predictors"), "--trials", "6", "-o", "studies/sim"]) == 0
    view = read_study(Path("studies/sim"))
    page = render_html(report_data(view))
    assert "?" not in page.split("<dt>hardware</dt><dd>")[1].split("</dd>")[0]
    assert "replayed from the table" in page.split("<dt>hardware</dt><dd>")[1].split("</dd>")[0]
    cap = captions(view)["throughput"]
    assert "on auto" not in cap and "replayed from the table" in cap and cap.startswith("throughput = img/s paired")


def test_sample_names_the_memory_estimate_apart_from_the_measured_peak(capsys):
    import yaml

    from test_readme_examples import ROOT

    assert main(["sample", str(ROOT / "spaces" / "smoke.yaml"), "-n", "2"]) == 0
    out = capsys.readouterr().out
    doc = yaml.safe_load(out)
    assert all("memory_estimate" in s["deployed"] and "memory" not in s["deployed"] for s in doc)
    assert "`memory_estimate`: bytes of one training step of the deployed network estimated before training" in out
    assert "the search stores the measured peak as `memory`" in out
