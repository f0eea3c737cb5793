"""`wfsearch analyze` and the report's Design space section, on constructed studies whose truth is known.

The truth: ``fc1_predictor: bilateral`` is better than ``linear`` by `DELTA` accuracy at every throughput,
``dwconv_predictor`` has no effect at all, and placement, width and depth move both accuracy and throughput.
Each architecture has a quality of its own (drawn once) and every run adds seed noise.
"""
from __future__ import annotations

import datetime
import itertools
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from wfsearch.arch import MODEL_SIZES, ArchConfig
from wfsearch.cli import main
from wfsearch.report import render_html, report_data
from wfsearch.study.optuna_api import insert_trials
from wfsearch.report.design import DesignPoint, analyze, design_analysis, design_points, sampling_caveats
from wfsearch.study import Outcome, Status, read_study

SPACE = {"fc1_predictor": ["linear", "bilateral"], "dwconv_predictor": ["gap", "adaptive"],
         "dynamic_blocks": ["every:3:1", "every:2:1", "all"], "embed_dim": [32, 48, 64, 80], "depth": [4, 5, 6]}
DELTA = 0.06  # bilateral over linear, at any throughput
ARCH_SD, SEED_SD, SPEED_SD = 0.02, 0.02, 0.05  # an architecture's own quality, a run's noise, log-throughput noise
T0 = datetime.datetime(2026, 1, 1)


def true_accuracy(k: dict) -> float:
    return (0.5 + DELTA * (k["fc1_predictor"] == "bilateral") + 0.01 * SPACE["dynamic_blocks"].index(k["dynamic_blocks"])
            + 0.03 * np.log2(k["embed_dim"] / 32) + 0.01 * (k["depth"] - 4))


def true_throughput(k: dict) -> float:
    return 1000.0 * (1 - 0.2 * SPACE["dynamic_blocks"].index(k["dynamic_blocks"])) * (32 / k["embed_dim"]) ** 1.5 \
        * 4 / k["depth"]


CELLS = [dict(zip(SPACE, c)) for c in itertools.product(*SPACE.values())]  # 144 architectures


def draw(rng: np.random.Generator, cells: list[dict] = CELLS) -> list[tuple[dict, float, float]]:
    """(knobs, accuracy of one run, throughput) of each architecture of ``cells``, once."""
    return [(k, true_accuracy(k) + rng.normal(0, ARCH_SD) + rng.normal(0, SEED_SD),
             true_throughput(k) * float(np.exp(rng.normal(0, SPEED_SD)))) for k in cells]


def points(runs: list[tuple[dict, float, float]], knobs=tuple(SPACE)) -> list[DesignPoint]:
    """One `DesignPoint` per architecture (its ``knobs`` compared), its neighbours keyed as `design_points`
    keys them."""
    key = lambda k: json.dumps(k, sort_keys=True)  # noqa: E731
    return [DesignPoint(key(k), {n: str(k[n]) for n in knobs}, acc, tput, 1,
                        {(n, str(v)): key({**k, n: v}) for n in knobs for v in SPACE[n] if v != k[n]})
            for k, acc, tput in runs]


