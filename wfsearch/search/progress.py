"""A live progress line for a search, and the state behind it (updated on the driver)."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from ray.tune import Callback

from wfsearch.study.hypervolume import HypervolumeBox

from .pareto import nondominated_ranks


@dataclass
class SearchProgress:
    """Counts and the current front of a running search; `line()` renders it."""

    total: int
    objectives: list[str]
    directions: list[str]
    finished: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    points: list[list[float]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    durations: list[float] = field(default_factory=list)
    concurrency: int = 1
    repeats: int = 0  # re-sampled architectures, told their known result without using the budget

    def add_point(self, values: list[float]) -> None:
        self.points.append(list(values))

    def front(self) -> list[list[float]]:
        if not self.points:
            return []
        ranks = nondominated_ranks(self.points, self.directions)
        return [p for p, r in zip(self.points, ranks) if r == 0]

    def hypervolume(self) -> float:
        """The normalized hypervolume (`wfsearch.study.hypervolume`) in the box of the points so far."""
        box = HypervolumeBox.of(self.points, self.directions, self.objectives)
        return box.hypervolume(self.front()) if box is not None else 0.0

    def best(self, metric: str) -> float | None:
        if metric not in self.objectives or not self.points:
            return None
        j = self.objectives.index(metric)
        vals = [p[j] for p in self.points]
        return max(vals) if self.directions[j] == "maximize" else min(vals)

    def eta_seconds(self) -> float | None:
        left = self.total - self.finished
        if left <= 0:
            return 0.0
        if not self.durations:
            return None
        per = sum(self.durations) / len(self.durations)
        return per * left / max(1, self.concurrency)

    def line(self) -> str:
        parts = [f"trials {self.finished}/{self.total}" + (f" (+{self.repeats} re-sampled)" if self.repeats else ""),
                 f"running {self.running}"]
        if self.pruned:
            parts.append(f"pruned {self.pruned}")
        if self.failed:
            parts.append(f"failed {self.failed}")
        parts.append(f"front {len(self.front())}")
        acc, tp = self.best("accuracy"), self.best("throughput")
        if acc is not None:
            parts.append(f"best acc {acc:.3f}")
        if tp is not None:
            parts.append(f"best img/s {tp:.0f}")
        parts.append(f"HV {self.hypervolume():.3f}")
        eta = self.eta_seconds()
        elapsed = time.monotonic() - self.started
        parts.append(f"elapsed {_fmt(elapsed)}" + (f", ETA {_fmt(eta)}" if eta is not None else ""))
        return " | ".join(parts)


def _fmt(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s"


class ProgressPrinter(Callback):
    """Ray Tune callback that prints the progress line (rewritten in place on a terminal)."""

    def __init__(self, progress: SearchProgress, stream: TextIO | None = None, enabled: bool = True):
        self.progress = progress
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._starts: dict[str, float] = {}
        self._last = ""

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._starts[trial.trial_id] = time.monotonic()
        self._update(trials, redraw_only=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        start = self._starts.pop(trial.trial_id, None)
        if start is not None:
            self.progress.durations.append(time.monotonic() - start)
        self._update(trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._starts.pop(trial.trial_id, None)
        self._update(trials)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._update(trials, redraw_only=True)

    def _update(self, trials: list, redraw_only: bool = False) -> None:
        self.progress.running = sum(1 for t in trials if t.status == "RUNNING")
        if self.tty or not redraw_only:  # a log file gets a line per finished trial, a terminal a live line
            self.emit()

    def emit(self, final: bool = False) -> None:
        if not self.enabled:
            return
        line = self.progress.line()
        if line == self._last and not final:
            return
        self._last = line
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
