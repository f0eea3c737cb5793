"""Non-dominated sorting, crowding distance and hypervolume on plain value lists.

Values are given with their directions; everything is turned into minimization internally.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _as_loss(values: Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    arr = np.asarray(values, dtype=float).reshape(-1, len(directions))
    return arr * signs


def nondominated_ranks(values: Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    """Rank 0 for the Pareto front, 1 for the front of the rest, and so on (Optuna's sort: each front
    in O(N log N) for two objectives; equal points share a rank)."""
    from optuna.study._multi_objective import _fast_non_domination_rank

    if len(values) == 0:
        return np.zeros(0, dtype=int)
    return _fast_non_domination_rank(_as_loss(values, directions))


def on_front(values: Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    """A mask of the non-dominated points (equal points are all on the front), O(N log N) for two objectives."""
    from optuna.study._multi_objective import _is_pareto_front

    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    return _is_pareto_front(_as_loss(values, directions), assume_unique_lexsorted=False)


def crowding_distances(values: Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    """NSGA-II crowding distance of each point within its own set (boundary points get inf)."""
    loss = _as_loss(values, directions)
    n, m = loss.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(loss[:, j], kind="stable")
        span = loss[order[-1], j] - loss[order[0], j]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span == 0:
            continue
        dist[order[1:-1]] += (loss[order[2:], j] - loss[order[:-2], j]) / span
    return dist


def pareto_order(values: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Indices from best to worst: by non-dominated rank, then larger crowding distance."""
    if len(values) == 0:
        return []
    ranks = nondominated_ranks(values, directions)
    crowd = np.zeros(len(ranks))
    for r in np.unique(ranks):
        idx = np.where(ranks == r)[0]
        crowd[idx] = crowding_distances([values[i] for i in idx], directions)
    return sorted(range(len(ranks)), key=lambda i: (ranks[i], -crowd[i]))


def hypervolume(values: Sequence[Sequence[float]], directions: Sequence[str],
                reference: Sequence[float]) -> float:
    """Hypervolume dominated by ``values`` with respect to ``reference`` (in the objectives' own units)."""
    if len(values) == 0:
        return 0.0
    loss = _as_loss(values, directions)
    ref = _as_loss([reference], directions)[0]
    loss = loss[np.all(loss < ref, axis=1)]
    if loss.size == 0:
        return 0.0
    from optuna._hypervolume import compute_hypervolume

    return float(compute_hypervolume(loss, ref))
