"""Pareto-aware asynchronous successive halving (MO-ASHA) for Ray Tune (neither Optuna's pruners nor Ray's
schedulers handle several objectives): the decision is `wfsearch.search.rungs.ParetoRungs`'."""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Sequence

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from .rungs import ParetoRungs

log = logging.getLogger(__name__)


class ParetoSuccessiveHalving(ParetoRungs, FIFOScheduler):
    """Stops trials that fall outside the top ``1/reduction_factor`` of a rung's Pareto ordering."""

    def __init__(self, rungs: Sequence[int], objectives: Sequence[str], directions: Sequence[str],
                 reduction_factor: float = 3, epoch_key: str = "epoch",
                 trial_number: Optional[Callable[[str], Optional[int]]] = None):
        """``trial_number`` maps a Ray trial id to the study's trial number, for the log."""
        FIFOScheduler.__init__(self)
        self.trial_number = trial_number
        ParetoRungs.__init__(self, rungs, objectives, directions, reduction_factor)
        self.epoch_key = epoch_key

    def label(self, trial_id: Any) -> Any:
        number = self.trial_number(trial_id) if self.trial_number else None
        return trial_id if number is None else number

    def set_search_properties(self, metric: Any, mode: Any, **spec: Any) -> bool:
        return True

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