# --------------------------------------------------------------------------- a stored study
def write_study(folder: Path, runs: list[tuple], sampler: str = "random", seed_noise: float | None = None,
                pruned: int = 0, space: dict = SPACE) -> Path:
    """A study as `wfsearch run` stores one: the spec, objectives, and per trial the design's knobs, its
    `ArchConfig` and hash, and the accuracy and throughput metrics (stored as `Outcome.attrs` writes them). ``runs``:
    (knobs, accuracy, throughput[, status reason])."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name=folder.name, storage=f"sqlite:///{folder / 'optuna.db'}",
                                directions=["maximize", "maximize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["accuracy", "throughput"])
    study.set_user_attr("objectives", [{"name": "accuracy", "direction": "maximize"},
                                       {"name": "throughput", "direction": "maximize"}])
    study.set_user_attr("spec", {"study": {"name": folder.name, "sampler": sampler, "trials": len(runs),
                                           "scheduler": {"type": "none"}},
                                 "space": {k: {"choice": v} for k, v in space.items()},
                                 "throughput": {"img_size": 16, "arch": {"depth": 12}}})
    if seed_noise is not None:
        study.set_user_attr("seed_noise", seed_noise)
    dists = {k: CategoricalDistribution(tuple(v)) for k, v in space.items()}
    size = {**MODEL_SIZES["weightformer_test"], "img_size": 16}
    trials = [(*r, "ok")[:4] for r in runs] + [(CELLS[i], 0.3, 500.0, "pruned at epoch 1") for i in range(pruned)]
    rows = []
    for i, (k, acc, tput, reason) in enumerate(trials):
        cfg = ArchConfig(**{**size, **k})
        result = {"arch": cfg.to_dict(), "arch_hash": cfg.hash, "metrics": {"accuracy": acc, "throughput": tput}}
        status = Status.PRUNED if reason.startswith("pruned") else Status.OK
        t = create_trial(state=status.state, values=[acc, tput] if status is Status.OK else None,
                         params={n: k[n] for n in space}, distributions=dists,
                         user_attrs={"kind": "search", "arch": result["arch"], "arch_hash": result["arch_hash"],
                                     **Outcome(status, reason, metrics=result["metrics"]).attrs()})
        rows.append((t, T0, T0 + datetime.timedelta(seconds=i + 1)))
    insert_trials(study._storage._backend, study._study_id, rows)  # in one transaction, as `simulate` saves
    return folder


@pytest.fixture(scope="module")
def truth_study(tmp_path_factory) -> tuple[Path, list]:
    """Every architecture once, 12 of them run a second time (another seed), and one re-sampled
    architecture told the result it already had (not another run)."""
    rng = np.random.default_rng(0)
    runs = draw(rng)
    again = [(k, true_accuracy(k) + rng.normal(0, SEED_SD), t) for k, _, t in runs[::12]]
    reused = [(runs[5][0], runs[5][1], runs[5][2], "ok (same architecture as trial 5, not trained again)")]
    return write_study(tmp_path_factory.mktemp("truth") / "truth", runs + again + reused), runs + again


def cli(args: list, capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


# --------------------------------------------------------------------------- what analyze says
def test_analyze_finds_the_better_value_and_calls_the_knob_without_effect_inside_the_noise(truth_study, capsys) -> None:
    folder, _ = truth_study
    rc, out, err = cli(["analyze", folder], capsys)
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("study 'truth': 144 trained architectures (156 runs")
    assert "fc1_predictor: bilateral is better at matched throughput: +0.0" in out
    fc1 = next(line for line in lines if line.startswith("fc1_predictor: "))
    low, high = (float(x) for x in fc1.split("[")[1].split("]")[0].split(", "))
    assert low < DELTA < high  # the margin it reports holds the truth
    dw = next(line for line in lines if line.startswith("dwconv_predictor: "))
    assert dw.startswith("dwconv_predictor: inside the noise: ") and "more architectures would be needed" in dw
    assert "caveat" not in out  # a random sample, every architecture trained
    rc, out, _ = cli(["analyze", folder, "--json", "--boot", "200"], capsys)
    d = json.loads(out)
    knobs = {k["knob"]: k for k in d["knobs"]}
    assert list(knobs) == list(SPACE) and d["architectures"] == 144 and d["runs"] == 156
    fc1 = knobs["fc1_predictor"]
    assert fc1["baseline"] == "bilateral"  # the released value
    (effect,) = fc1["effects"]  # every architecture has its fc1 neighbour: 72 matched pairs
    assert (effect["value"], effect["pairs"]) == ("linear", 72)
    assert effect["accuracy"]["low"] < -DELTA < effect["accuracy"]["high"]
    assert 0.97 < effect["throughput_ratio"]["value"] < 1.03  # fc1 does not change the speed
    assert knobs["dwconv_predictor"]["verdict"]["decided"] is False and knobs["dwconv_predictor"]["verdict"]["more_needed"] > 0
    assert len(d["interactions"]) == 5 * 4  # every knob by every other one
    edf = knobs["dwconv_predictor"]["edfs"][0]
    assert len(edf["errors"]) == len(edf["cdf"]) == len(edf["low"]) == 101 and edf["cdf"][-1] == pytest.approx(1.0)
    assert all(lo <= c + 1e-12 and c <= hi + 1e-12 for lo, c, hi in zip(edf["low"], edf["cdf"], edf["high"]))


def test_runs_of_one_architecture_are_one_point(truth_study) -> None:
    folder, runs = truth_study
    view = read_study(folder)
    pts, noise, repeated = design_points(view)
    assert len(pts) == 144 and repeated == 12 and sum(p.runs for p in pts) == 156
    by_knobs = {}
    for k, acc, tput in runs:
        by_knobs.setdefault(json.dumps({n: str(k[n]) for n in SPACE}), []).append((acc, tput))
    for p in pts:
        accs, tputs = zip(*by_knobs[json.dumps(p.knobs)])
        assert p.runs == len(accs) and p.accuracy == pytest.approx(np.mean(accs))
        assert p.throughput == pytest.approx(np.exp(np.mean(np.log(tputs))))
    # the pooled spread of the 12 architectures run twice: near the seed noise it was drawn with
    assert 0.5 * SEED_SD < noise < 2 * SEED_SD
    d = design_analysis(view, n_boot=0)
    assert d.seed_noise == noise and d.seed_noise_source == "the spread of the 12 architecture(s) run more than once"


def test_neighbours_are_the_architectures_that_differ_in_one_knob(truth_study) -> None:
    pts, _, _ = design_points(read_study(truth_study[0]))
    by_key = {p.key: p for p in pts}
    p = pts[0]
    assert len(p.neighbours) == sum(len(v) - 1 for v in SPACE.values())  # a full factorial: all present
    for (knob, value), key in p.neighbours.items():
        q = by_key[key]
        assert q.knobs[knob] == value and {n: v for n, v in q.knobs.items() if n != knob} == \
            {n: v for n, v in p.knobs.items() if n != knob}


def test_the_studys_seed_noise_and_the_samplers_bias_are_reported(tmp_path: Path, capsys) -> None:
    runs = draw(np.random.default_rng(1))
    folder = write_study(tmp_path / "tpe", runs, sampler="tpe", seed_noise=0.031, pruned=3)
    rc, out, _ = cli(["analyze", folder, "--boot", "100"], capsys)
    assert rc == 0
    assert "seed noise: ±0.0310 (one run's standard deviation, from the study's seed_noise" in out
    assert out.splitlines()[2].startswith("proxy check: none recorded, so the ranking's reliability is unknown")
    caveats = [line for line in out.splitlines() if line.startswith("caveat: ")]
    assert len(caveats) == 2
    assert "sampler is tpe" in caveats[0] and "study.sampler: random" in caveats[0]
    assert caveats[1].startswith("caveat: 3 trial(s) were stopped early")
    assert "bilateral is better at matched throughput" in out  # still analysed
    auto = design_analysis(read_study(write_study(tmp_path / "auto", runs[:40], sampler="auto")), n_boot=0)
    assert "sampler is tpe" in auto.caveats[0]  # auto below 100 trials is TPE


def test_a_knob_confounded_with_throughput_is_compared_at_matched_throughput() -> None:
    """``kind: slow`` architectures are slower and, by the same accuracy-throughput curve as the others,
    more accurate: raw means differ, at matched throughput they do not."""
    rng = np.random.default_rng(3)
    runs = []
    for i in range(240):
        kind = "slow" if i % 2 else "fast"
        tput = float(np.exp(rng.uniform(np.log(100), np.log(600)) + (np.log(2) if kind == "fast" else 0.0)))
        runs.append(({"kind": kind, "i": str(i)}, 0.9 - 0.05 * np.log(tput / 100) + rng.normal(0, 0.01), tput))
    pts = [DesignPoint(str(i), {"kind": k["kind"]}, acc, tput) for i, (k, acc, tput) in enumerate(runs)]
    d = analyze(pts, n_boot=500)
    (k,) = d.knobs
    raw = {v: np.mean([acc for kk, acc, _ in runs if kk["kind"] == v]) for v in ("slow", "fast")}
    assert raw["slow"] - raw["fast"] == pytest.approx(0.05 * np.log(2), abs=0.01)  # 0.035 apart unnormalized
    assert not k.verdict.decided and abs(k.verdict.difference.value) < 0.005
    # each reaches its own half of the study and about 60% of the other's (a 2x shift of a 6x range): ~0.8
    assert all(0.7 < e.coverage < 1.0 for e in k.edfs), k.edfs


def test_too_few_architectures_per_value_give_no_verdict() -> None:
    pts = [DesignPoint(str(i), {"k": v}, 0.5 + 0.1 * i, 100.0) for i, v in enumerate("aabb")]
    (k,) = analyze(pts, n_boot=100).knobs
    assert not k.verdict.decided and k.verdict.text.startswith("too few architectures to compare: at least 3")
    assert analyze(pts[:2], n_boot=100).skipped == ("k: 1 value(s) over the trained architectures (2 to 12 are "
                                                    "compared value by value)",)


def test_bands_and_intervals_cover_the_truth_at_about_their_stated_rate() -> None:
    """100 random samples of 240 architectures from a space of 2,160 (the space above times 15 variants
    that change nothing but the architecture's own quality), as an exploration study draws them: the 90%
    intervals of the matched-pair effects, of the verdict's difference and the EDF band at the true
    median hold the truth in about 90% of draws (a binomial sd of 3 points at 100 draws), and every
    draw finds the better fc1 predictor."""
    from scipy.stats import norm

    rng = np.random.default_rng(12345)
    draws, hits = 100, {}
    knobs = ("fc1_predictor", "dwconv_predictor", "embed_dim")
    space = [{**k, "variant": v} for k in CELLS for v in range(15)]
    for i in range(draws):
        runs = draw(rng, [space[j] for j in rng.choice(len(space), 240, replace=False)])
        d = analyze(points(runs, knobs), n_boot=300, seed=i, interactions=False,
                    baselines={"fc1_predictor": "linear", "dwconv_predictor": "gap"})
        fc1, dw = d.knob("fc1_predictor"), d.knob("dwconv_predictor")
        edf = dw.edfs[0]
        grid = np.array(edf.errors)
        sd = np.hypot(ARCH_SD, SEED_SD)
        truth = np.mean([norm.cdf((grid - 1 + true_accuracy(k)) / sd) for k in CELLS  # every variant alike
                         if k["dwconv_predictor"] == edf.value], axis=0)
        j = int(np.argmin(abs(truth - 0.5)))
        for name, covered in (("fc1 pair accuracy", not fc1.effects[0].accuracy.excludes(DELTA)),
                              ("fc1 pair throughput", not fc1.effects[0].throughput_ratio.excludes(1.0)),
                              ("fc1 verdict", not fc1.verdict.difference.excludes(DELTA)),
                              ("dwconv pair accuracy", not dw.effects[0].accuracy.excludes(0.0)),
                              ("dwconv verdict", not dw.verdict.difference.excludes(0.0)),
                              ("dwconv EDF at its median", edf.low[j] <= truth[j] <= edf.high[j]),
                              ("fc1 found", fc1.verdict.decided and fc1.verdict.best == "bilateral")):
            hits[name] = hits.get(name, 0) + covered
    rates = {k: v / draws for k, v in hits.items()}
    assert rates.pop("fc1 found") == 1.0, rates
    assert all(0.8 <= r <= 0.99 for r in rates.values()), rates


# --------------------------------------------------------------------------- the command and the report
def test_bad_flags_are_one_line(truth_study, capsys) -> None:
    folder, _ = truth_study
    for args, msg in ((["--level", "1.5"], "--level: 1.5: must lie between 0 and 1"),
                      (["--boot", "-1"], "--boot: -1: must be >= 0"),
                      (["--interaction", "fc1_predictor"], "--interaction: 'fc1_predictor': give KNOB:BY"),
                      (["--interaction", "fc1_pool:fc1_predictor"], "'fc1_pool' is not a compared knob")):
        rc, out, err = cli(["analyze", folder, *args], capsys)
        assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and msg in err, err


def test_one_interaction_table(truth_study, capsys) -> None:
    rc, out, _ = cli(["analyze", truth_study[0], "--boot", "100", "--interaction", "fc1_predictor:dwconv_predictor"],
                     capsys)
    assert rc == 0 and out.count("interaction: ") == 1
    i = out.index("interaction: matched pairs of fc1_predictor (against bilateral) by dwconv_predictor")
    rows = out[i:].splitlines()[2:4]
    assert [r.split()[:3] for r in rows] == [["gap", "linear", "36"], ["adaptive", "linear", "36"]]


def test_a_study_without_trained_trials(tmp_path: Path, capsys) -> None:
    folder = write_study(tmp_path / "empty", [])
    rc, out, _ = cli(["analyze", folder], capsys)
    assert rc == 0 and "0 trained architectures" in out and "nothing to compare" in out


def test_the_report_has_a_design_space_section(truth_study) -> None:
    view = read_study(truth_study[0])
    page = render_html(report_data(view))
    assert '<section id="sec-design"><h2>Design space</h2>' in page
    assert "fc1_predictor: bilateral" not in page  # the verdict stands under the knob's own heading
    assert "<h3>fc1_predictor</h3><p><b>bilateral is better at matched throughput" in page
    assert all(f'id="design-{k}"' in page for k in SPACE)
    assert "wfsearch analyze" in page


# --------------------------------------------------------------------------- benchmarks/design_claims.py
def _claims_script():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "design_claims.py"
    spec = importlib.util.spec_from_file_location("design_claims", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["design_claims"] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


CLAIMS_SPACE = {"dynamic_blocks": ["every:3:1", "every:2:1", "all"], "fc1_predictor": ["linear", "bilateral"],
                "dwconv_predictor": ["gap", "adaptive"], "fc1_pool": [1, 2, 4], "embed_dim": [32, 48, 64]}


def test_design_claims_on_a_study_whose_truth_is_known(tmp_path: Path) -> None:
    """Every third block is the most accurate placement at any throughput (by 0.04) and the fastest (fewest
    dynamic blocks), bilateral beats linear by 0.05, the dwconv predictor does nothing, and pooling 4x4
    costs the linear predictor 0.06 but not the bilateral one."""
    rng = np.random.default_rng(7)
    runs = []
    for c in itertools.product(*CLAIMS_SPACE.values()):
        k = dict(zip(CLAIMS_SPACE, c))
        place = CLAIMS_SPACE["dynamic_blocks"].index(k["dynamic_blocks"])
        acc = (0.5 + 0.04 * (place == 0) + 0.05 * (k["fc1_predictor"] == "bilateral") + 0.02 * (k["embed_dim"] // 16)
               - 0.06 * (k["fc1_pool"] == 4 and k["fc1_predictor"] == "linear") + rng.normal(0, 0.01))
        tput = 1000.0 / (1 + 0.3 * place) * (32 / k["embed_dim"]) ** 1.5 * float(np.exp(rng.normal(0, 0.03)))
        runs.append((k, acc, tput))
    folder = write_study(tmp_path / "claims", runs, space=CLAIMS_SPACE)
    out = tmp_path / "RESULTS-design.md"
    assert _claims_script().main([str(folder), "--boot", "300", "--out", str(out)]) == 0
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[2] for line in out.read_text().splitlines()
            if line.startswith("| ") and " | claims | " in line}
    assert rows == {
        "every third block is the best placement for accuracy at matched throughput": "**supported**",
        "every third block is the best placement for throughput": "**supported**",
        "bilateral is the best fc1 predictor at matched throughput": "**supported**",
        "which fc1 predictor wins at matched throughput": "**bilateral**",
        "adaptive is the best dwconv predictor at matched throughput": "**inside the noise**",
        "which dwconv predictor wins at matched throughput": "**inside the noise**",
        "spatial compression (fc1_pool) interacts with the fc1 predictor": "**interaction found**",
        "channel compression (rank_ratio) interacts with the fc1 predictor": "**not answerable here**"}
    text = out.read_text()
    assert "These are claims about the proxy" in text and f"python benchmarks/design_claims.py {folder}" in text
    assert "fc1_pool 4 (vs 2): bilateral" in text  # the cells that differ, with their intervals


def test_design_claims_reads_a_table_as_a_study(tmp_path: Path) -> None:
    """The repository's tabulated space: every architecture and seed one run, the seeds averaged."""
    script = _claims_script()
    folder = script.table_study(str(Path(__file__).resolve().parents[1] / "benchmarks/tables/predictors-table.yaml"),
                                str(Path(__file__).resolve().parents[1] / "benchmarks/tables/predictors"),
                                tmp_path / "table")
    view = read_study(folder)
    pts, noise, repeated = design_points(view)
    assert len(pts) == repeated == 93 and sum(p.runs for p in pts) == 186 and 0 < noise < 0.1
    assert sampling_caveats(view) == []  # the whole space, trained to the end


def test_trials_without_a_stored_architecture_give_edfs_and_no_pairs(tmp_path: Path) -> None:
    """A study of another tool: knobs and scores, no `arch`: nothing says which trials differ in one knob only."""
    study = optuna.create_study(study_name="bare", storage=f"sqlite:///{tmp_path / 'optuna.db'}",
                                directions=["maximize", "maximize"])
    dist = {"width": CategoricalDistribution(("narrow", "wide")), "depth": CategoricalDistribution(tuple(range(6)))}
    for i in range(12):
        params = {"width": ("narrow", "wide")[i % 2], "depth": i // 2}  # each trial its own design
        acc = 0.5 + 0.1 * (params["width"] == "wide") + 0.01 * i
        study.add_trial(create_trial(values=[acc, 100.0 + i], params=params, distributions=dist,
                                     user_attrs={"metrics": {"accuracy": acc, "throughput": 100.0 + i}}))
    d = design_analysis(read_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}"), n_boot=200)
    width = d.knob("width")
    assert [e.n for e in width.edfs] == [6, 6] and width.effects == () and d.interactions == ()
    assert width.verdict.best == "wide" and width.verdict.decided
