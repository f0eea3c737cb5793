"""Pareto-aware asynchronous successive halving (in the spirit of MO-ASHA) for Ray Tune.

Neither Optuna's pruners nor Ray's schedulers handle several objectives. At each rung (an epoch
count from the spec's ``proxy.epochs``) a trial's objectives at that rung are recorded; it goes on
only if it ranks in the top ``1/reduction_factor`` of all trials recorded at that rung, ranked by
non-dominated sorting with crowding distance breaking ties (asynchronous: it is compared with the
trials that have reached the rung so far, so nothing waits).
"""
from __future__ import annotations

import logging
import math
from typing import Any, Callable, Optional, Sequence

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from .pareto import pareto_order

log = logging.getLogger(__name__)


class ParetoSuccessiveHalving(FIFOScheduler):
    """Stops trials that fall outside the top ``1/reduction_factor`` of a rung's Pareto ordering."""

    def __init__(self, rungs: Sequence[int], objectives: Sequence[str], directions: Sequence[str],
                 reduction_factor: float = 3, epoch_key: str = "epoch",
                 trial_number: Optional[Callable[[str], Optional[int]]] = None):
        """``trial_number`` maps a Ray trial id to the study's trial number, for the log."""
        super().__init__()
        self.trial_number = trial_number
        if reduction_factor < 2:
            raise ValueError(f"reduction_factor={reduction_factor}: must be >= 2")
        self.rungs = sorted(set(int(r) for r in rungs))
        self.objectives, self.directions = list(objectives), list(directions)
        self.reduction_factor = reduction_factor
        self.epoch_key = epoch_key
        self.recorded: dict[int, dict[str, list[float]]] = {r: {} for r in self.rungs}
        self.stopped: dict[str, int] = {}

    def set_search_properties(self, metric: Any, mode: Any, **spec: Any) -> bool:
        return True

    def decide(self, trial_id: str, epoch: int, values: Sequence[float]) -> bool:
        """Record ``values`` at rung ``epoch``; True if the trial may continue past it."""
        if epoch not in self.recorded or epoch == self.rungs[-1]:
            return True
        rung = self.recorded[epoch]
        rung[trial_id] = list(values)
        ids = list(rung)
        order = pareto_order([rung[i] for i in ids], self.directions)
        keep = max(1, math.floor(len(ids) / self.reduction_factor))
        position = order.index(ids.index(trial_id))
        go_on = position < keep
        if not go_on:
            self.stopped[trial_id] = epoch
            number = self.trial_number(trial_id) if self.trial_number else None
            log.info("rung %d: stopping trial %s (position %d of %d, keeping %d)", epoch,
                     trial_id if number is None else number, position + 1, len(ids), keep)
        return go_on

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if result.get("final") or self.epoch_key not in result:
            return TrialScheduler.CONTINUE
        try:
            values = [float(result[k]) for k in self.objectives]
        except (KeyError, TypeError, ValueError):
            return TrialScheduler.CONTINUE
        go_on = self.decide(trial.trial_id, int(result[self.epoch_key]), values)
        return TrialScheduler.CONTINUE if go_on else TrialScheduler.STOP

    def debug_string(self) -> str:
        sizes = ", ".join(f"epoch {r}: {len(v)}" for r, v in self.recorded.items())
        return f"ParetoSuccessiveHalving(rf={self.reduction_factor}; recorded {sizes}; stopped {len(self.stopped)})"
