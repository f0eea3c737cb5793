"""A noise-aware front: which trials are *plausibly optimal* once measurement uncertainty is counted.

Objective values come with 90% intervals (``<metric>_low``/``_high`` metrics; without one a value is exact).
Trial j *clearly dominates* i when their intervals do not overlap: j's worst case is at least as good as i's
best case in every objective, strictly in one. A trial nothing clearly dominates is plausibly optimal. Two front
trials are *indistinguishable* when their intervals overlap in every objective: their order is noise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .interval import LEVEL
from .outcome import loss_signs

__all__ = ["LEVEL", "NoiseSummary", "indistinguishable_groups", "noise_summary", "objective_bounds", "overlap_all",
           "plausibly_optimal"]


def objective_bounds(metrics: Mapping[str, Any], names: Sequence[str],
                     values: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(lows, highs) of a trial's objective ``values`` from its ``<metric>_low/_high`` metrics; an objective
    without an interval (or one that does not contain the value) is exact."""
    lows, highs = [], []
    for name, v in zip(names, values):
        lo, hi = metrics.get(f"{name}_low"), metrics.get(f"{name}_high")
        ok = isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo <= v <= hi
        lows.append(float(lo) if ok else float(v))
        highs.append(float(hi) if ok else float(v))
    return tuple(lows), tuple(highs)


def _as_loss_bounds(lows: Sequence[Sequence[float]], highs: Sequence[Sequence[float]],
                    directions: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(best, worst) of each point as losses (for a maximized objective: -high and -low)."""
    lo = np.asarray(lows, dtype=float).reshape(-1, len(directions))
    hi = np.asarray(highs, dtype=float).reshape(-1, len(directions))
    maxi = np.array(loss_signs(directions)) < 0
    best = np.where(maxi, -hi, lo)
    worst = np.where(maxi, -lo, hi)
    return best, worst


def plausibly_optimal(lows: Sequence[Sequence[float]], highs: Sequence[Sequence[float]],
                      directions: Sequence[str]) -> np.ndarray:
    """A mask of the points no other point clearly dominates (see the module docstring)."""
    best, worst = _as_loss_bounds(lows, highs, directions)
    if len(directions) == 2 and np.all(np.isfinite(best)) and np.all(np.isfinite(worst)) and np.all(worst >= best):
        return ~_clearly_dominated_2d(best, worst)
    out = np.ones(len(best), dtype=bool)
    for i in range(len(best)):
        clearly = np.all(worst <= best[i], axis=1) & np.any(worst < best[i], axis=1)
        clearly[i] = False
        out[i] = not bool(clearly.any())
    return out


def _clearly_dominated_2d(best: np.ndarray, worst: np.ndarray) -> np.ndarray:
    """`plausibly_optimal`'s test for two objectives in ``O(N log N)``: a prefix minimum of ``worst[:, 1]`` over
    the points sorted by ``worst[:, 0]`` (no point passes its own test, as ``worst_i >= best_i``)."""
    order = np.argsort(worst[:, 0], kind="stable")
    w0 = worst[order, 0]
    prefix_min = np.minimum.accumulate(worst[order, 1])  # min of worst[:, 1] over the first k points
    upto = np.searchsorted(w0, best[:, 0], side="right")  # points with worst_0 <= best_i,0
    below = np.searchsorted(w0, best[:, 0], side="left")  # points with worst_0 < best_i,0
    a = (upto > 0) & (prefix_min[np.maximum(upto - 1, 0)] < best[:, 1])
    b = (below > 0) & (prefix_min[np.maximum(below - 1, 0)] <= best[:, 1])
    return a | b


def overlap_all(lo_a: Sequence[float], hi_a: Sequence[float], lo_b: Sequence[float], hi_b: Sequence[float]) -> bool:
    """Whether two points' intervals overlap in every objective."""
    return all(la <= hb and lb <= ha for la, ha, lb, hb in zip(lo_a, hi_a, lo_b, hi_b))


def indistinguishable_groups(lows: Sequence[Sequence[float]], highs: Sequence[Sequence[float]]) -> list[list[int]]:
    """Groups (indices, in order) of points linked by intervals overlapping in every objective (singletons left out)."""
    n = len(lows)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if overlap_all(lows[i], highs[i], lows[j], highs[j]):
                parent[find(j)] = find(i)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


@dataclass(frozen=True)
class NoiseSummary:
    """The noise-aware reading of a front (trial numbers)."""

    front: tuple[int, ...]  # trial numbers on the plain Pareto front
    plausible: tuple[int, ...]  # trial numbers no other trial clearly dominates (the front included)
    indistinguishable: tuple[tuple[int, ...], ...]  # groups of front members whose intervals overlap everywhere
    exact: tuple[str, ...] = ()  # objectives no trial had an interval for

    @property
    def within_noise(self) -> tuple[int, ...]:
        """Plausibly optimal trials that are not on the front: dominated, but only within the noise."""
        return tuple(n for n in self.plausible if n not in self.front)

    def lines(self) -> list[str]:
        """What `show`, the report and ``export --pick`` say about it, one finding a line."""
        out = []
        for group in self.indistinguishable:
            out.append(f"trials {_names(group)} are indistinguishable within noise (their {int(100 * LEVEL)}% "
                       "intervals overlap in every objective): their order on the front is not measured")
        if self.within_noise:
            out.append(f"plausibly optimal too: trial{'s' if len(self.within_noise) > 1 else ''} "
                       f"{_names(self.within_noise)} (dominated only within the measurement noise)")
        if self.exact:
            out.append(f"no interval stored for {', '.join(self.exact)}: taken as exact")
        return out


def _names(numbers: Sequence[int]) -> str:
    ns = [str(n) for n in numbers]
    return ns[0] if len(ns) == 1 else ", ".join(ns[:-1]) + " and " + ns[-1]


def noise_summary(trials: Sequence[tuple[int, Sequence[float], Mapping[str, Any]]], objectives: Sequence[str],
                  directions: Sequence[str], front: Sequence[int]) -> NoiseSummary:
    """`NoiseSummary` of trained ``trials`` ``(number, objective values, metrics)`` and the ``front`` numbers."""
    if not trials:
        return NoiseSummary(tuple(front), (), ())
    numbers = [n for n, _, _ in trials]
    bounds = [objective_bounds(m, objectives, v) for _, v, m in trials]
    lows, highs = [b[0] for b in bounds], [b[1] for b in bounds]
    mask = plausibly_optimal(lows, highs, directions)
    front_set = set(front)
    on_front = [i for i, n in enumerate(numbers) if n in front_set]
    groups = indistinguishable_groups([lows[i] for i in on_front], [highs[i] for i in on_front])
    exact = tuple(o for o in objectives if not any(f"{o}_low" in m for _, _, m in trials))
    return NoiseSummary(front=tuple(n for n in numbers if n in front_set),
                        plausible=tuple(n for n, keep in zip(numbers, mask) if keep),
                        indistinguishable=tuple(tuple(numbers[on_front[i]] for i in g) for g in groups),
                        exact=exact)
