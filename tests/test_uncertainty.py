"""Intervals of measured numbers: order-statistic intervals of a median, Wilson intervals of an accuracy."""
import math

import pytest

from wfsearch.study.interval import Interval, accuracy_interval, median_interval, spread


def test_median_interval_uses_order_statistics_with_their_coverage():
    three = median_interval([61.0, 59.0, 60.0])
    assert (three.value, three.low, three.high) == (60.0, 59.0, 61.0)
    assert three.level == pytest.approx(0.75)  # 3 repeats: the range covers the median 75% of the time
    five = median_interval([5, 1, 4, 2, 3])
    assert (five.low, five.high) == (1, 5) and five.level == pytest.approx(1 - 2 / 32)
    many = median_interval(range(1, 21))  # 20 repeats: a tighter pair of order statistics reaches 90%
    assert 1 < many.low < many.value < many.high < 20 and many.level >= 0.9
    one = median_interval([7.0])
    assert (one.value, one.low, one.high, one.level) == (7.0, 7.0, 7.0, 0.0)
    assert math.isnan(median_interval([]).value)


def test_wilson_interval_matches_the_formula_and_widens_with_seed_noise():
    iv = accuracy_interval(0.45, 600)
    # the quick start's 600 validation images: a binomial standard error of about 2 points
    assert iv.low == pytest.approx(0.4169, abs=1e-4) and iv.high == pytest.approx(0.4836, abs=1e-4)
    noisy = accuracy_interval(0.45, 600, seed_noise=0.027)
    assert noisy.low < iv.low and noisy.high > iv.high
    assert noisy.high - 0.45 == pytest.approx(math.hypot(iv.high - 0.45, 1.6449 * 0.027), abs=1e-4)
    edge = accuracy_interval(1.0, 50)
    assert edge.high == 1.0 and 0.9 < edge.low < 1.0  # Wilson stays inside [0, 1] and not zero-width


def test_interval_round_trip_scale_and_format():
    iv = Interval(2.0, 1.5, 3.0, 0.75)
    assert Interval.from_dict(iv.to_dict()) == iv
    assert iv.scaled(10) == Interval(20.0, 15.0, 30.0, 0.75)
    assert iv.format(".1f") == "2.0 [1.5, 3.0]" and Interval(2.0, 1.5, 2.5).format(".1f") == "2.0 ± 0.5"
    assert spread([100, 50, 100]) == 0.5 and spread([3.0]) == 0.0
