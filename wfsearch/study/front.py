"""The Pareto front of a study (one point per architecture), non-dominated ranks and hypervolume, computed on
losses (minimization) by Optuna's own non-dominated sorting and hypervolume."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from .hypervolume import StaircaseArea
from .optuna_api import compute_hypervolume, fast_non_domination_rank, is_pareto_front
from .outcome import loss_sign, loss_signs
from .record import TrialRecord


def as_loss(values: Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    return np.asarray(values, dtype=float).reshape(-1, len(directions)) * np.array(loss_signs(directions))


def on_front(values: Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    """A mask of the non-dominated points (equal points are all on the front)."""
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    return is_pareto_front(as_loss(values, directions), assume_unique_lexsorted=False)


def pareto_front(records: Sequence[TrialRecord], directions: Sequence[str]) -> list[TrialRecord]:
    """The non-dominated trained search trials, by number, one per architecture."""
    trials = one_per_arch([r for r in sorted(records, key=lambda r: r.number) if r.is_search and r.trained])
    mask = on_front([r.values for r in trials], directions)
    return [r for r, keep in zip(trials, mask) if keep]


def one_per_arch(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """``records`` without later trials of an architecture seen before (a repeat is not a second point)."""
    out, seen = [], set()
    for r in records:
        if r.arch_hash is None or r.arch_hash not in seen:
            out.append(r)
            seen.add(r.arch_hash)
    return out


def nondominated_ranks(values: Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    """Rank 0 for the Pareto front, 1 for the front of the rest, and so on."""
    if len(values) == 0:
        return np.zeros(0, dtype=int)
    return fast_non_domination_rank(as_loss(values, directions))


def crowding_distances(values: Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    """NSGA-II crowding distance of each point within its own set (boundary points get inf)."""
    loss = as_loss(values, directions)
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


def reference_point(directions: Sequence[str], values: Sequence[Sequence[float]]) -> tuple[float, ...]:
    """0 for maximized objectives, 1.1 x the largest value seen for minimized ones."""
    return tuple(0.0 if loss_sign(d) < 0 else 1.1 * max((v[j] for v in values), default=1.0)
                 for j, d in enumerate(directions))


def dominated_hypervolume(values: Sequence[Sequence[float]], directions: Sequence[str],
                          reference: Sequence[float]) -> float:
    """Hypervolume dominated by ``values`` with respect to ``reference`` (in the objectives' own units)."""
    if len(values) == 0:
        return 0.0
    loss = as_loss(values, directions)
    ref = as_loss([reference], directions)[0]
    loss = loss[np.all(loss < ref, axis=1)]
    if loss.size == 0:
        return 0.0
    return float(compute_hypervolume(loss[on_front(loss, ["minimize"] * loss.shape[1])], ref))


def hypervolume_history(values: Sequence[Sequence[float] | None], directions: Sequence[str],
                        reference: Sequence[float]) -> list[float]:
    """The hypervolume after each point of ``values`` in order (None: a trial that added no point). Two
    objectives: one `StaircaseArea` (``O(N log N)``); more: the front is recomputed when a point joins it."""
    m = len(directions)
    ref = as_loss([reference], directions)[0]
    present = [v for v in values if v is not None]
    losses = iter(as_loss(present, directions).tolist() if present else ())
    out, front, hv = [], np.zeros((0, m)), 0.0
    area = StaircaseArea(ref) if m == 2 else None
    for v in values:
        p = None if v is None else next(losses)
        if p is not None and area is not None:
            if area.add(*p):
                hv = area.area
        elif p is not None and np.all(np.isfinite(p)) and np.all(p < ref) and \
                not (front.size and np.any(np.all(front <= p, axis=1))):
            front = np.vstack([front[~np.all(np.asarray(p) <= front, axis=1)], p])
            hv = float(compute_hypervolume(front, ref))
        out.append(hv)
    return out
