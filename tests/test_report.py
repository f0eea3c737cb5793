"""`wfsearch report`, `show`, `dashboard`: the data behind the plots, the page, the commands, odd studies."""
from __future__ import annotations

import datetime
import re
import shlex
import sys
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

import wfsearch
from wfsearch.cli import main
from wfsearch.errors import UserError
from wfsearch.models import MODEL_SIZES, ArchConfig, cost
from wfsearch.report import (hypervolume_data, importance_data, macs_at, parallel_data, pareto_data, render_html,
                             report_data, scaling_data, show_text, write_report)
from wfsearch.study import pareto_front, read_records, references_study_name
from wfsearch.study import read_study

TEST_SIZE = {**MODEL_SIZES["weightformer_test"], "img_size": 16}
SPACE = {"fc1_predictor": {"choice": ["none", "bilateral", "deep"]},
         "dwconv_predictor": {"choice": ["none", "adaptive", "ampdir"]},
         "rank_ratio": {"choice": [2, 4], "when": {"fc1_predictor": ["bilateral", "deep"]}}}
DISTRIBUTIONS = {"fc1_predictor": CategoricalDistribution(("none", "bilateral", "deep")),
                 "dwconv_predictor": CategoricalDistribution(("none", "adaptive", "ampdir")),
                 "rank_ratio": CategoricalDistribution((2, 4))}
# (fc1, dwconv, rank_ratio or None when not sampled, accuracy, throughput): 0-2 on the front
TRAINED = [
    ("bilateral", "adaptive", 4, 0.60, 800.0),
    ("none", "none", None, 0.40, 1500.0),
    ("deep", "ampdir", 2, 0.65, 500.0),
    ("bilateral", "none", 2, 0.45, 700.0),  # dominated by 0
    ("none", "adaptive", None, 0.38, 1400.0),  # dominated by 1
    ("deep", "adaptive", 4, 0.55, 600.0),  # dominated by 0
]
FRONT = [0, 1, 2]
T0 = datetime.datetime(2026, 1, 1, 12, 0, 0)
OBJECTIVES = [{"name": "accuracy", "direction": "maximize"}, {"name": "throughput", "direction": "maximize"}]


def _arch(fc1: str, dwconv: str, rank: int | None) -> ArchConfig:
    return ArchConfig(**TEST_SIZE, fc1_predictor=fc1, dwconv_predictor=dwconv, rank_ratio=rank or 4)


def _attrs(cfg: ArchConfig, acc: float | None, tput: float | None, reason: str = "ok", **extra) -> dict:
    c = cost(cfg)
    metrics = {"params": c["params"], "macs": c["macs"]}
    if tput is not None:
        metrics.update(throughput=tput, throughput_ratio=tput / 1000.0)
    if acc is not None:
        metrics.update(accuracy=acc, loss=1.0 - acc)
    costs = {**c, **({"throughput_img_s": tput, "throughput_ratio": tput / 1000.0} if tput is not None else {})}
    curve = [{"epoch": 1, "accuracy": acc / 2, "loss": 1.2}, {"epoch": 2, "accuracy": acc, "loss": 1.0}] if acc else []
    return {"kind": "search", "arch": cfg.to_dict(), "arch_hash": cfg.hash, "metrics": metrics, "costs": costs,
            "curve": curve, "status_reason": reason, "proxy": {"epochs": [1, 2]}, "constraints": [0.0], **extra}


def _add(study: optuna.Study, i: int, **kwargs) -> None:
    t = create_trial(**kwargs)
    t.datetime_start = T0 + datetime.timedelta(seconds=10 * i)
    if t.state != TrialState.RUNNING:
        t.datetime_complete = T0 + datetime.timedelta(seconds=10 * i + 8)
    study.add_trial(t)


