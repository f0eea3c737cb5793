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

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

MARGIN = 0.1
BOX_ATTR = "hypervolume_box"


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
        maxi = np.array([d == "maximize" for d in directions])
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
        from optuna._hypervolume import compute_hypervolume

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
        """The hypervolume after each entry of ``values`` in order (None: a trial that added no point)."""
        out, seen, hv = [], [], 0.0
        for v in values:
            if v is not None:
                seen.append(list(v))
                hv = self.hypervolume(seen)
            out.append(hv)
        return out

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
