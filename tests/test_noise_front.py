"""The noise-aware front (plausibly optimal trials) and the normalized hypervolume, on plain values."""
import numpy as np
import pytest

from wfsearch.study.interval import accuracy_interval, median_interval
from wfsearch.study.hypervolume import HypervolumeBox, normalized_hypervolume
from wfsearch.study.noise import indistinguishable_groups, objective_bounds, plausibly_optimal

MAXMAX = ["maximize", "maximize"]


def _trial(acc: float, speed_repeats: list[float], n_val: int = 600):
    """(values, lows, highs) of a trial as a study stores it: Wilson accuracy, median of the repeats."""
    a, s = accuracy_interval(acc, n_val), median_interval(speed_repeats)
    metrics = {"accuracy_low": a.low, "accuracy_high": a.high, "throughput_low": s.low, "throughput_high": s.high}
    values = (a.value, s.value)
    return values, *objective_bounds(metrics, ["accuracy", "throughput"], values)


def test_two_architectures_within_the_noise_are_both_plausibly_optimal():
    # true speeds 60.5 and 61.2 img/s, repeats spread over +-2%: the faster one also scores 1 point
    # higher in accuracy, so it dominates the other on the point values, but only within the noise
    a = _trial(0.450, [59.4, 60.5, 61.7, 60.1, 61.0])
    b = _trial(0.460, [60.2, 61.2, 62.4, 60.8, 61.9])
    values, lows, highs = zip(a, b)
    assert values[1][0] > values[0][0] and values[1][1] > values[0][1]  # b dominates a on the values
    assert list(plausibly_optimal(lows, highs, MAXMAX)) == [True, True]
    assert indistinguishable_groups(lows, highs) == [[0, 1]]


def test_a_clearly_dominated_trial_is_not_plausibly_optimal():
    best = _trial(0.60, [80.0, 81.0, 79.5, 80.4, 80.8])
    close = _trial(0.59, [79.0, 80.5, 81.5, 80.0, 79.8])  # within the noise of `best`
    bad = _trial(0.40, [50.0, 51.0, 49.5, 50.3, 50.8])  # worse by far more than the intervals in both
    slow_but_accurate = _trial(0.70, [30.0, 31.0, 29.0, 30.5, 30.2])  # a trade-off, on the front
    values, lows, highs = zip(best, close, bad, slow_but_accurate)
    assert list(plausibly_optimal(lows, highs, MAXMAX)) == [True, True, False, True]
    assert indistinguishable_groups(lows, highs) == [[0, 1]]


def test_minimized_objectives_and_exact_ones():
    # params (minimized, exact) against accuracy: 1 param fewer is a real difference
    lows, highs = [(1000, 0.5), (999, 0.5)], [(1000, 0.5), (999, 0.5)]
    assert list(plausibly_optimal(lows, highs, ["minimize", "maximize"])) == [False, True]
    # an interval that does not contain the value (stored by mistake) is ignored: the value is exact
    assert objective_bounds({"x_low": 2.0, "x_high": 3.0}, ["x"], [1.0]) == ((1.0,), (1.0,))


def test_normalized_hypervolume_tells_fronts_apart():
    box = HypervolumeBox.of([(0.2, 100), (0.6, 300), (0.4, 200)], MAXMAX, ["accuracy", "throughput"])
    assert box.worst == (0.2, 100) and box.best == (0.6, 300)
    assert box.hypervolume([(0.6, 300)]) == pytest.approx(1.0)  # one point best in both
    assert box.hypervolume([(0.2, 100)]) == pytest.approx((0.1 * 0.1) / 1.21)  # the worst corner: the margin only
    corners = box.hypervolume([(0.6, 100), (0.2, 300)])
    filled = box.hypervolume([(0.6, 100), (0.2, 300), (0.5, 250)])
    assert 0 < corners < filled < 1  # a point between the ends of the front adds volume
    # with the old reference point (0, 0) the same two fronts are nearly indistinguishable
    from optuna._hypervolume import compute_hypervolume

    raw = [compute_hypervolume(-np.array(f, float), np.zeros(2)) for f in
           ([(0.6, 100), (0.2, 300)], [(0.6, 100), (0.2, 300), (0.5, 250)])]
    assert filled / corners > 1.5 * raw[1] / raw[0]
    assert HypervolumeBox.from_dict(box.to_dict()) == box
    assert box.history([(0.2, 100), None, (0.6, 300)])[-1] == pytest.approx(1.0)


def test_box_of_a_minimized_and_a_flat_objective():
    box = HypervolumeBox.of([(5.0, 0.5), (3.0, 0.5)], ["minimize", "maximize"])
    assert box.worst == (5.0, 0.5) and box.best == (3.0, 0.5)
    assert box.normalize([(3.0, 0.5), (5.0, 0.5)]).tolist() == [[1.0, 1.0], [0.0, 1.0]]
    assert normalized_hypervolume([], MAXMAX) == 0.0 and HypervolumeBox.of([], MAXMAX) is None


