"""The tabulated space and the simulator: the committed table's shape, and simulated studies that are
reproducible and carry the table's values."""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import optuna
import pytest

from wfsearch.search.simulate import save_study, simulate
from wfsearch.search.table import enumerate_space, load_table
from wfsearch.space import load_spec

ROOT = Path(__file__).resolve().parents[1]
TABLE_SPEC = ROOT / "benchmarks" / "tables" / "predictors-table.yaml"
TABLE = ROOT / "benchmarks" / "tables" / "predictors"


def write_table(folder: Path, spec, seeds=(0, 1), epochs=(1, 2), rng_seed=0, ratios=False) -> dict:
    """A table in the format benchmarks/tabulate_space.py writes, with made-up numbers; the truth by hash.
    ``ratios``: with the per-repeat ratios to the reference (the paired speed objective then differs from
    the images/s)."""
    rng = random.Random(rng_seed)
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    with open(folder / "archs.csv", "w", newline="") as fa, open(folder / "runs.csv", "w", newline="") as fr:
        wa = csv.DictWriter(fa, ["arch_hash", "params_json", "params", "macs", "memory", "throughput",
                                 "throughput_samples", "throughput_ratio", "throughput_ratio_samples",
                                 "reference_throughput", "measure_seconds", "device", "clock"])
        wr = csv.DictWriter(fr, ["arch_hash", "seed", "epoch", "accuracy", "loss", "epoch_seconds", "status"])
        wa.writeheader()
        wr.writeheader()
        for h, params in enumerate_space(spec):
            tp = round(rng.uniform(20, 40), 3)
            wa.writerow({"arch_hash": h, "params_json": json.dumps(params), "params": 1000, "macs": 2000,
                         "memory": 3000, "throughput": tp, "throughput_samples": f"{tp} {tp + 1} {tp - 1}",
                         "throughput_ratio": tp / 20, "reference_throughput": 20,
                         "throughput_ratio_samples": f"{tp / 19} {tp / 21} {tp / 20.5}" if ratios else "",
                         "measure_seconds": 5.0, "device": "cpu", "clock": "process"})
            truth[h] = {"throughput": tp, "curves": {}}
            for s in seeds:
                acc = rng.uniform(0.2, 0.5)
                curve = []
                for e in epochs:
                    a = round(acc * e / epochs[-1], 4)
                    secs = round(rng.uniform(10, 30), 2)
                    wr.writerow({"arch_hash": h, "seed": s, "epoch": e, "accuracy": a, "loss": 1.4 - a,
                                 "epoch_seconds": secs, "status": "ok"})
                    curve.append((e, a, secs))
                truth[h]["curves"][s] = curve
    (folder / "table.json").write_text(json.dumps({"seeds": len(seeds), "machine": {"workers": 2}}))
    return truth


@pytest.fixture(scope="module")
def spec():
    return load_spec(TABLE_SPEC, ["study.trials=40"])


@pytest.fixture(scope="module")
def table_and_truth(spec, tmp_path_factory):
    folder = tmp_path_factory.mktemp("table")
    truth = write_table(folder, spec)
    return load_table(folder), truth


def _snapshot(study):
    return [(t.number, t.state.name, t.values, t.user_attrs.get("arch_hash"), t.user_attrs.get("simulated"))
            for t in study.trials]


