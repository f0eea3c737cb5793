"""The rung decision of Pareto-aware asynchronous successive halving (MO-ASHA), without Ray: at each rung (an
epoch of ``proxy.epochs``) a trial goes on only if it ranks in the top ``1/reduction_factor`` of the trials
recorded there so far (non-dominated sorting, crowding distance breaking ties). Used by the Ray scheduler and
the table simulator."""
from __future__ import annotations

import logging
import math
from typing import Any, Sequence

from wfsearch.study import pareto_order

log = logging.getLogger(__name__)


class ParetoRungs:
    """Records rung results and says whether a trial stays in the top ``1/reduction_factor``."""

    def __init__(self, rungs: Sequence[int], objectives: Sequence[str], directions: Sequence[str],
                 reduction_factor: float = 3):
        if reduction_factor < 2:
            raise ValueError(f"reduction_factor={reduction_factor}: must be >= 2")
        self.rungs = sorted(set(int(r) for r in rungs))
        self.objectives, self.directions = list(objectives), list(directions)
        self.reduction_factor = reduction_factor
        self.recorded: dict[int, dict[Any, list[float]]] = {r: {} for r in self.rungs}
        self.stopped: dict[Any, int] = {}

    def label(self, trial_id: Any) -> Any:
        """How the log names a trial."""
        return trial_id

    def decide(self, trial_id: Any, epoch: int, values: Sequence[float]) -> bool:
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
            log.info("rung %d: stopping trial %s (position %d of %d, keeping %d)", epoch, self.label(trial_id),
                     position + 1, len(ids), keep)
        return go_on
