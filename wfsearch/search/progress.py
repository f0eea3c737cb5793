"""The state of a running search and its progress line (updated by `SearchLoop`)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from wfsearch.study import loss_signs
from wfsearch.study.hypervolume import HypervolumeBox, study_box


@dataclass
class SearchProgress:
    """Counts and the current front of a running search (incremental: a line costs O(front)); `line()` renders it."""

    total: int
    objectives: list[str]
    directions: list[str]
    finished: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    started: float = field(default_factory=time.monotonic)
    durations: list[float] = field(default_factory=list)
    concurrency: int = 1
    repeats: int = 0  # re-sampled architectures, told their known result without using the budget
    n_points: int = 0
    phase: str = "starting"
    chance: float | None = None  # the proxy task's chance accuracy, for the box
    reference_img_s: float | None = None  # what the paired throughput is a ratio of, for the box
    hv_box: HypervolumeBox | None = None  # the study's box: stored, else fixed by the first point
    _front: list[tuple[float, ...]] = field(default_factory=list, repr=False)  # as losses (minimized)
    _best: list[float] | None = field(default=None, repr=False)  # as losses
    _archs: set[str] = field(default_factory=set, repr=False)
    _hv: float | None = field(default=None, repr=False)  # cached until the front or the reference changes

    def add_point(self, values: list[float], arch_hash: str | None = None) -> None:
        if arch_hash is not None:
            if arch_hash in self._archs:
                return
            self._archs.add(arch_hash)
        loss = tuple(v * s for v, s in zip(values, loss_signs(self.directions)))
        self.n_points += 1
        if self.hv_box is None:
            self.hv_box = study_box(self.objectives, self.directions, chance=self.chance,
                                    reference_img_s=self.reference_img_s, first=values)
        self._best = list(loss) if self._best is None else [min(a, b) for a, b in zip(self._best, loss)]
        if any(all(f <= p for f, p in zip(q, loss)) and q != loss for q in self._front):
            return  # dominated (an equal point joins, as in the summary's front)
        self._front = [q for q in self._front if not (all(p <= f for p, f in zip(loss, q)) and q != loss)]
        self._front.append(loss)
        self._hv = None

    def front(self) -> list[list[float]]:
        """The current non-dominated points, in the objectives' own signs."""
        signs = loss_signs(self.directions)
        return [[v * s for v, s in zip(q, signs)] for q in self._front]

    def hypervolume(self) -> float:
        """The normalized hypervolume of the front in the study's box."""
        if not self._front or self.hv_box is None:
            return 0.0
        if self._hv is None:
            self._hv = self.hv_box.hypervolume(self.front())
        return self._hv

    def best(self, metric: str) -> float | None:
        if metric not in self.objectives or self._best is None:
            return None
        j = self.objectives.index(metric)
        return self._best[j] * loss_signs(self.directions)[j]

    def eta_seconds(self) -> float | None:
        left = self.total - self.finished
        if left <= 0:
            return 0.0
        if not self.durations:
            return None
        per = sum(self.durations) / len(self.durations)
        return per * left / max(1, self.concurrency)

    def line(self) -> str:
        elapsed = f"elapsed {_fmt(time.monotonic() - self.started)}"
        if self.phase != "searching" and not self.finished and not self.running:
            return f"{self.phase} | {elapsed}"  # before the first trial: what the run is doing
        repeats = f" (+{self.repeats} re-sampled)" if self.repeats else ""
        parts = [self.phase, f"trials {self.finished}/{self.total}{repeats}", f"running {self.running}"]
        parts += [f"{k} {n}" for k, n in (("pruned", self.pruned), ("failed", self.failed)) if n]
        parts.append(f"front {len(self.front())}")
        for metric, fmt in (("accuracy", "best acc {:.3f}"), ("throughput", "best img/s {:.0f}")):
            if self.best(metric) is not None:
                parts.append(fmt.format(self.best(metric)))
        parts.append(f"HV {self.hypervolume():.3f}")
        eta = self.eta_seconds() if self.finished < self.total else None  # done: the phase says what is left
        parts.append(elapsed + (f", ETA {_fmt(eta)}" if eta is not None else ""))
        return " | ".join(parts)


def _fmt(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s"