@pytest.mark.parametrize("sampler,scheduler", [("random", "none"), ("auto", "mo_asha")])
def test_simulated_study_is_reproducible_and_carries_the_tables_values(spec, table_and_truth, sampler, scheduler):
    table, truth = table_and_truth
    s = spec.model_copy(update={"study": spec.study.model_copy(update={
        "sampler": sampler, "scheduler": spec.study.scheduler.model_copy(update={"type": scheduler})})})
    a, sa = simulate(s, table, workers=2, seed=3)
    b, _ = simulate(s, table, workers=2, seed=3)
    c, _ = simulate(s, table, workers=2, seed=4)
    assert _snapshot(a) == _snapshot(b)
    assert _snapshot(a) != _snapshot(c)
    assert sa.trials == 40 and sa.simulated_seconds > 0
    trained = [t for t in a.trials if t.user_attrs.get("simulated", {}).get("seed") is not None]
    assert trained
    for t in trained:
        sim = t.user_attrs["simulated"]
        curve = truth[t.user_attrs["arch_hash"]]["curves"][sim["seed"]]
        assert t.user_attrs["curve"] == [{"epoch": e, "accuracy": acc, "loss": pytest.approx(1.4 - acc)}
                                         for e, acc, _ in curve][:len(t.user_attrs["curve"])]
        assert t.user_attrs["costs"]["throughput_img_s"] == truth[t.user_attrs["arch_hash"]]["throughput"]
        took = sum(secs for e, _, secs in curve if e <= t.user_attrs["curve"][-1]["epoch"])
        assert sim["end_s"] - sim["start_s"] == pytest.approx(took + 5.0) or \
            sim["end_s"] - sim["start_s"] == pytest.approx(took)  # measured once per architecture
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.values == [curve[-1][1], truth[t.user_attrs["arch_hash"]]["throughput"]]
            assert t.user_attrs["status_reason"] == "ok"
        else:
            assert t.state == optuna.trial.TrialState.PRUNED and scheduler == "mo_asha"
            assert t.user_attrs["status_reason"] == "pruned at epoch 1"
    # at most `workers` trials train at once on the simulated clock
    spans = [(t.user_attrs["simulated"]["start_s"], t.user_attrs["simulated"]["end_s"]) for t in trained]
    for start, _ in spans:
        assert sum(1 for s0, e0 in spans if s0 <= start < e0) <= 2


def test_saved_simulated_study_reads_like_a_real_one(spec, table_and_truth, tmp_path):
    from wfsearch.report import show_text
    from wfsearch.study import read_study

    table, _ = table_and_truth
    s = spec.model_copy(update={"study": spec.study.model_copy(update={"sampler": "random"})})
    study, _ = simulate(s, table, workers=2, seed=0, max_trials=30)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    save_study(study, s, table, url, "sim")
    out = save_study(study, s, table, url, "sim")  # replaces the study of that name
    assert len(optuna.get_all_study_summaries(url)) == 1
    assert [t.number for t in out.trials] == list(range(len(study.trials))) and len(study.trials) >= 30
    for a, b in zip(study.trials, out.trials):
        assert (b.state, b.values, b.params, b.distributions, b.user_attrs, b.system_attrs) == \
            (a.state, a.values, a.params, a.distributions, a.user_attrs, a.system_attrs)
        sim = a.user_attrs["simulated"]
        assert (b.datetime_complete - b.datetime_start).total_seconds() == pytest.approx(
            sim["end_s"] - sim["start_s"], abs=1e-3)
    assert out.metric_names == ["accuracy", "throughput"]
    text = show_text(read_study(str(tmp_path)))
    assert "front" in text.lower()


def test_a_resampled_pruned_architecture_is_told_its_pruned_result(spec, table_and_truth):
    """As `wfsearch run` does: an architecture stopped at a rung is not trained again when re-sampled."""
    table, _ = table_and_truth
    s = spec.model_copy(update={"study": spec.study.model_copy(update={"sampler": "random"})})
    study, summary = simulate(s, table, workers=2, seed=1, max_trials=150)
    trained = sorted((t for t in study.trials if t.user_attrs["simulated"]["seed"] is not None),
                     key=lambda t: (t.user_attrs["simulated"]["end_s"], t.number))
    first: dict = {}
    for t in trained:  # the first result of each architecture, in the order the clock reached them
        first.setdefault(t.user_attrs["arch_hash"], t)
    repeats = 0
    for t in study.trials:
        h = t.user_attrs.get("arch_hash")
        if t.user_attrs["simulated"]["seed"] is None and h in first and first[h].state == optuna.trial.TrialState.PRUNED:
            assert t.state == optuna.trial.TrialState.PRUNED
            assert t.user_attrs["status_reason"] == (f"pruned at epoch 1 (same architecture as trial "
                                                     f"{first[h].number}, not trained again)")
            assert t.user_attrs["curve"] == first[h].user_attrs["curve"]
            repeats += 1
    assert repeats and summary.pruned > repeats


