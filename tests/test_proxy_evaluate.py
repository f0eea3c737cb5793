"""evaluate_arch (costs, then proxy training, as a status), `wfsearch evaluate` and `wfsearch proxy-check`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from wfsearch.cli import main
from wfsearch.errors import UserError
from wfsearch.proxy.evaluate import evaluate_arch
from wfsearch.proxy.fidelity import FidelityRow, summarize
from wfsearch.space import ProxySpec, load_spec
from wfsearch.study import first_violation

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "spaces" / "smoke.yaml")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def spec():
    return load_spec(SMOKE, [])


def test_evaluate_measures_first_then_trains(spec):
    seen = []
    res = evaluate_arch(spec.fixed_arch(), spec.proxy, spec.throughput,
                        report=lambda e, partial: seen.append((e, dict(partial.metrics))))
    assert res.status == "ok" and res.reason == "ok"
    for key in ("accuracy", "loss", "throughput", "throughput_ratio", "params", "macs", "memory"):
        assert key in res.metrics, key
    assert 0 <= res.metrics["accuracy"] <= 1
    assert list(res.curve) == [{"epoch": 1, "accuracy": res.metrics["accuracy"], "loss": res.metrics["loss"]}]
    for key in ("params", "macs", "activation_bytes", "peak_memory_bytes", "throughput_img_s", "throughput_ratio"):
        assert key in res.costs, key
    # every per-epoch report already carries the costs, so a multi-objective scheduler can rank at a rung
    assert seen[0][0] == 1 and seen[0][1]["throughput"] == res.metrics["throughput"]
    # every measurement carries its 90% interval; the raw images/s stay a metric beside the paired objective
    acc = res.intervals["accuracy"]
    assert acc["low"] < res.metrics["accuracy"] < acc["high"] or res.metrics["accuracy"] in (0.0, 1.0)
    for key in ("throughput", "throughput_img_s", "throughput_ratio"):
        iv = res.intervals[key]
        assert iv["low"] <= res.metrics[key] == iv["value"] <= iv["high"], key
    assert res.metrics["throughput_img_s"] == res.costs["throughput_img_s"] and "throughput" not in res.costs
    assert res.metrics["accuracy_low"] == acc["low"] and res.metrics["throughput_high"] == res.intervals["throughput"]["high"]
    assert len(res.costs["throughput_img_s_samples"]) == len(res.costs["ratio_samples"]) == spec.throughput.repeats


def test_paired_speed_objective_ignores_machine_drift():
    """The same architecture measured in two trials, the machine 30% slower during the second: the raw
    images/s move by 30%, the stored objective (per-repeat ratio x the study's reference images/s) not."""
    from wfsearch.study.outcome import cost_intervals, cost_metrics
    from wfsearch.proxy.measure import Throughput, throughput_costs

    model, ref = [60.0, 62.0, 61.0], [30.0, 31.0, 30.5]
    fast = throughput_costs(Throughput(model), Throughput(ref))
    slow = throughput_costs(Throughput([0.7 * v for v in model]), Throughput([0.7 * v for v in ref]))
    a, b = cost_metrics(fast, reference_img_s=31.0), cost_metrics(slow, reference_img_s=31.0)
    assert b["throughput_img_s"] == pytest.approx(0.7 * a["throughput_img_s"])
    assert a["throughput"] == pytest.approx(b["throughput"]) == pytest.approx(2.0 * 31.0)
    iv = cost_intervals(fast, reference_img_s=31.0)["throughput"]
    assert iv["low"] == pytest.approx(62.0 / 31.0 * 31.0) and iv["value"] == pytest.approx(62.0)
    assert cost_metrics({"throughput_img_s": 50.0, "throughput_ratio": None}) == {"throughput": 50.0,
                                                                                "throughput_img_s": 50.0}


def test_a_study_written_before_the_rename_reads_under_the_current_names():
    """Older studies stored the measured images/s as ``costs.throughput`` and ``metrics.throughput_raw``: they
    are read as ``throughput_img_s``, and ``throughput`` then means only the speed objective."""
    from optuna.trial import create_trial

    from wfsearch.study import TrialRecord

    old = {"costs": {"throughput": 640.0, "throughput_samples": [630.0, 640.0, 650.0],
                     "throughput_interval": {"value": 640.0, "low": 630.0, "high": 650.0, "level": 0.75},
                     "ratio_samples": [2.0], "throughput_ratio": 2.0},
           "metrics": {"throughput": 800.0, "throughput_raw": 640.0, "throughput_raw_low": 630.0,
                       "throughput_raw_high": 650.0, "throughput_ratio": 2.0}, "kind": "search", "status": "ok"}
    r = TrialRecord.from_trial(create_trial(values=[0.5, 800.0], user_attrs=old))
    assert r.costs["throughput_img_s"] == 640.0 and "throughput" not in r.costs
    assert r.costs["throughput_img_s_samples"] == [630.0, 640.0, 650.0] and r.costs["throughput_img_s_interval"]["low"] == 630.0
    assert r.metrics == {"throughput": 800.0, "throughput_img_s": 640.0, "throughput_img_s_low": 630.0,
                         "throughput_img_s_high": 650.0, "throughput_ratio": 2.0}
    new = {**old, "costs": {"throughput_img_s": 640.0}, "metrics": {"throughput": 800.0, "throughput_img_s": 640.0}}
    assert TrialRecord.from_trial(create_trial(values=[0.5, 800.0], user_attrs=new)).costs == {"throughput_img_s": 640.0}


def test_pruned_infeasible_and_timm_targets(spec):
    pruned = evaluate_arch(spec.fixed_arch(), spec.proxy, spec.throughput, report=lambda e, m: True)
    assert pruned.status == "pruned" and pruned.reason == "pruned at epoch 1"
    infeasible = evaluate_arch(spec.fixed_arch(), spec.proxy, spec.throughput,
                               reject=lambda costs: first_violation([{"metric": "params", "op": "<=", "value": 10}], costs))
    assert infeasible.status == "infeasible" and infeasible.reason.startswith("infeasible: params=")
    assert infeasible.curve == () and "params" in infeasible.metrics
    timm = evaluate_arch("weightformer_test", spec.proxy, None)
    assert timm.status == "ok" and timm.costs == {} and "accuracy" in timm.metrics


def test_diverged_is_a_status(spec):
    proxy = spec.proxy.model_copy(update={"lr": 1e30, "grad_clip": None})
    res = evaluate_arch(spec.fixed_arch(), proxy, None)
    assert res.status == "diverged" and res.reason.startswith("diverged")


def test_missing_dataset_folder_is_a_user_error_before_measuring(spec, tmp_path):
    bad = load_spec(SMOKE, ["proxy.dataset.name=imagefolder", f"proxy.dataset.root={tmp_path / 'nope'}"])
    with pytest.raises(UserError, match=r"proxy\.dataset\.root: .*nope'?: no such folder"):
        evaluate_arch(bad.fixed_arch(), bad.proxy, bad.throughput)


def test_the_stored_proxy_is_the_spec_section(spec):
    """A trial stores ``proxy`` as the spec's JSON dict; evaluating from that dict is evaluating the spec."""
    from wfsearch.search.driver import reference_proposals

    stored = reference_proposals(spec)[0].attrs()["proxy"]
    assert stored == spec.proxy.model_dump(mode="json") and ProxySpec.model_validate(stored) == spec.proxy
    assert evaluate_arch(spec.fixed_arch(), stored, None).metrics == evaluate_arch(spec.fixed_arch(), spec.proxy,
                                                                                   None).metrics


def test_cli_evaluate(tmp_path, capsys):
    cfg = tmp_path / "arch.yaml"
    cfg.write_text("fc1_predictor: bilateral\ndwconv_predictor: adaptive\nrank_ratio: 4\n")
    out = tmp_path / "res.json"
    assert main(["evaluate", SMOKE, "--config", str(cfg), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "epoch   1  accuracy" in text and "status: ok" in text
    header = next(line for line in text.splitlines() if line.startswith("# measured on"))
    # the study's measurement setting: one thread per trial (resources.cpus_per_trial), timed by CPU time
    assert "(1 thread)" in header and "CPU time" in header and "batch" in header and "resolution" in header
    # the result is one row of the text table of `run` and `show`: same columns, units in the headers
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("model "))
    # the two speeds apart (the paired objective, derived; the trial's own), counts in the unit that fits them
    assert lines[head].split()[:8] == ["model", "accuracy", "img/s", "paired", "img/s", "measured", "ratio", "params"]
    assert "MACs (M)" in lines[head]
    assert lines[head + 2].startswith("arch ") and "the paired speed objective" in text
    assert json.loads(out.read_text())["status"] == "ok"
    cfg.write_text("rank_ratio: 5\nfc1_predictor: bilateral\n")
    assert main(["evaluate", SMOKE, "--config", str(cfg)]) == 2
    assert f"{cfg}: rank_ratio=5" in capsys.readouterr().err


def test_cli_proxy_check(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # --record writes the spec's study where `run` would: studies/smoke/
    out = tmp_path / "pc.json"
    rc = main(["proxy-check", SMOKE, "--archs", "2", "--seeds", "2", "--json", str(out), "--record"])
    text = capsys.readouterr().out
    assert rc == 0 and "spread / seed noise" in text and "Kendall tau" in text
    rep = json.loads(out.read_text())
    assert len(rep["rows"]) == 2 and all(len(r["curves"]) == 2 for r in rep["rows"])
    # --record: the study `run` opens next carries the seed noise, which widens its accuracy intervals
    import optuna
    study = optuna.load_study(study_name="smoke", storage=f"sqlite:///{tmp_path}/studies/smoke/optuna.db")
    assert study.user_attrs["seed_noise"] == pytest.approx(rep["seed_noise"])
    assert study.user_attrs["seed_noise_source"]["seeds"] == [0, 1] and "seed noise" in text and "recorded the verdict" in text
    assert not study.trials and study.user_attrs["spec_hash"]  # a study `run` resumes, with no trial yet
    # the verdict: printed last, stored with the study, and printed again by `show` beside the front
    verdict = study.user_attrs["proxy_verdict"]
    assert verdict["line"].startswith(("PASS: ", "FAIL: ")) and verdict["line"] in text
    assert verdict["passed"] == verdict["line"].startswith("PASS") and "icc" in verdict and "above_chance" in verdict
    assert "single-run reliability ICC(1,1)" in text and "runs above chance" in text
    assert main(["show", "studies/smoke"]) == 0
    assert f"proxy check: {verdict['line']}" in capsys.readouterr().out


def test_fidelity_statistics():
    rows = [FidelityRow("a", {}, {0: {1: 0.30, 3: 0.50}, 1: {1: 0.32, 3: 0.52}}),
            FidelityRow("b", {}, {0: {1: 0.20, 3: 0.30}, 1: {1: 0.22, 3: 0.32}}),
            FidelityRow("c", {}, {0: {1: 0.25, 3: 0.40}, 1: {1: 0.27, 3: 0.40}})]
    rep = summarize(rows, [0, 1], 1, 3)
    # within-arch variances 0.0002, 0.0002, 0 -> pooled std sqrt(0.0004/3); spread std(0.51, 0.31, 0.40)
    assert rep.seed_noise == pytest.approx((0.0004 / 3) ** 0.5)
    assert rep.spread == pytest.approx(0.1001665, rel=1e-4)
    assert rep.ratio == pytest.approx(rep.spread / rep.seed_noise)
    assert rep.tau_short_full == pytest.approx(1.0) and rep.tau_seeds == pytest.approx(1.0)


def test_exceptions_of_the_report_callback_reach_the_caller(spec):
    class StopTrial(Exception):
        pass

    def report(epoch, metrics):
        raise StopTrial("the scheduler says stop")

    with pytest.raises(StopTrial, match="the scheduler says stop"):
        evaluate_arch(spec.fixed_arch(), spec.proxy, None, report=report)