def test_noise_summary_says_which_front_members_are_indistinguishable():
    from wfsearch.study.noise import noise_summary

    def metrics(acc, speeds):
        a, s = accuracy_interval(acc, 600), median_interval(speeds)
        return {"accuracy_low": a.low, "accuracy_high": a.high, "throughput_low": s.low, "throughput_high": s.high}

    # the quick start's front: three trials 2% apart in speed, a clearly slower and less accurate one
    trials = [(9, (0.45, 60.5), metrics(0.45, [59.9, 60.5, 61.0])),
              (10, (0.44, 61.9), metrics(0.44, [61.0, 61.9, 62.5])),
              (16, (0.46, 60.52), metrics(0.46, [59.8, 60.52, 61.3])),
              (3, (0.30, 40.0), metrics(0.30, [39.5, 40.0, 40.4]))]
    s = noise_summary(trials, ["accuracy", "throughput"], MAXMAX, front=[10, 16])
    assert s.front == (10, 16) and s.plausible == (9, 10, 16) and s.within_noise == (9,)
    assert s.indistinguishable == ((10, 16),)
    text = "\n".join(s.lines())
    assert "trials 10 and 16 are indistinguishable within noise" in text and "trial 9 (dominated only" in text


def _noisy_study(folder):
    """Three architectures and a re-sample, stored as `wfsearch run` stores them, intervals as metrics."""
    import warnings

    import optuna
    from optuna.trial import create_trial

    import wfsearch
    from wfsearch.models import MODEL_SIZES, ArchConfig

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder.mkdir(parents=True)
    study = optuna.create_study(study_name=folder.name, storage=f"sqlite:///{folder / 'optuna.db'}",
                                directions=["maximize", "maximize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["accuracy", "throughput"])
    study.set_user_attr("spec", {"study": {"name": folder.name}, "throughput": {"img_size": 32, "batch_size": 16}})
    study.set_user_attr("wfsearch_version", wfsearch.__version__)
    size = {**MODEL_SIZES["weightformer_test"], "img_size": 16}
    archs = [ArchConfig(**size), ArchConfig(**{**size, "fc1_predictor": "none"}),
             ArchConfig(**{**size, "dwconv_predictor": "none"})]
    # (arch, accuracy [low, high], throughput [low, high]): 0 and 1 trade off within the noise; 2 is far behind
    rows = [(0, 0.50, (0.45, 0.55), 100.0, (95.0, 105.0)), (1, 0.52, (0.47, 0.57), 98.0, (93.0, 103.0)),
            (2, 0.30, (0.27, 0.33), 60.0, (58.0, 62.0)), (0, 0.50, (0.45, 0.55), 100.0, (95.0, 105.0))]
    for i, (a, acc, (al, ah), tp, (tl, th)) in enumerate(rows):
        reason = "ok" if i < 3 else "ok (same architecture as trial 0, not trained again)"
        study.add_trial(create_trial(values=[acc, tp], user_attrs={
            "kind": "search", "arch": archs[a].to_dict(), "arch_hash": archs[a].hash, "status_reason": reason,
            "metrics": {"accuracy": acc, "throughput": tp, "accuracy_low": al, "accuracy_high": ah,
                        "throughput_low": tl, "throughput_high": th, "params": 1000},
            "costs": {"params": 1000, "macs": 1e6, "throughput": tp}, "proxy": {"epochs": 1, "dataset": "synthetic"},
            "curve": [{"epoch": 1, "accuracy": acc, "loss": 1.0}]}))
    return folder


def test_show_report_and_pick_say_when_front_members_are_indistinguishable(tmp_path, capsys):
    from wfsearch.cli import main
    from wfsearch.report import hypervolume_data, noise_data, pareto_data, show_text
    from wfsearch.study import read_study

    folder = _noisy_study(tmp_path / "studies" / "noisy")
    view = read_study(folder)
    text = show_text(view)
    # the re-sample of trial 0 is not a second point: 2 on the front, as `run` and --pick count it
    assert "2 on the Pareto front" in text and "1 repeat of an architecture already evaluated" in text
    assert "noise: trials 0 and 1 are indistinguishable within noise" in text
    assert "0.5200 [0.4700, 0.5700]" in text  # value [90% interval] in the table
    s = noise_data(view)
    assert s.plausible == (0, 1) and 2 not in s.plausible  # the clearly dominated trial is not plausibly optimal
    assert "normalized" in text and hypervolume_data(view).box.half == (None, 100.0)
    front = [p for p in pareto_data(view).points if p.group == "front"]
    assert {(p.number, p.y_low, p.y_high, p.x_low, p.x_high) for p in front} == {
        (0, 0.45, 0.55, 95.0, 105.0), (1, 0.47, 0.57, 93.0, 103.0)}  # the plot's error bars
    rc = main(["export", str(folder), "--pick", "max accuracy", "--output", str(tmp_path / "r.yaml")])
    out = capsys.readouterr().out
    assert rc == 0 and "trial 1: accuracy 0.5200 (proxy top-1)" in out
    assert "note: trial 1 is indistinguishable within noise from trial 0" in out