def test_simulate_imports_no_ray(table_and_truth, tmp_path, monkeypatch):
    """The simulator and the CLI command around it never import Ray (nor does a replay or its save); nor
    torch, for a sampler other than GP, where the machine can have no GPU (`wfsearch.gpu`)."""
    import subprocess
    import sys

    from wfsearch.gpu import device_nodes
    from wfsearch.space.timm_names import timm_model_names

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    timm_model_names()  # the spec's reference model is checked against the cached names
    table, _ = table_and_truth
    code = (
        "import sys\n"
        "from wfsearch.cli import main\n"
        f"rc = main(['simulate', {str(TABLE_SPEC)!r}, '--table', {str(table.path)!r}, '--trials', '10', "
        f"'--set', 'study.sampler=tpe', '-o', {str(tmp_path / 'o')!r}])\n"
        "print(rc, sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')), 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rc, rays, torch_loaded = out.stdout.strip().splitlines()[-1].split(" ", 2)
    assert (rc, rays) == ("0", "[]")
    if sys.platform.startswith("linux") and not device_nodes():
        assert torch_loaded == "False"
    assert (tmp_path / "o" / "optuna.db").is_file()


@pytest.mark.slow
def test_simulate_cli_writes_a_study(table_and_truth, tmp_path, capsys):
    from wfsearch.cli import main

    table, _ = table_and_truth
    rc = main(["simulate", str(TABLE_SPEC), "--table", str(table.path), "--trials", "10", "-o", str(tmp_path / "s")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "simulated 10 trials" in out
    assert (tmp_path / "s" / "optuna.db").is_file()
    rc = main(["simulate", str(TABLE_SPEC), "--table", str(tmp_path / "nothing")])
    err = capsys.readouterr().err
    assert rc == 2 and "no archs.csv" in err and "Traceback" not in err


@pytest.mark.parametrize("name, size", [("predictors", 90), ("quickstart", 200)])
def test_committed_table_has_every_architecture_and_seed(name, size):
    """A committed table: built from its spec, monotone epochs, costs with per-repeat throughput and the
    paired ratio to the reference; every architecture of the space with every seed once
    tabulate_space.py has marked it complete."""
    folder = TABLE.parent / name
    if not (folder / "runs.csv").is_file():
        pytest.skip(f"no committed table {name}")
    spec = load_spec(TABLE.parent / f"{name}-table.yaml")
    table = load_table(folder)
    space = dict(enumerate_space(spec))
    assert len(space) >= size
    assert set(table.runs) <= set(space) and set(table.archs) <= set(space)
    seeds = list(range(table.meta["seeds"]))
    assert len(seeds) >= 2
    max_epochs = spec.proxy.epochs[-1]
    for h, per in table.runs.items():
        assert set(per) <= set(seeds), h
        assert h in table.archs  # seed 0 measures before any other seed runs
        assert table.archs[h].params == space[h]
        for s, curve in per.items():
            epochs = [e.epoch for e in curve]
            assert epochs == list(range(1, max_epochs + 1)), (h, s, epochs)
            assert all(e.seconds > 0 and 0 <= e.accuracy <= 1 for e in curve)
        m = table.archs[h]
        assert m.metrics["throughput"] > 0 and len(m.throughput_samples) >= 2
        assert m.metrics["throughput_ratio"] > 0 and len(m.throughput_ratio_samples) == len(m.throughput_samples)
    if table.meta.get("complete"):
        assert set(table.runs) == set(space)
        assert all(sorted(per) == seeds for per in table.runs.values())
    else:  # a partial table: seed 0 goes first for every architecture
        assert all(0 in per for per in table.runs.values())


@pytest.mark.parametrize("sampler, scheduler, warned", [("gp", "mo_asha", True), ("gp", "none", False),
                                                         ("auto", "mo_asha", False)])
def test_gp_with_early_stopping_is_warned_about(caplog, sampler: str, scheduler: str, warned: bool) -> None:
    # GP learns from completed trials only: with mo_asha it re-proposes stopped architectures until the
    # search ends (benchmarks/RESULTS-search.md); the spec says so when it is loaded
    with caplog.at_level("WARNING", logger="wfsearch"):
        load_spec(TABLE_SPEC, [f"study.sampler={sampler}", f"study.scheduler.type={scheduler}"])
    assert any("re-proposes them" in r.getMessage() for r in caplog.records) is warned


def test_front_frequency_tells_a_stable_member_from_one_there_by_luck():
    """Bootstrap over seeds and throughput repeats: the fastest design is always on the front; of two equally
    fast ones whose seeds overlap, each is there in only part of the draws; a clearly dominated one never."""
    from wfsearch.search.table import Epoch, Table, TableArch

    def arch(h, ratios):
        return TableArch(h, {}, {"throughput": 100.0 * ratios[0], "throughput_ratio": ratios[0],
                                 "reference_throughput": 100.0}, [100.0 * r for r in ratios], list(ratios))

    accs = {"fast": [0.60, 0.61, 0.59], "a": [0.80, 0.90, 0.70], "b": [0.85, 0.75, 0.80], "slow": [0.5, 0.5, 0.5]}
    ratios = {"fast": [3.0, 3.1, 2.9], "a": [1.0, 1.01, 0.99], "b": [1.0, 1.01, 0.99], "slow": [0.5, 0.5, 0.5]}
    table = Table(Path("."), {}, {h: arch(h, ratios[h]) for h in accs},
                  {h: {s: [Epoch(1, a, 1 - a, 1.0)] for s, a in enumerate(v)} for h, v in accs.items()},
                  {h: dict.fromkeys(range(3), "ok") for h in accs})
    freq = table.front_frequency(["accuracy", "throughput"], ["maximize", "maximize"], draws=300)
    assert freq["fast"] == 1.0 and freq["slow"] == 0.0
    assert 0.2 < freq["a"] < 0.8 and 0.2 < freq["b"] < 0.8, freq
    assert freq == table.front_frequency(["accuracy", "throughput"], ["maximize", "maximize"], draws=300)


def test_run_tensorboard_logs_every_finished_architecture(tmp_path):
    """`wfsearch run --tensorboard`: each finished distinct architecture logs its objectives and the search's
    progress at the count of architectures finished; the hypervolume (the study's fixed box) never falls."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from wfsearch.search.driver import search_loop
    from wfsearch.search.engine import search_trackers
    from wfsearch.search.simulate import TableEvaluator

    spec = load_spec(TABLE_SPEC, ["study.trials=8", "study.sampler=random", "study.scheduler.type=none"])
    write_table(tmp_path / "table", spec, ratios=True)
    table = load_table(tmp_path / "table")
    study = optuna.create_study(directions=["maximize", "maximize"], sampler=optuna.samplers.RandomSampler(seed=1))
    loop = search_loop(spec, study, [])
    trackers = search_trackers(spec, tmp_path, loop, ("tensorboard",))
    TableEvaluator(table, {"seed_noise": None}, 2).run(loop)
    trackers.close()
    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    hv = [(e.step, e.value) for e in events.Scalars("search/hypervolume")]
    assert [s for s, _ in hv] == list(range(1, loop.budget.count + 1)) and loop.budget.count == 8
    assert all(b >= a for (_, a), (_, b) in zip(hv, hv[1:])) and hv[-1][1] > 0
    accs = {e.step: e.value for e in events.Scalars("trial/accuracy")}
    done = {t.user_attrs["arch_hash"]: t.values[0] for t in study.trials  # one per architecture: repeats log nothing
            if t.state == optuna.trial.TrialState.COMPLETE}
    assert sorted(accs.values()) == pytest.approx(sorted(done.values()), abs=1e-6)
    assert search_trackers(spec, tmp_path, loop, ()) is None
