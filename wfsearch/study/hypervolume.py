"""The normalized hypervolume: each objective mapped to [0, 1] over a *box*, so every objective weighs the same
whatever its unit (the raw hypervolume is essentially best accuracy x best throughput).

A study's box (`study_box`) is fixed before its first trained trial, so the figure never falls: accuracy runs
linearly from chance (0) to 1; throughput maps ``r / (1 + r)`` by its ratio r to the reference model; any other
objective likewise against its value in the first trained trial. It is stored as ``hypervolume_box``.
`HypervolumeBox.of` draws a box around given values instead (what ``benchmarks/mo_asha.py`` uses).
"""
from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .outcome import loss_sign, loss_signs

MARGIN = 0.1
BOX_ATTR = "hypervolume_box"


class StaircaseArea:
    """The area that two-objective losses (minimized) dominate below ``reference``, kept as points arrive:
    the front sorted by the first loss, the area a sum of strips ``(x_next - x_i) * (ref_y - y_i)``; a point
    finds its place by bisection, so N points cost ``O(N log N)`` comparisons."""

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
    """Per objective: the values that score 0 (``worst``) and 1 (``best``); for an open axis (``half`` set) the
    value that scores 0.5: ``v / (v + half)`` maximized, ``half / (v + half)`` minimized."""

    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    worst: tuple[float, ...]
    best: tuple[float, ...]
    margin: float = MARGIN
    half: tuple[float | None, ...] = ()

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
        """Each value on its objective's [0, 1] scale (1 = best); a flat objective counts 1 for all."""
        arr = np.asarray(values, dtype=float).reshape(-1, len(self.directions))
        worst, best = np.asarray(self.worst), np.asarray(self.best)
        span = best - worst  # negative for a minimized objective
        flat = span == 0
        u = np.where(flat, 1.0, (arr - worst) / np.where(flat, 1.0, span))
        for j, h in enumerate(self.half):
            if h is not None:
                u[:, j] = arr[:, j] / (arr[:, j] + h) if loss_sign(self.directions[j]) < 0 else h / (arr[:, j] + h)
        return u

    def hypervolume(self, values: Sequence[Sequence[float]]) -> float:
        """Normalized hypervolume of ``values`` in this box, in [0, 1] for values inside it."""
        from .optuna_api import compute_hypervolume

        if len(values) == 0:
            return 0.0
        u = self.normalize(values)
        u = u[np.all(np.isfinite(u), axis=1)]
        loss, ref_loss = -u, np.full(u.shape[1], self.margin)
        loss = loss[np.all(loss < ref_loss, axis=1)]
        if not len(loss):
            return 0.0
        return float(compute_hypervolume(loss, ref_loss)) / (1 + self.margin) ** u.shape[1]

    def history(self, values: Sequence[Sequence[float] | None]) -> list[float]:
        """`front.hypervolume_history` of ``values`` on the box's scale (None: a trial that added no point)."""
        from .front import hypervolume_history

        m = len(self.directions)
        present = [v for v in values if v is not None]
        u = iter(self.normalize(present).tolist() if present else ())
        scaled = [None if v is None else next(u) for v in values]
        return [hv / (1 + self.margin) ** m for hv in
                hypervolume_history(scaled, ("maximize",) * m, (-self.margin,) * m)]

    @property
    def fixed(self) -> bool:
        """A study's box (`study_box`), as opposed to one drawn around given values (`of`)."""
        return bool(self.half)

    def describe(self) -> str:
        """``accuracy 0.25 (chance)..1, throughput v/(v + 426.6)``: what scores 0 and 1 on each axis."""
        def axis(o: str, d: str, w: float, b: float, h: float | None) -> str:
            if h is None:
                return f"{o} {w:.4g}..{b:.4g}"
            return f"{o} v/(v + {h:.4g})" if loss_sign(d) < 0 else f"{o} {h:.4g}/(v + {h:.4g})"
        return ", ".join(axis(*a) for a in zip(self.objectives, self.directions, self.worst, self.best,
                                               self.half or (None,) * len(self.objectives)))

    def to_dict(self) -> dict[str, Any]:
        how = ("fixed for the study: linear from worst (0) to best (1), or v/(v + half) (maximized), "
               "half/(v + half) (minimized) where half is set; volume / (1 + margin)^m" if self.fixed else
               "each objective scaled to [0, 1] from its worst to its best feasible value; reference "
               "point `margin` of the range beyond the worst; volume / (1 + margin)^m")
        return {"objectives": list(self.objectives), "directions": list(self.directions), "worst": list(self.worst),
                "best": list(self.best), "margin": self.margin, **({"half": list(self.half)} if self.half else {}),
                "how": how}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HypervolumeBox":
        return cls(tuple(d["objectives"]), tuple(d["directions"]), tuple(map(float, d["worst"])),
                   tuple(map(float, d["best"])), float(d.get("margin", MARGIN)),
                   tuple(None if h is None else float(h) for h in d.get("half") or ()))


def study_box(objectives: Sequence[str], directions: Sequence[str], *, chance: float | None = None,
              reference_img_s: float | None = None, first: Sequence[float] | None = None) -> HypervolumeBox | None:
    """A study's fixed box (``first``: its first trained trial's values); None while an axis still needs ``first``."""
    worst, best, half = [], [], []
    for j, (name, d) in enumerate(zip(objectives, directions)):
        if name == "accuracy" and loss_sign(d) < 0:
            worst.append(float(chance or 0.0))
            best.append(1.0)
            half.append(None)
            continue
        s = reference_img_s if name == "throughput" else 1.0 if name == "throughput_ratio" else None
        if not s and first is not None and math.isfinite(first[j]) and first[j] > 0:
            s = float(first[j])
        if not s:
            return None
        worst.append(0.0)
        best.append(float(s))
        half.append(float(s))
    return HypervolumeBox(tuple(objectives), tuple(directions), tuple(worst), tuple(best), 0.0, tuple(half))


def stored_box(attrs: dict[str, Any], objectives: Sequence[str]) -> HypervolumeBox | None:
    """The fixed box a study stores (``hypervolume_box``), None when it stores none or an older kind."""
    d = attrs.get(BOX_ATTR)
    if not isinstance(d, dict) or not d.get("half") or list(d.get("objectives") or ()) != list(objectives):
        return None
    return HypervolumeBox.from_dict(d)


def normalized_hypervolume(values: Sequence[Sequence[float]], directions: Sequence[str],
                           box: HypervolumeBox | None = None) -> float:
    """The normalized hypervolume of ``values`` in ``box`` (default: the box of ``values`` themselves)."""
    box = box or HypervolumeBox.of(values, directions)
    return box.hypervolume(values) if box is not None else 0.0