def new_study(folder: Path, directions=("maximize", "maximize")) -> optuna.Study:
    """An empty study with the study attributes `wfsearch run` writes (docs/CONTRACTS.md)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name=folder.name, storage=f"sqlite:///{folder / 'optuna.db'}",
                                directions=list(directions))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["accuracy", "throughput"])
    study.set_user_attr("objectives", [{**o, "direction": d} for o, d in zip(OBJECTIVES, directions)])
    study.set_user_attr("spec", {"study": {"name": folder.name}, "space": SPACE,
                                 "throughput": {"img_size": 32, "batch_size": 4, "device": "cpu", "dtype": "float32"}})
    study.set_user_attr("spec_hash", "0123abcd")
    study.set_user_attr("spec_path", "spaces/test.yaml")
    study.set_user_attr("wfsearch_version", wfsearch.__version__)
    study.set_user_attr("hardware", {"cpu": "x86_64", "cpu_count": 2, "torch": "2.x"})
    return study


def make_study(folder: Path) -> optuna.Study:
    """Six trained trials (front 0, 1, 2), then pruned, failed (oom, diverged), infeasible, running; two references."""
    study = new_study(folder)
    for i, (fc1, dw, rank, acc, tput) in enumerate(TRAINED):
        params = {"fc1_predictor": fc1, "dwconv_predictor": dw, **({"rank_ratio": rank} if rank else {})}
        _add(study, i, values=[acc, tput], params=params, distributions={k: DISTRIBUTIONS[k] for k in params},
             user_attrs=_attrs(_arch(fc1, dw, rank), acc, tput))
    cfg = _arch("bilateral", "ampdir", 2)
    params = {"fc1_predictor": "bilateral", "dwconv_predictor": "ampdir", "rank_ratio": 2}
    _add(study, 6, state=TrialState.PRUNED, params=params, distributions=DISTRIBUTIONS,  # 6: score so far 0.3
         user_attrs=_attrs(cfg, None, 900.0, "pruned at epoch 1", curve=[{"epoch": 1, "accuracy": 0.3, "loss": 1.3}]))
    _add(study, 7, state=TrialState.FAIL, user_attrs=_attrs(cfg, None, None, "oom: CUDA out of memory"))  # 7
    _add(study, 8, state=TrialState.FAIL, user_attrs=_attrs(cfg, None, 950.0, "diverged"))  # 8: no accuracy
    big = ArchConfig(**{**TEST_SIZE, "embed_dim": 512})
    _add(study, 9, values=[0.0, 2000.0], user_attrs={  # 9: not trained, would be on Optuna's front
        "kind": "search", "arch": big.to_dict(), "status_reason": "infeasible: params <= 1e5 violated",
        "constraints": [1.0], "metrics": {"params": cost(big)["params"]}})
    running = study.ask()  # 10: still running
    assert running.number == 10
    refs = optuna.create_study(study_name=references_study_name(folder.name), storage=f"sqlite:///{folder / 'optuna.db'}",
                               directions=["maximize", "maximize"])
    static = _arch("none", "none", None)
    refs.add_trial(create_trial(values=[0.42, 1300.0], user_attrs={
        **_attrs(static, 0.42, 1300.0), "kind": "reference", "reference_name": "all_static"}))
    refs.add_trial(create_trial(values=[0.50, 400.0], user_attrs={
        "kind": "reference", "reference_name": "deit_tiny", "timm_model": "deit_tiny_patch16_224",
        "metrics": {"accuracy": 0.50, "throughput": 400.0, "params": 5.7e6}}))
    return study


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pristine") / "studies" / "mixed"
    make_study(folder)
    return folder


@pytest.fixture
def study_dir(pristine: Path, tmp_path: Path, monkeypatch) -> Path:
    """A copy of the mixed study at ``studies/mixed`` under a fresh working directory."""
    folder = tmp_path / "studies" / "mixed"
    folder.mkdir(parents=True)
    (folder / "optuna.db").write_bytes((pristine / "optuna.db").read_bytes())
    monkeypatch.chdir(tmp_path)
    return Path("studies/mixed")


@pytest.fixture(scope="module")
def view(pristine: Path):
    return read_study(pristine)


def cli(args: list, capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


# ---- the data ----

def test_view_reads_groups_front_and_references(view) -> None:
    assert view.name == "mixed" and view.objectives == ("accuracy", "throughput")
    assert [t.number for t in view.front] == FRONT == [t.number for t in pareto_front(read_records(view_study(view)), view.directions)]
    assert view.counts() == {"front": 3, "dominated": 3, "repeat": 0, "infeasible": 1, "pruned": 1, "failed": 2,
                             "running": 1}
    assert view.failure_reasons() == {"oom": 1, "diverged": 1}
    assert [r.name for r in view.references] == ["all_static", "deit_tiny"]


def view_study(view) -> optuna.Study:
    return optuna.load_study(study_name=view.name, storage=f"sqlite:///{view.folder / 'optuna.db'}")


def test_front_points_are_optunas_best_trials_of_the_trained_trials(view) -> None:
    data = pareto_data(view)
    trained = [t.trial for t in read_records(view_study(view), (TrialState.COMPLETE,)) if t.trained]
    scratch = optuna.create_study(directions=["maximize", "maximize"])
    for t in trained:
        scratch.add_trial(create_trial(values=t.values, user_attrs={"number": t.number}))
    best = {t.user_attrs["number"] for t in scratch.best_trials}
    assert {p.number for p in data.group("front")} == best == set(FRONT)
    assert (data.x, data.y) == ("throughput", "accuracy")
    assert {p.number for p in data.group("dominated")} == {3, 4, 5}
    assert [(p.number, p.y, p.x) for p in data.group("pruned")] == [(6, 0.3, 900.0)]  # its curve's last score
    assert [p.number for p in data.group("infeasible")] == [9]
    assert data.group("failed") == [] and data.unplotted == {"failed": 2, "running": 1}
    assert [(p.label, p.x, p.y) for p in data.group("reference")] == [("all_static", 1300.0, 0.42),
                                                                     ("deit_tiny", 400.0, 0.50)]
    p0 = next(p for p in data.points if p.number == 0)
    assert (p0.fc1, p0.dwconv, p0.arch["rank_ratio"], p0.costs["throughput_ratio"]) == ("bilateral", "adaptive", 4, 0.8)


def test_axes_and_front_line_follow_the_objectives(view, tmp_path: Path) -> None:
    from wfsearch.report.figures import pareto_figure

    roles = [t.meta["role"] for t in pareto_figure(pareto_data(view)).data]
    assert roles.count("front-line") == 1 and roles.count("front") == 3  # one trace per fc1 predictor
    study = optuna.create_study(study_name="three", storage=f"sqlite:///{tmp_path / 'optuna.db'}",
                                directions=["maximize", "minimize", "maximize"])
    study.set_user_attr("objectives", [{"name": n, "direction": d} for n, d in
                                       (("accuracy", "maximize"), ("params", "minimize"), ("throughput", "maximize"))])
    for fc1, dw, rank, acc, tput in TRAINED:
        attrs = _attrs(_arch(fc1, dw, rank), acc, tput)
        study.add_trial(create_trial(values=[acc, attrs["metrics"]["params"], tput], user_attrs=attrs))
    three = read_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    data = pareto_data(three)
    assert (data.x, data.y, data.x_direction, data.n_objectives) == ("throughput", "accuracy", "maximize", 3)
    assert "front-line" not in [t.meta["role"] for t in pareto_figure(data).data]  # no staircase in a projection
    box = hypervolume_data(three).box  # params (minimized): s/(v + s), s the first trained trial's params
    first = three.finished()[0].values[1]
    assert box.half[1] == first and box.normalize([(0.5, first, 800.0)])[0, 1] == 0.5


def test_hypervolume_history(view) -> None:
    hv = hypervolume_data(view)
    # the normalized hypervolume in the study's fixed box: accuracy from chance (10 classes) to 1, throughput
    # v/(v + s) with s the first trained trial's (no reference speed stored)
    assert (hv.box.worst[0], hv.box.best[0], hv.box.half) == (0.1, 1.0, (None, 800.0))
    assert "normalized" in hv.describe() and "fixed for the whole study" in hv.describe()
    assert [s.number for s in hv.steps] == list(range(10))  # complete, pruned and failed trials; not the running one
    assert [s.finished for s in hv.steps] == list(range(1, 11))
    assert [s.seconds for s in hv.steps] == [10.0 * i + 8 for i in range(10)]
    assert hv.final == pytest.approx(hv.box.hypervolume([t.values for t in view.front])) and 0 < hv.final < 1
    values = [s.hypervolume for s in hv.steps]
    assert values == sorted(values) and values[0] > 0


def test_importances_per_objective(view) -> None:
    items = importance_data(view)
    assert [i.objective for i in items] == ["accuracy", "throughput"]
    for item in items:
        # rank_ratio is sampled only when fc1 is bilateral or deep: not comparable over all trials
        assert {k for k, _ in item.importances} == {"fc1_predictor", "dwconv_predictor"}
        assert sum(v for _, v in item.importances) == pytest.approx(1.0)
        assert "rank_ratio" in item.note and item.evaluator


def test_importances_with_too_few_trials_or_constant_knobs(tmp_path: Path) -> None:
    study = new_study(tmp_path / "few")
    p = {"fc1_predictor": "bilateral", "dwconv_predictor": "none"}
    dists = {k: DISTRIBUTIONS[k] for k in p}
    _add(study, 0, values=[0.5, 100.0], params=p, distributions=dists, user_attrs=_attrs(_arch("bilateral", "none", 4), 0.5, 100.0))
    items = importance_data(read_study(tmp_path / "few"))
    assert all(not i.importances and "at least 2" in i.note for i in items)
    _add(study, 1, values=[0.6, 90.0], params=p, distributions=dists, user_attrs=_attrs(_arch("bilateral", "none", 4), 0.6, 90.0))
    items = importance_data(read_study(tmp_path / "few"))  # the same knobs twice: nothing varies
    assert all(not i.importances and "constant" in i.note and "fc1_predictor" in i.note for i in items)


def test_parallel_coordinates(view) -> None:
    par = parallel_data(view)
    assert [a.name for a in par.axes] == ["fc1_predictor", "dwconv_predictor", "rank_ratio", "accuracy", "throughput"]
    assert sorted(par.numbers) == list(range(6)) and par.numbers[-3:] == (0, 1, 2)  # the front drawn last
    assert par.on_front == tuple(n in FRONT for n in par.numbers)
    fc1 = par.axes[0]
    assert fc1.categories == ("none", "bilateral", "deep")  # the distribution's order
    assert [fc1.categories[int(v)] for v in fc1.values] == [TRAINED[n][0] for n in par.numbers]
    rank = par.axes[2]
    assert rank.categories == ("2", "4", "n/a")  # trials with fc1=none never sampled it
    assert par.axes[4].values == tuple(TRAINED[n][4] for n in par.numbers)


def test_front_rows_carry_working_export_commands(study_dir: Path, capsys) -> None:
    data = report_data(read_study(study_dir))
    assert [r.number for r in data.front] == [2, 0, 1]  # best accuracy first
    assert data.front[0].command == "wfsearch export studies/mixed --trial 2"
    assert data.front[0].arch == "fc1=deep dwconv=ampdir rank_ratio=2"
    assert data.front[0].values == {"accuracy": 0.65, "throughput": 500.0, "throughput_ratio": 0.5,
                                    "params": data.front[0].values["params"], "macs": data.front[0].values["macs"]}
    assert [r.label for r in data.references] == ["all_static", "deit_tiny"]
    assert data.references[1].arch == "timm:deit_tiny_patch16_224"
    rc, out, err = cli(shlex.split(data.front[0].command)[1:], capsys)
    assert rc == 0, err
    assert (study_dir / "recipes" / "trial-2.yaml").is_file()


def test_export_command_of_a_study_opened_by_url(pristine: Path) -> None:
    url = f"sqlite:///{pristine / 'optuna.db'}"
    view = read_study(storage=url, study_name="mixed")
    assert view.export_command(0) == f"wfsearch export --storage {url} --study mixed --trial 0"


# ---- scaling against resolution ----

def test_analytic_macs_scale_linearly_in_tokens_attention_quadratically() -> None:
    tiny = ArchConfig().to_dict()  # the released WeightFormer-Tiny
    assert macs_at(tiny, 448) == cost(ArchConfig(), 448)["macs"]
    assert macs_at(TEST_SIZE | {"patch_size": 4}, 30) is None  # 30 px is no multiple of the patch
    wf = [macs_at(tiny, r) for r in (448, 896)]
    deit = [macs_at("deit_tiny_patch16_224", r) for r in (224, 448, 896)]
    assert deit[0] == pytest.approx(1.25e9, rel=0.02)  # counted on the meta device
    from wfsearch.report.scaling import ScalingData, ScalingSeries

    sd = ScalingData(resolutions=(448, 896), series=(ScalingSeries("wf", "front", tuple(wf)),
                                                    ScalingSeries("deit", "reference", tuple(deit[1:]))),
                     measured=False, batch_size=1, device="cpu")
    assert 0.95 < sd.exponent(sd.series[0]) < 1.01  # O(N)
    assert sd.exponent(sd.series[1]) > 1.5  # attention's N² takes over


def test_scaling_data_of_front_and_references(view, tmp_path: Path) -> None:
    targets = scaling_data(view, (32, 64), measure=False)
    assert [(s.label, s.kind) for s in targets.series] == [
        ("trial 0", "front"), ("trial 1", "front"), ("trial 2", "front"),
        ("all_static", "reference"), ("deit_tiny", "reference")]
    assert targets.resolutions == (32, 64) and not targets.measured and targets.series[0].throughput == ()
    assert all(m is not None and m > 0 for s in targets.series for m in s.macs)
    few = scaling_data(view, (32, 16, 32), measure=False, max_front=2)
    assert few.resolutions == (16, 32) and few.note == "2 of 3 front trials shown"
    assert [s.label for s in few.series][:2] == ["trial 1", "trial 2"]  # spread along the front
    # measured: a small study (building a timm reference costs seconds on a loaded CPU)
    study = new_study(tmp_path / "small")
    for i, (fc1, dw, rank, acc, tput) in enumerate(TRAINED[:2]):
        _add(study, i, values=[acc, tput], user_attrs=_attrs(_arch(fc1, dw, rank), acc, tput))
    import torch

    threads = torch.get_num_threads()
    sd = scaling_data(read_study(tmp_path / "small"), (16, 32), measure=True, batch_size=1, device="cpu", repeats=1)
    assert torch.get_num_threads() == threads  # one thread while measuring, then as before
    assert sd.measured and sd.device == "cpu, 1 thread, CPU time" and [s.label for s in sd.series] == ["trial 0", "trial 1"]
    for s in sd.series:
        assert len(s.throughput) == 2 and all(v is not None and v > 0 for v in s.throughput)
        assert s.macs[1] > s.macs[0] > 0


# ---- the page ----

def test_page_is_self_contained_with_plotly_once(view) -> None:
    import plotly.offline

    page = render_html(report_data(view, scaling_data(view, (32, 64), measure=False)))
    banner = plotly.offline.get_plotlyjs()[:200]
    assert page.count(banner) == 1
    ours = page.replace(plotly.offline.get_plotlyjs(), "")
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|https?://", ours)  # nothing to fetch
    for anchor in ("pareto", "hypervolume", "importances", "parallel", "scaling"):
        assert f'<div id="{anchor}" class="plot"' in page
    assert 'data-front-points="3"' in page
    assert "wfsearch export " + str(view.folder) in page
    assert "hypervolume" in page and "fixed for the whole study" in page  # the normalized hypervolume, its box stated
    assert "oom ×1" in page and "still writing" in page


@pytest.mark.parametrize("kind", ["empty", "running", "failed"])
def test_odd_studies_give_a_clear_report(kind: str, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    study = new_study(Path("studies") / kind)
    if kind == "running":
        study.ask()
    elif kind == "failed":
        _add(study, 0, state=TrialState.FAIL, user_attrs=_attrs(_arch("none", "none", None), None, None, "diverged"))
        _add(study, 1, state=TrialState.PRUNED, user_attrs=_attrs(_arch("none", "none", None), None, 300.0, "pruned at epoch 1",
                                                                  curve=[{"epoch": 1, "accuracy": 0.2, "loss": 1.5}]))
    rc, out, err = cli(["report", f"studies/{kind}", "--no-scaling"], capsys)
    assert rc == 0, err
    page = (tmp_path / "studies" / kind / "report.html").read_text()
    message = {"empty": "no trials yet", "running": "No trained trial yet", "failed": "diverged ×1"}[kind]
    assert message in page and message in out
    assert 'data-front-points="0"' in page
    rc, out, err = cli(["show", f"studies/{kind}"], capsys)
    assert rc == 0 and err == ""
    assert ("no trials yet" if kind == "empty" else "no trained trial yet") in out


# ---- the commands ----

def test_report_command(study_dir: Path, capsys) -> None:
    rc, out, err = cli(["report", study_dir, "--no-scaling", "--scaling-res", "32", "64"], capsys)
    assert rc == 0, err
    assert out.splitlines()[-1] == f"report: {study_dir / 'report.html'}"
    assert "3 on the Pareto front" in out and "still writing" in out
    page = (study_dir / "report.html").read_text()
    assert '<div id="scaling" class="plot"' in page and "analytic MACs (throughput not measured" in page
    rc, out, err = cli(["report", "--storage", f"sqlite:///{study_dir / 'optuna.db'}", "-o", "elsewhere/r.html",
                        "--no-scaling"], capsys)
    assert rc == 0 and Path("elsewhere/r.html").is_file()


def test_show_command(study_dir: Path, capsys) -> None:
    rc, out, err = cli(["show", study_dir], capsys)
    assert rc == 0 and err == ""
    assert out.isascii()
    lines = out.splitlines()
    assert "trials: 6 architectures trained, 1 pruned, 2 failed, 1 infeasible, 1 running; 3 on the Pareto front" in lines
    assert "failures: oom x1, diverged x1" in lines
    rows = [l.split()[0] for l in lines[lines.index("Pareto front (export a row with the command under it)") + 3:]
            if l and not l.startswith(" ")][:3]
    assert rows == ["2", "0", "1"]
    assert "    wfsearch export studies/mixed --trial 2" in lines
    assert any(l.startswith("all_static") for l in lines) and any("timm:deit_tiny_patch16_224" in l for l in lines)
    assert show_text(read_study(study_dir)) == out.rstrip("\n")


def test_show_every_trial_as_json_csv_and_table(study_dir: Path, capsys) -> None:
    import csv
    import io
    import json

    rc, out, err = cli(["show", study_dir, "--json"], capsys)
    assert rc == 0 and err == ""
    doc = json.loads(out)
    assert doc["objectives"] == ["accuracy", "throughput"] and doc["front"] == FRONT
    trials = {t["number"]: t for t in doc["trials"]}
    assert sorted(trials) == list(range(11))  # every search trial, not only the front
    t0 = trials[0]
    assert (t0["state"], t0["status"], t0["group"]) == ("COMPLETE", "ok", "front")
    assert t0["values"] == {"accuracy": 0.60, "throughput": 800.0}
    assert t0["design"] == {"fc1_predictor": "bilateral", "dwconv_predictor": "adaptive", "rank_ratio": 4}
    assert t0["proxy_arch"]["fc1_predictor"] == "bilateral" and t0["proxy_arch"]["img_size"] == 16
    assert t0["deployed_arch"] == {**t0["proxy_arch"], "num_classes": 1000, "img_size": 32}  # at throughput.img_size
    assert t0["deployed_costs"]["throughput_ratio"] == 0.8 and t0["deployed_costs"]["params"] > 0
    assert [(trials[n]["state"], trials[n]["status"]) for n in (6, 7, 8, 9, 10)] == [
        ("PRUNED", "pruned"), ("FAIL", "oom"), ("FAIL", "diverged"), ("COMPLETE", "infeasible"), ("RUNNING", None)]
    rc, out, _ = cli(["show", study_dir, "--csv"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rc == 0 and [int(r["number"]) for r in rows] == list(range(11))
    # flat, as Optuna's trials_dataframe(): values_<objective>, params_<knob>, times; intervals, raw speed, costs
    r0 = rows[0]
    assert r0["status"] == "ok" and float(r0["values_accuracy"]) == 0.6 and float(r0["values_throughput"]) == 800.0
    assert (r0["params_fc1_predictor"], r0["params_dwconv_predictor"], r0["params_rank_ratio"]) == ("bilateral", "adaptive", "4")
    assert rows[1]["params_rank_ratio"] == ""  # not sampled by this trial
    assert float(r0["duration_s"]) == 8.0 and r0["datetime_start"].startswith("2026-01-01")
    assert {"accuracy_low", "accuracy_high", "throughput_low", "throughput_img_s", "throughput_img_s_low",
            "throughput_ratio", "deployed_params", "deployed_macs", "repeat_of"} <= set(r0)
    assert float(r0["throughput_ratio"]) == 0.8 and float(r0["deployed_params"]) == t0["deployed_costs"]["params"]
    assert not any(v.startswith("{") for v in r0.values())  # nothing nested
    rc, out, _ = cli(["show", study_dir, "--all"], capsys)
    lines = out.splitlines()
    header = next(l for l in lines if l.startswith("trial"))
    assert rc == 0 and "accuracy" in header and "img/s" in header and "params (k)" in header and "status" in header
    assert sum(1 for l in lines if l.split() and l.split()[0].isdigit()) == 11
    assert any("oom: CUDA out of memory" in l for l in lines) and any(l.startswith("scales: ") for l in lines)


def test_show_sorts_keeps_the_top_and_reads_the_database_file(study_dir: Path, capsys) -> None:
    import csv
    import io

    rc, out, _ = cli(["show", study_dir, "--csv", "--sort", "accuracy", "--top", "3"], capsys)
    assert rc == 0 and [int(r["number"]) for r in csv.DictReader(io.StringIO(out))] == [2, 0, 5]
    rc, out, _ = cli(["show", study_dir, "--all", "--sort", "throughput", "--reverse", "--top", "2"], capsys)
    rows = [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0].isdigit()]
    assert rc == 0 and rows == ["2", "5"]  # the slowest first
    rc, out, _ = cli(["show", study_dir, "--sort", "params", "--top", "1"], capsys)  # the front, largest first
    assert rc == 0 and out.count("wfsearch export studies/mixed --trial") == 1
    rc, out, _ = cli(["show", study_dir / "optuna.db"], capsys)  # the database file, as Optuna users pass it
    assert rc == 0 and out.startswith("study 'mixed'") and "wfsearch export studies/mixed --trial 0" in out
    rc, out, err = cli(["show", study_dir, "--sort", "acc"], capsys)
    assert rc == 2 and "--sort: 'acc': unknown; the trials have ['accuracy'," in err


@pytest.mark.parametrize("args, message", [
    (["report", "studies/nope"], "studies/nope: no such study folder"),
    (["show", "studies"], "studies/optuna.db: no study database here"),
    (["report"], "give a study folder (studies/<name>) or --storage URL"),
    (["show", "studies/mixed", "--study", "other"], "--study: 'other': no such study"),
    (["report", "studies/mixed", "--scaling-batch", "0"], "--scaling-batch: 0: must lie in [1, 1000000000]"),
])
def test_mistakes_are_one_line(args, message, study_dir: Path, capsys) -> None:
    rc, out, err = cli(args, capsys)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("wfsearch: error: ") and message in err, err


def test_dashboard_without_optuna_dashboard_is_one_line(study_dir: Path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # import fails as if not installed
    rc, out, err = cli(["dashboard", study_dir], capsys)
    assert rc == 2 and err == ("wfsearch: error: dashboard: optuna-dashboard is not installed; "
                               "pip install 'wfsearch[dashboard]' (or pip install optuna-dashboard)\n")


def test_write_report_replaces_the_file_whole(view, tmp_path: Path) -> None:
    path = write_report(report_data(view), tmp_path / "r" / "report.html")
    assert path.read_text().startswith("<!DOCTYPE html>") and not list(path.parent.glob("*.tmp"))


def test_parallel_coordinates_treat_a_choice_as_categories(view) -> None:
    axes = {a.name: a for a in parallel_data(view).axes}
    assert axes["rank_ratio"].categories == ("2", "4", "n/a")  # three values, not a 2-4 range
    from wfsearch.report.figures import _dimension

    acc = _dimension(axes["accuracy"])
    assert acc["ticktext"] == ["0.380", "0.448", "0.515", "0.583", "0.650"]  # one precision for the axis


def test_captions_say_what_accuracy_and_throughput_are(view) -> None:
    from wfsearch.report import captions

    c = captions(view)
    assert "after 2 epochs of proxy training" in c["accuracy"] and "not an ImageNet number" in c["accuracy"]
    # the mixed study's trials kept no per-repeat ratios: their throughput is the img/s each measured
    assert c["throughput"].startswith("throughput = img/s measured of the deployed network, at 32 px, batch 4, "
                                      "float32, on cpu")


def test_learning_curves_and_the_table_of_every_trial(view) -> None:
    from wfsearch.report import curves_data, trial_rows

    curves = curves_data(view)
    assert curves.rungs == (1, 2) and curves.metric == "accuracy"
    assert [(c.number, c.group) for c in curves.curves] == [(6, "pruned"), (3, "dominated"), (4, "dominated"),
                                                            (5, "dominated"), (0, "front"), (1, "front"), (2, "front")]
    assert curves.curves[-1].epochs == (1.0, 2.0) and curves.curves[-1].values == (0.325, 0.65)
    rows = {r.number: r for r in trial_rows(view)}
    assert len(rows) == 11 and (rows[7].status, rows[7].reason) == ("failed", "oom: CUDA out of memory")
    assert (rows[6].status, rows[6].epochs, rows[10].status) == ("pruned", 1, "running")


def test_tables_have_units_and_commands_that_wrap_between_arguments(view) -> None:
    page = render_html(report_data(view, scaling_data(view, (32, 64), measure=False)))
    # the text table's columns, headers (units in them) and number formatting (`wfsearch.report.table`)
    # (the test network's MACs and params in the unit that fits them, not 0.002 G)
    assert "<th>img/s measured</th>" in page and "<th>MACs (k)</th>" in page and "<th>params (k)</th>" in page
    assert f"<span>wfsearch</span> <span>export</span> <span>{view.folder}</span> <span>--trial 2</span>" in page
    assert 'id="trials-table"' in page and 'id="sec-curves"' in page and f"{view.name}:references" in page


def test_scaling_panels_stack_and_use_the_pareto_markers(view) -> None:
    import dataclasses

    from wfsearch.report import figures

    sc = scaling_data(view, (224, 448, 896), measure=False)
    sc = dataclasses.replace(sc, measured=True, series=tuple(
        dataclasses.replace(s, throughput=(100.0, 25.0, 6.0)) for s in sc.series))
    styles = figures.trial_styles(pareto_data(view))
    fig = figures.scaling_figure(sc, styles)
    assert fig.layout.xaxis2.domain == fig.layout.xaxis.domain  # one column: stacked, full width
    trial0 = next(t for t in fig.data if t.name.startswith("trial 0 "))
    assert (trial0.line.color, trial0.marker.symbol) == (styles["trial 0"]["color"], styles["trial 0"]["symbol"])
    assert fig.layout.yaxis2.dtick == 1 and fig.layout.yaxis2.tickformat == "~s"  # MACs span decades
