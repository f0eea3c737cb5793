"""Big studies stay cheap: the incremental hypervolume history, the plausibly-optimal sweep and the batched
learning curves, each checked against a brute-force reference."""
from __future__ import annotations

import numpy as np
import pytest

from wfsearch.study import dominated_hypervolume, hypervolume_history
from wfsearch.study.hypervolume import HypervolumeBox, StaircaseArea


def brute_area(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """The dominated area by inclusion on a grid of the points' own coordinates (O(N^3), for checking)."""
    pts = [p for p in points if p[0] < ref[0] and p[1] < ref[1]]
    if not pts:
        return 0.0
    xs = sorted({p[0] for p in pts} | {ref[0]})
    ys = sorted({p[1] for p in pts} | {ref[1]})
    area = 0.0
    for x0, x1 in zip(xs, xs[1:]):
        for y0, y1 in zip(ys, ys[1:]):
            if any(p[0] <= x0 and p[1] <= y0 for p in pts):
                area += (x1 - x0) * (y1 - y0)
    return area


@pytest.mark.parametrize("seed", range(6))
def test_staircase_area_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    # rounded: ties in one or both coordinates, repeated points; some outside the reference
    points = [tuple(p) for p in np.round(rng.random((n, 2)) * 1.2, 1)]
    ref = (1.0, 1.0)
    area = StaircaseArea(ref)
    for i, p in enumerate(points):
        area.add(*p)
        assert area.area == pytest.approx(brute_area(points[:i + 1], ref), abs=1e-12)
        assert area.xs == sorted(area.xs) and all(a > b for a, b in zip(area.ys, area.ys[1:]))
    assert not area.add(float("nan"), 0.1) and not area.add(-float("inf"), 0.1)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("directions", [("maximize", "maximize"), ("maximize", "minimize"), ("minimize", "minimize")])
def test_histories_equal_the_hypervolume_of_every_prefix(seed, directions):
    rng = np.random.default_rng(seed)
    values = [tuple(v) for v in np.round(rng.random((80, 2)) * [1.0, 500.0], 2)]
    entries = [v if i % 5 else None for i, v in enumerate(values)]  # None: a trial that added no point
    box = HypervolumeBox.of([v for v in entries if v is not None], directions)
    got = box.history(entries)
    ref = (0.0, 0.0) if directions[1] == "maximize" else (0.0, 600.0)
    got_raw = hypervolume_history(entries, directions, ref if directions[0] == "maximize" else (1.5, ref[1]))
    seen = []
    for i, v in enumerate(entries):
        if v is not None:
            seen.append(v)
        assert got[i] == pytest.approx(box.hypervolume(seen) if seen else 0.0, rel=1e-9, abs=1e-12)
        want = dominated_hypervolume(seen, directions, ref if directions[0] == "maximize" else (1.5, ref[1])) if seen else 0.0
        assert got_raw[i] == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_three_objective_history_equals_every_prefix():
    rng = np.random.default_rng(0)
    values = [tuple(v) for v in np.round(rng.random((40, 3)), 2)]
    box = HypervolumeBox.of(values, ("maximize", "minimize", "maximize"))
    got = box.history(values)
    for i in range(len(values)):
        assert got[i] == pytest.approx(box.hypervolume(values[:i + 1]), rel=1e-9, abs=1e-12)


def test_history_of_many_points():  # its time: benchmarks/timings.py
    rng = np.random.default_rng(1)
    box = HypervolumeBox.of([(0.0, 0.0), (1.0, 1.0)], ("maximize", "maximize"))
    line = [(x, 1 - x) for x in rng.permutation(np.linspace(0.0, 1.0, 20_000))]  # a front 20,000 points long
    values = line + [tuple(v) for v in rng.random((50_000, 2))]  # then points that replace most of it
    hist = box.history(values)
    assert hist[-1] == pytest.approx(box.hypervolume(values), rel=1e-9)


def brute_plausible(lows, highs, directions) -> list[bool]:
    """`plausibly_optimal` by its definition, pair by pair (for checking)."""
    sign = [1 if d == "maximize" else -1 for d in directions]
    out = []
    for i in range(len(lows)):
        dominated = False
        for j in range(len(lows)):
            if j == i:
                continue
            # j's worst case is at least as good as i's best case everywhere, better somewhere
            pairs = [(lows[j][k], highs[i][k]) if s > 0 else (-highs[j][k], -lows[i][k]) for k, s in enumerate(sign)]
            if all(wj >= bi for wj, bi in pairs) and any(wj > bi for wj, bi in pairs):
                dominated = True
                break
        out.append(not dominated)
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("directions", [("maximize", "maximize"), ("maximize", "minimize")])
def test_plausibly_optimal_equals_pairwise_definition(seed, directions):
    from wfsearch.study.noise import plausibly_optimal

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 80))
    values = np.round(rng.random((n, 2)), 1)
    width = np.round(rng.random((n, 2)) * 0.2, 1) * (rng.random((n, 1)) < 0.7)  # some exact, ties everywhere
    lows, highs = (values - width).tolist(), (values + width).tolist()
    assert plausibly_optimal(lows, highs, directions).tolist() == brute_plausible(lows, highs, directions)


def test_many_learning_curves_are_a_few_traces_with_every_point():
    from wfsearch.report.data import Curve, CurvesData
    from wfsearch.report.figures import CURVE_TRACES_MAX, curves_figure

    def curve(n: int, group: str, fc1: str) -> Curve:
        return Curve(f"trial {n}", n, group, "ok", fc1, "none", (1.0, 2.0), (0.1 + n / 1000, 0.2 + n / 1000))

    few = CurvesData("accuracy", (), tuple(curve(n, "dominated", "none") for n in range(3)))
    assert len(curves_figure(few).data) == 3  # one trace per trial while they are few
    many = [curve(n, ("dominated", "pruned")[n % 2], ("none", "bilateral")[n % 3 == 0]) for n in range(CURVE_TRACES_MAX * 3)]
    fig = curves_figure(CurvesData("accuracy", (), tuple(many) + (curve(999, "front", "bilateral"),)))
    assert len(fig.data) == 4 + 1  # (group, fc1) batches, then the front trial on its own, drawn last
    assert fig.data[-1].name == "trial 999 (front)"
    points = {(t, round(y, 6)) for tr in fig.data for t, y in zip(tr.text or [tr.name.split(" (")[0]] * 2, tr.y)
              if y is not None}
    assert {(f"trial {c.number} ({c.group}: ok)", round(c.values[1], 6)) for c in many} <= points
