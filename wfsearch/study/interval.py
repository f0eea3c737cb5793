"""How sure a measured number is: distribution-free intervals for a median, Wilson intervals for an accuracy.

Every interval is a nominal 90% one (``LEVEL``). For a median of n repeats it is the order-statistic interval
``[x_(k), x_(n+1-k)]`` with the largest k that still covers 90% whatever the distribution; with fewer than 5
repeats none does, so it is the whole range and ``level`` says what it covers (75% with 3). No resampling.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

LEVEL = 0.9
Z = {0.8: 1.2815515655446004, 0.9: 1.6448536269514722, 0.95: 1.959963984540054}


@dataclass(frozen=True)
class Interval:
    """A measured ``value`` with the ``[low, high]`` interval around it; ``level`` is its coverage."""

    value: float
    low: float
    high: float
    level: float = LEVEL

    def __post_init__(self) -> None:
        assert self.low <= self.value <= self.high or not math.isfinite(self.value), self

    @property
    def minus(self) -> float:
        return self.value - self.low

    @property
    def plus(self) -> float:
        return self.high - self.value

    def scaled(self, factor: float) -> "Interval":
        return Interval(self.value * factor, self.low * factor, self.high * factor, self.level)

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high, "level": self.level}

    @classmethod
    def from_dict(cls, d: dict | Sequence | None) -> "Interval | None":
        """From `to_dict`'s form (or ``[low, high]``: the midpoint); None stays None."""
        if d is None:
            return None
        if isinstance(d, dict):
            return cls(float(d["value"]), float(d["low"]), float(d["high"]), float(d.get("level", LEVEL)))
        low, high = float(d[0]), float(d[1])
        return cls((low + high) / 2, low, high)

    def format(self, spec: str = ".1f", unit: str = "") -> str:
        """``60.5 [59.8, 61.2]``: the value and its interval (symmetric ones as ``60.5 ± 0.7``)."""
        v, lo, hi = (format(x, spec) for x in (self.value, self.low, self.high))
        if format(self.minus, spec) == format(self.plus, spec):
            return f"{v} ± {format(self.plus, spec)}{unit}"
        return f"{v} [{lo}, {hi}]{unit}"


def _binom_cdf_half(k: int, n: int) -> float:  # P(Bin(n, 1/2) <= k)
    return sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n


def median_interval(samples: Sequence[float], level: float = LEVEL) -> Interval:
    """The median of ``samples`` with its order-statistic interval (see the module docstring)."""
    xs = sorted(float(x) for x in samples)
    n = len(xs)
    if n == 0:
        nan = float("nan")
        return Interval(nan, nan, nan, 0.0)
    med = statistics.median(xs)
    k, cover = 1, 1 - 2 * _binom_cdf_half(0, n) if n > 1 else 0.0
    while k + 1 <= (n + 1) // 2:
        c = 1 - 2 * _binom_cdf_half(k, n)  # coverage of [x_(k+1), x_(n-k)]
        if c < level:
            break
        k, cover = k + 1, c
    return Interval(med, xs[k - 1], xs[n - k], round(cover, 6))


def spread(samples: Sequence[float]) -> float:
    """(max - min) / median of the repeats: the relative spread a warning looks at (0 for one repeat)."""
    xs = [float(x) for x in samples]
    if len(xs) < 2:
        return 0.0
    med = statistics.median(xs)
    return (max(xs) - min(xs)) / med if med else float("inf")


def accuracy_interval(accuracy: float, n: int, seed_noise: float | None = None, level: float = LEVEL) -> Interval:
    """Wilson interval of an accuracy on ``n`` images, widened in quadrature by ``seed_noise`` (its seed-to-seed sd)."""
    z = Z.get(level) or statistics.NormalDist().inv_cdf(0.5 + level / 2)
    p = min(1.0, max(0.0, float(accuracy)))
    if n < 1:
        return Interval(p, 0.0, 1.0, level)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    if seed_noise:
        s = z * float(seed_noise)
        low = max(0.0, p - math.hypot(p - low, s))
        high = min(1.0, p + math.hypot(high - p, s))
    return Interval(p, min(low, p), max(high, p), level)
