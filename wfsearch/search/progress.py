"""A live progress line for a search, and the state behind it (updated on the driver)."""
from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from ray.tune import Callback

from wfsearch.study.hypervolume import HypervolumeBox, study_box

log = logging.getLogger(__name__)


@dataclass
class SearchProgress:
    """Counts and the current front of a running search; `line()` renders it.

    The front is kept incrementally (a point dominated on arrival never joins it; one that joins drops
    the points it dominates), with the running best of each objective, so a progress line costs
    O(front) however many trials the study holds. An architecture counts once: a repeat that reused an
    earlier result is not a second point, as in the final summary. The hypervolume's box is the study's
    (`wfsearch.study.hypervolume.study_box`): fixed from the first point on, so the figure never falls.
    ``phase`` says what the run is doing (starting Ray, measuring the reference, searching ...).
    """

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

    def _signs(self) -> list[float]:
        return [-1.0 if d == "maximize" else 1.0 for d in self.directions]

    def add_point(self, values: list[float], arch_hash: str | None = None) -> None:
        if arch_hash is not None:
            if arch_hash in self._archs:
                return
            self._archs.add(arch_hash)
        loss = tuple(v * s for v, s in zip(values, self._signs()))
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
        signs = self._signs()
        return [[v * s for v, s in zip(q, signs)] for q in self._front]

    def hypervolume(self) -> float:
        """The normalized hypervolume (`wfsearch.study.hypervolume`) of the front in the study's box."""
        if not self._front or self.hv_box is None:
            return 0.0
        if self._hv is None:
            self._hv = self.hv_box.hypervolume(self.front())
        return self._hv

    def best(self, metric: str) -> float | None:
        if metric not in self.objectives or self._best is None:
            return None
        j = self.objectives.index(metric)
        return self._best[j] * self._signs()[j]

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
        parts = [self.phase, f"trials {self.finished}/{self.total}" + (f" (+{self.repeats} re-sampled)" if self.repeats else ""),
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
        eta = self.eta_seconds() if self.finished < self.total else None  # done: the phase says what is left
        parts.append(elapsed + (f", ETA {_fmt(eta)}" if eta is not None else ""))
        return " | ".join(parts)


def _fmt(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s"


class ProgressPrinter(Callback):
    """Ray Tune callback that prints the progress line: on a terminal rewritten in place, and at least once
    a second (`start`) so that the clock moves between events; elsewhere (a log) a line per event."""

    def __init__(self, progress: SearchProgress, stream: TextIO | None = None, enabled: bool = True,
                 interval_s: float = 1.0):
        self.progress = progress
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval_s = interval_s
        self._starts: dict[str, float] = {}
        self._last = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __getstate__(self) -> dict:
        """Ray Tune pickles its callbacks with the experiment: without the lock, the thread and the stream."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_stop", "_ticker", "stream")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, stream=sys.stderr, _lock=threading.Lock(), _stop=threading.Event(), _ticker=None)

    def start(self) -> None:
        """Redraw every ``interval_s`` on a terminal until `stop`."""
        if self.enabled and self.tty and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="wfsearch-progress", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.emit()

    def stop(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
            self._ticker = None

    def set_phase(self, phase: str) -> None:
        """What the run does now ("starting Ray", "measuring the reference" ...); shown at once."""
        self.progress.phase = phase
        log.info("phase: %s", phase)
        self.emit()

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
        with self._lock:
            line = self.progress.line()
            if not self.tty and line.split(" | elapsed")[0] == self._last.split(" | elapsed")[0] and not final:
                return  # a log gets a line when something changed, not when the clock did
            if line == self._last and not (final and self.tty):
                return
            self._last = line
            if self.tty:
                self.stream.write("\r\033[K" + line + ("\n" if final else ""))
            else:
                self.stream.write(line + "\n")
            self.stream.flush()
