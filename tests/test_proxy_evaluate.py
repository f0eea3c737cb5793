"""evaluate_arch (costs, then proxy training, as a status), `wfsearch evaluate` and `wfsearch proxy-check`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from wfsearch.cli import main
from wfsearch.errors import UserError
from wfsearch.proxy.evaluate import ProxySettings, evaluate_arch
from wfsearch.proxy.fidelity import FidelityRow, summarize
from wfsearch.space import load_spec
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
                        report=lambda e, m: seen.append((e, dict(m))))
    assert res.status == "ok" and res.reason == "ok"
    for key in ("accuracy", "loss", "throughput", "throughput_ratio", "params", "macs", "memory"):
        assert key in res.metrics, key
    assert 0 <= res.metrics["accuracy"] <= 1
    assert res.curve == [{"epoch": 1, "accuracy": res.metrics["accuracy"], "loss": res.metrics["loss"]}]
    for key in ("params", "macs", "activation_bytes", "peak_memory_bytes", "throughput", "throughput_ratio"):
        assert key in res.costs, key
    # every per-epoch report already carries the costs, so a multi-objective scheduler can rank at a rung
    assert seen[0][0] == 1 and seen[0][1]["throughput"] == res.metrics["throughput"]
    assert res.proxy["epochs"] == [1] and res.proxy["dataset"]["name"] == "synthetic"


def test_pruned_infeasible_and_timm_targets(spec):
    pruned = evaluate_arch(spec.fixed_arch(), spec.proxy, spec.throughput, report=lambda e, m: True)
    assert pruned.status == "pruned" and pruned.reason == "pruned at epoch 1"
    infeasible = evaluate_arch(spec.fixed_arch(), spec.proxy, spec.throughput,
                               reject=lambda costs: first_violation([{"metric": "params", "op": "<=", "value": 10}], costs))
    assert infeasible.status == "infeasible" and infeasible.reason.startswith("infeasible: params=")
    assert infeasible.curve == [] and "params" in infeasible.metrics
    timm = evaluate_arch("weightformer_test", spec.proxy, None)
    assert timm.status == "ok" and timm.costs == {} and "accuracy" in timm.metrics


def test_diverged_is_a_status(spec):
    proxy = ProxySettings.from_spec(spec.proxy, lr=1e30, grad_clip=None)
    res = evaluate_arch(spec.fixed_arch(), proxy, None)
    assert res.status == "diverged" and res.reason.startswith("diverged")


def test_missing_dataset_folder_is_a_user_error_before_measuring(spec, tmp_path):
    bad = load_spec(SMOKE, ["proxy.dataset.name=imagefolder", f"proxy.dataset.root={tmp_path / 'nope'}"])
    with pytest.raises(UserError, match=r"proxy\.dataset\.root: .*nope'?: no such folder"):
        evaluate_arch(bad.fixed_arch(), bad.proxy, bad.throughput)


def test_proxy_settings_round_trip(spec):
    ps = ProxySettings.from_spec(spec.proxy)
    assert ProxySettings.from_spec(ps.to_dict()) == ps
    assert ps.train.epochs == spec.proxy.max_epochs and ps.data.img_size == spec.proxy.img_size


def test_cli_evaluate(tmp_path, capsys):
    cfg = tmp_path / "arch.yaml"
    cfg.write_text("fc1_predictor: bilateral\ndwconv_predictor: adaptive\nrank_ratio: 4\n")
    out = tmp_path / "res.json"
    assert main(["evaluate", SMOKE, "--config", str(cfg), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "epoch   1  accuracy" in text and "status: ok" in text and "* throughput" in text
    assert json.loads(out.read_text())["status"] == "ok"
    cfg.write_text("rank_ratio: 5\nfc1_predictor: bilateral\n")
    assert main(["evaluate", SMOKE, "--config", str(cfg)]) == 2
    assert f"{cfg}: rank_ratio=5" in capsys.readouterr().err


def test_cli_proxy_check(tmp_path, capsys):
    out = tmp_path / "pc.json"
    rc = main(["proxy-check", SMOKE, "--archs", "2", "--seeds", "2", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "spread / seed noise" in text and "Kendall tau" in text
    rep = json.loads(out.read_text())
    assert len(rep["rows"]) == 2 and all(len(r["curves"]) == 2 for r in rep["rows"])


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
