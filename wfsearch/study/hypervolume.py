"""The normalized hypervolume: one number for how good a front is, that can tell two searches apart.

The raw hypervolume against (0 accuracy, 0 img/s) is essentially best accuracy x best throughput:
the corner trials decide it and the shape of the front between them hardly moves it. Here each
objective is first mapped to [0, 1] over a *box*: 0 at the worst value any feasible (trained)
trial reached, 1 at the best, so every objective weighs the same whatever its unit. The reference
point sits ``MARGIN`` (10%) of each range beyond the worst value, so the trials at the ends of the
front count too, and the volume is divided by ``(1 + MARGIN) ** m``: a single trial best in every
objective scores 1, a front that is one point at the worst corner scores 0.

The box is what a hypervolume depends on, so it is stored with the study (``hypervolume_box``)
and printed beside the figure. Within a study ``run``, ``show`` and the report all compute it from
the same feasible trials, hence the same number; hypervolumes of different searches compare only
under one box, so ``benchmarks/mo_asha.py`` uses the box of all the studies it compares.
"""
from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .outcome import loss_signs

MARGIN = 0.1
BOX_ATTR = "hypervolume_box"


class StaircaseArea:
    """The area that two-objective losses (minimized) dominate below ``reference``, kept as points arrive.

    The front is held sorted by the first loss (the second then strictly falls), with the area as a
    sum of strips ``(x_next - x_i) * (ref_y - y_i)``. A point finds its place by bisection; the points it
    dominates are contiguous there and each leaves once, so N points cost ``O(N log N)`` comparisons
    (plus list moves of the front, which C does in bulk).
    """

    def __init__(self, reference: Sequence[float]):
        self.rx, self.ry = float(reference[0]), float(reference[1])
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.area = 0.0

    def _next_x(self, i: int) -> float:
        return self.xs[i] if i < len(self.xs) else self.rx

    def add(self, x: float, y: float) -> bool:
        """Add a point; True when it joined the front (the area grew)."""
        x, y = float(x), float(y)
        if not (math.isfinite(x) and math.isfinite(y) and x < self.rx and y < self.ry):  # outside the box
            return False
        xs, ys = self.xs, self.ys
        i = bisect_right(xs, x)  # xs[:i] <= x
        if i and ys[i - 1] <= y:  # dominated by (or equal to) a point of the front
            return False
        j = bisect_left(xs, x, 0, i)  # xs[j:i] == x, with larger y: dominated by the new point
        k = i
        while k < len(ys) and ys[k] >= y:  # further right and no lower: dominated too
            k += 1
        gone = sum((self._next_x(t + 1) - xs[t]) * (self.ry - ys[t]) for t in range(j, k))
        if j:  # the strip of the point before now ends at x
            self.area += (x - self._next_x(j)) * (self.ry - ys[j - 1])
        self.area += (self._next_x(k) - x) * (self.ry - y) - gone
        xs[j:k] = [x]
        ys[j:k] = [y]
        return True


@dataclass(frozen=True)
class HypervolumeBox:
    """Per objective: the worst and the best feasible value (the ends of its [0, 1] scale)."""

    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    worst: tuple[float, ...]
    best: tuple[float, ...]
    margin: float = MARGIN

    @classmethod
    def of(cls, values: Sequence[Sequence[float]], directions: Sequence[str],
           objectives: Sequence[str] | None = None) -> "HypervolumeBox | None":
        """The box of ``values`` (the feasible trials' objective values); None when there are none."""
        arr = np.asarray(values, dtype=float).reshape(-1, len(directions))
        arr = arr[np.all(np.isfinite(arr), axis=1)]
        if not len(arr):
            return None
        maxi = np.array(loss_signs(directions)) < 0
        worst = np.where(maxi, arr.min(axis=0), arr.max(axis=0))
        best = np.where(maxi, arr.max(axis=0), arr.min(axis=0))
        names = tuple(objectives) if objectives is not None else tuple(f"objective {i}" for i in range(len(directions)))
        return cls(names, tuple(directions), tuple(map(float, worst)), tuple(map(float, best)))

    def normalize(self, values: Sequence[Sequence[float]]) -> np.ndarray:
        """Each value on its objective's [0, 1] scale (1 = best); an objective in which every
        feasible trial scored the same does not separate trials and counts 1 for all."""
        arr = np.asarray(values, dtype=float).reshape(-1, len(self.directions))
        worst, best = np.asarray(self.worst), np.asarray(self.best)
        span = best - worst  # negative for a minimized objective
        flat = span == 0
        u = (arr - worst) / np.where(flat, 1.0, span)
        return np.where(flat, 1.0, u)

    def hypervolume(self, values: Sequence[Sequence[float]]) -> float:
        """Normalized hypervolume of ``values`` in this box, in [0, 1] for values inside it."""
        from .optuna_api import compute_hypervolume

        if len(values) == 0:
            return 0.0
        u = self.normalize(values)
        u = u[np.all(np.isfinite(u), axis=1)]
        ref = np.full(u.shape[1], -self.margin)
        loss, ref_loss = -u, -ref
        loss = loss[np.all(loss < ref_loss, axis=1)]
        if not len(loss):
            return 0.0
        return float(compute_hypervolume(loss, ref_loss)) / (1 + self.margin) ** u.shape[1]

    def history(self, values: Sequence[Sequence[float] | None]) -> list[float]:
        """The hypervolume after each entry of ``values`` in order (None: a trial that added no point):
        `front.hypervolume_history` of the values on the box's scale (``O(N log N)`` for two objectives)."""
        from .front import hypervolume_history

        m = len(self.directions)
        present = [v for v in values if v is not None]
        u = iter(self.normalize(present).tolist() if present else ())
        scaled = [None if v is None else next(u) for v in values]
        return [hv / (1 + self.margin) ** m for hv in
                hypervolume_history(scaled, ("maximize",) * m, (-self.margin,) * m)]

    def describe(self) -> str:
        """``accuracy 0.203..0.289, throughput 380..641`` (worst..best, the reference 10% beyond the worst)."""
        return ", ".join(f"{o} {w:.4g}..{b:.4g}" for o, w, b in zip(self.objectives, self.worst, self.best))

    def to_dict(self) -> dict[str, Any]:
        return {"objectives": list(self.objectives), "directions": list(self.directions), "worst": list(self.worst),
                "best": list(self.best), "margin": self.margin,
                "how": "each objective scaled to [0, 1] from its worst to its best feasible value; reference "
                       "point `margin` of the range beyond the worst; volume / (1 + margin)^m"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HypervolumeBox":
        return cls(tuple(d["objectives"]), tuple(d["directions"]), tuple(map(float, d["worst"])),
                   tuple(map(float, d["best"])), float(d.get("margin", MARGIN)))


def normalized_hypervolume(values: Sequence[Sequence[float]], directions: Sequence[str],
                           box: HypervolumeBox | None = None) -> float:
    """The normalized hypervolume of ``values`` in ``box`` (default: the box of ``values`` themselves)."""
    box = box or HypervolumeBox.of(values, directions)
    return box.hypervolume(values) if box is not None else 0.0
