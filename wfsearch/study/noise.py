"""A noise-aware front: which trials are *plausibly optimal* once measurement uncertainty is counted.

Every objective value a trial stores comes with a 90% interval (``<metric>_low`` and ``<metric>_high``
among its metrics: the order-statistic interval of the speed repeats, the Wilson interval of the
accuracy; objectives without one, such as params, are exact). Trial ``j`` *clearly dominates*
trial ``i`` when it is better by more than their combined uncertainty, that is when the intervals
do not overlap: ``low_j >= high_i`` for each maximized objective (``high_j <= low_i`` for each
minimized one), strictly in at least one (with exact values this is plain Pareto dominance). A trial no other trial clearly dominates is plausibly optimal: with
other measurements it could have been on the front. Every front trial is plausibly optimal; so are
trials dominated only within the noise.

Two front trials are *indistinguishable* when their intervals overlap in every objective: which
of them is better in any objective is then not known, so their order on the front is noise.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from wfsearch.proxy.uncertainty import LEVEL

__all__ = ["LEVEL", "objective_bounds", "plausibly_optimal", "indistinguishable_groups", "overlap_all"]


def objective_bounds(metrics: Mapping[str, Any], names: Sequence[str],
                     values: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(lows, highs) of a trial's objective ``values`` from its stored ``<metric>_low/_high``
    metrics; an objective without an interval (or one that does not contain the value) is exact."""
    lows, highs = [], []
    for name, v in zip(names, values):
        lo, hi = metrics.get(f"{name}_low"), metrics.get(f"{name}_high")
        ok = isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo <= v <= hi
        lows.append(float(lo) if ok else float(v))
        highs.append(float(hi) if ok else float(v))
    return tuple(lows), tuple(highs)


def _as_loss_bounds(lows: Sequence[Sequence[float]], highs: Sequence[Sequence[float]],
                    directions: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(best, worst) of each point as losses (minimization): for a maximized objective the best
    loss is -high and the worst -low."""
    lo = np.asarray(lows, dtype=float).reshape(-1, len(directions))
    hi = np.asarray(highs, dtype=float).reshape(-1, len(directions))
    maxi = np.array([d == "maximize" for d in directions])
    best = np.where(maxi, -hi, lo)
    worst = np.where(maxi, -lo, hi)
    return best, worst


def plausibly_optimal(lows: Sequence[Sequence[float]], highs: Sequence[Sequence[float]],
                      directions: Sequence[str]) -> np.ndarray:
    """A mask of the points no other point clearly dominates (see the module docstring)."""
    best, worst = _as_loss_bounds(lows, highs, directions)
    n = len(best)
    out = np.ones(n, dtype=bool)
    for i in range(n):
        # j clearly dominates i: j's worst case is at least as good as i's best case in every
        # objective and better in one (with exact values: plain Pareto dominance)
        clearly = np.all(worst <= best[i], axis=1) & np.any(worst < best[i], axis=1)
        clearly[i] = False
        out[i] = not bool(clearly.any())
    return out


def overlap_all(lo_a: Sequence[float], hi_a: Sequence[float], lo_b: Sequence[float], hi_b: Sequence[float]) -> bool:
    """Whether two points' intervals overlap in every objective."""
    return all(la <= hb and lb <= ha for la, ha, lb, hb in zip(lo_a, hi_a, lo_b, hi_b))


def indistinguishable_groups(lows: Sequence[Sequence[float]], highs: Sequence[Sequence[float]]) -> list[list[int]]:
    """Groups (indices, in order) of points linked by overlapping intervals in every objective;
    points that overlap no other point are left out."""
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
