"""How well a proxy ranks architectures, each statistic with a bootstrap interval over architectures.

``final``: ``(architectures, seeds)`` accuracies at the proxy budget (NaN: unfinished); ``rung1`` the same
runs at the first rung; ``long`` independent runs at a longer budget. Statistics: ``icc`` ICC(1,1) =
(MSB - MSW) / (MSB + (k - 1) MSW) (Shrout and Fleiss 1979: the share of one run's variance between
architectures); ``spearman_seeds`` the mean Spearman correlation over seed pairs; ``tau_long`` Kendall's
tau of the seed means against the longer budget's; ``above_chance`` the share of runs beating chance by a
one-sided binomial test (p < 0.05, ``n_val`` images); ``tau_rung`` Kendall's tau of one seed's first rung
against another's final accuracy. Intervals: seeded percentile bootstraps (``LEVEL``, 1,000 resamples).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from wfsearch.study.interval import LEVEL, Interval

# the verdict's bar: what the quick start's proxy is held to (benchmarks/proxy_quality.py)
BAR = {"icc": 0.75, "icc_low": 0.5, "above_chance": 0.9, "tau_long": 0.6}


def icc1(x: np.ndarray) -> float:
    """ICC(1,1) of an ``(n, k)`` array (rows: architectures, columns: seeds), rows with a NaN dropped."""
    x = x[~np.isnan(x).any(axis=1)]
    n, k = x.shape
    if n < 2 or k < 2:
        return float("nan")
    grand = x.mean()
    msb = k * ((x.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    msw = ((x - x.mean(axis=1, keepdims=True)) ** 2).sum() / (n * (k - 1))
    den = msb + (k - 1) * msw
    return float((msb - msw) / den) if den > 0 else float("nan")


def _corr(a: np.ndarray, b: np.ndarray, kind: str) -> float:
    from scipy.stats import kendalltau, spearmanr

    ok = ~(np.isnan(a) | np.isnan(b))
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    fn = kendalltau if kind == "kendall" else spearmanr
    return float(fn(a[ok], b[ok]).statistic)


def _finite_mean(vals: list[float]) -> float:
    vals = [v for v in vals if math.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def spearman_seeds(x: np.ndarray) -> float:
    k = x.shape[1]
    return _finite_mean([_corr(x[:, i], x[:, j], "spearman") for i in range(k) for j in range(i + 1, k)])


def tau_rung(rung1: np.ndarray, final: np.ndarray) -> float:
    """Mean Kendall tau of the first rung of seed i against the final accuracy of seed j != i."""
    k = final.shape[1]
    return _finite_mean([_corr(rung1[:, i], final[:, j], "kendall") for i in range(k) for j in range(k) if i != j])


def above_chance(acc: np.ndarray, n_val: int, num_classes: int, alpha: float = 0.05) -> np.ndarray:
    """Per run: does its accuracy on ``n_val`` images beat chance (one-sided binomial test)?"""
    from scipy.stats import binom

    correct = np.round(np.nan_to_num(acc, nan=0.0) * n_val)
    p = binom.sf(correct - 1, n_val, 1.0 / num_classes)  # P(X >= correct) under chance
    return (p < alpha) & ~np.isnan(acc)


def _nanmean_rows(x: np.ndarray) -> np.ndarray:
    out = np.full(len(x), np.nan)
    ok = ~np.isnan(x).all(axis=1)
    out[ok] = np.nanmean(x[ok], axis=1)
    return out


@dataclass
class ProxyQuality:
    """The statistics of `proxy_quality`, each an `Interval` (NaN where it cannot be measured)."""

    n_archs: int
    n_seeds: int
    icc: Interval
    spearman_seeds: Interval
    above_chance: Interval
    tau_rung: Interval
    tau_long: Interval | None = None
    chance: float = float("nan")
    seed_noise: float = float("nan")  # pooled within-architecture std of the final accuracy
    val_noise: float = float("nan")  # the binomial std of one accuracy on n_val images, at the mean accuracy
    notes: list[str] = field(default_factory=list)

    def passed(self) -> bool:
        ok = (self.icc.value >= BAR["icc"] and self.icc.low >= BAR["icc_low"]
              and self.above_chance.value >= BAR["above_chance"])
        if self.tau_long is not None and math.isfinite(self.tau_long.value):
            ok = ok and self.tau_long.value >= BAR["tau_long"]
        return bool(ok)

    def advice(self) -> list[str]:
        """What to change when the proxy fails, from which statistic fails."""
        out = []
        if not self.above_chance.value >= BAR["above_chance"]:
            out.append(f"{1 - self.above_chance.value:.0%} of runs are at chance: train longer (more epochs) "
                       "or make the task easier to learn")
        if not (self.icc.value >= BAR["icc"] and self.icc.low >= BAR["icc_low"]):
            if math.isfinite(self.val_noise) and self.val_noise >= 0.7 * self.seed_noise:
                out.append("seed noise is mostly validation noise: use more validation images")
            else:
                out.append("seeds disagree: train longer, or at a larger resolution")
        if self.tau_long is not None and not self.tau_long.value >= BAR["tau_long"]:
            out.append("the ranking changes with a longer budget: train longer")
        return out

    def verdict(self) -> str:
        icc = f"ICC(1,1) {self.icc.value:.2f} [{self.icc.low:.2f}, {self.icc.high:.2f}]"
        chance = f"{self.above_chance.value:.0%} of runs above chance"
        tau = (f", tau with {self.tau_long_label} {self.tau_long.value:.2f}"
               if self.tau_long is not None and math.isfinite(self.tau_long.value) else "")
        if self.passed():
            return f"PASS: the proxy tells designs apart ({icc}, {chance}{tau})"
        return f"FAIL: the proxy cannot tell designs apart ({icc}, {chance}{tau}): " + "; ".join(self.advice())

    tau_long_label: str = "the longer budget"

    def to_dict(self) -> dict[str, Any]:
        d = {k: (v.to_dict() if isinstance(v, Interval) else v) for k, v in self.__dict__.items()}
        d.update(passed=self.passed(), verdict=self.verdict())
        return d


def _bootstrap(stat: Callable[[np.ndarray], float], n: int, seed: int, resamples: int = 1000,
               level: float = LEVEL) -> Interval:
    """Percentile bootstrap interval of ``stat(indices)`` over ``n`` architectures."""
    value = stat(np.arange(n))
    rng = np.random.default_rng(seed)
    draws = np.array([stat(rng.integers(0, n, n)) for _ in range(resamples)])
    draws = draws[np.isfinite(draws)]
    if not math.isfinite(value) or len(draws) < resamples // 2:
        v = value if math.isfinite(value) else math.nan
        return Interval(v, v, v, level)
    a = (1 - level) / 2
    low, high = np.quantile(draws, [a, 1 - a])
    return Interval(value, float(min(low, value)), float(max(high, value)), level)


def proxy_quality(final: np.ndarray, *, n_val: int, num_classes: int, rung1: np.ndarray | None = None,
                  long: np.ndarray | None = None, resamples: int = 1000, seed: int = 0) -> ProxyQuality:
    """The `ProxyQuality` of runs ``final`` ``(architectures, seeds)``; see the module docstring."""
    final = np.asarray(final, float)
    n, k = final.shape
    chance = 1.0 / num_classes
    above = above_chance(final, n_val, num_classes)
    finished = ~np.isnan(final)

    def boot(fn: Callable[[np.ndarray], float]) -> Interval:
        return _bootstrap(fn, n, seed, resamples)

    q = ProxyQuality(
        n, k,
        icc=boot(lambda i: icc1(final[i])),
        spearman_seeds=boot(lambda i: spearman_seeds(final[i])),
        above_chance=boot(lambda i: float(above[i].sum() / max(finished[i].sum(), 1))),
        tau_rung=(boot(lambda i: tau_rung(rung1[i], final[i])) if rung1 is not None
                  else Interval(math.nan, math.nan, math.nan)),
        chance=chance)
    if long is not None:
        long_mean = _nanmean_rows(np.asarray(long, float))
        mean = _nanmean_rows(final)
        q.tau_long = boot(lambda i: _corr(mean[i], long_mean[i], "kendall"))
    full = final[~np.isnan(final).any(axis=1)]
    if len(full):
        q.seed_noise = float(np.sqrt(np.mean(np.var(full, axis=1, ddof=1)))) if k > 1 else math.nan
        p = float(np.mean(full))
        q.val_noise = math.sqrt(p * (1 - p) / n_val)
    return q
