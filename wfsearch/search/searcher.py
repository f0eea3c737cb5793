"""Ray's `OptunaSearch`, telling Optuna everything a trial produced: state, values and attributes.

Ray's searcher knows only "complete" and "error". Here a trial stopped at a rung is PRUNED with its
partial curve, a trial that diverged, ran out of memory or raised is FAIL with its reason, and an
infeasible architecture (unbuildable, or over a cost constraint) is recorded without training:
COMPLETE with the worst objective values and positive constraint values, so the sampler learns
where the feasible region is and Optuna's fronts (which honour constraints) never include it.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Callable

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch
from ray.tune.stopper import Stopper

from wfsearch.study import Status, outcome_attrs

from .budget import DistinctBudget

log = logging.getLogger(__name__)


def unflatten(flat: dict[str, Any], sep: str = "/") -> dict[str, Any]:
    """Undo Tune's flattening of nested result dicts (``{"a/b": 1}`` -> ``{"a": {"b": 1}}``)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(sep)
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def worst_value(metric: str, direction: str, metrics: dict[str, float]) -> float:
    """A value that no real trial beats, for trials that were not trained."""
    if direction == "maximize":
        return 0.0
    known = metrics.get(metric)
    return float(known) if known is not None and math.isfinite(known) else 1e30


def is_storage_failure(e: BaseException) -> bool:
    """Whether ``e`` (or what caused it) is the storage failing: SQLAlchemy/SQLite errors, a full disk."""
    import errno
    import sqlite3

    import sqlalchemy.exc

    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.DatabaseError, sqlite3.Error,
                          optuna.exceptions.StorageInternalError)):
            return True
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EROFS, errno.EIO):
            return True
        e = e.__cause__ or e.__context__
    return False


class StorageFailureStopper(Stopper):
    """Stops every trial once the searcher saw the storage fail."""

    def __init__(self, searcher: "StudySearcher"):
        self.searcher = searcher

    def __call__(self, trial_id: str, result: dict) -> bool:
        return self.searcher.storage_failure is not None

    def stop_all(self) -> bool:
        return self.searcher.storage_failure is not None


class StudySearcher(OptunaSearch):
    """`OptunaSearch` over a define-by-run space that records states and attributes in the study."""

    def __init__(self, space: Callable, objectives: list[str], directions: list[str], max_epochs: int,
                 on_told: Callable[[optuna.trial.FrozenTrial], None] | None = None,
                 budget: DistinctBudget | None = None, **kwargs: Any):
        super().__init__(space=space, metric=objectives,
                         mode=["max" if d == "maximize" else "min" for d in directions], **kwargs)
        self.objectives, self.directions = objectives, directions
        self.max_epochs = max_epochs
        self.on_told = on_told
        self.storage_failure: BaseException | None = None  # the storage stopped taking writes: stop the run
        self.budget = budget
        self._live: dict[str, str | None] = {}  # Tune trial id -> the identity of the new architecture it evaluates

    def suggest(self, trial_id: str) -> dict | None:
        if self.storage_failure is not None:
            return Searcher.FINISHED
        try:
            return self._suggest_within_budget(trial_id)
        except Exception as e:
            if not self._stop_on_storage_failure(e):
                raise
            return Searcher.FINISHED

    def _suggest_within_budget(self, trial_id: str) -> dict | None:
        """The next architecture to evaluate. With a `DistinctBudget`, one already evaluated is told to
        Optuna at once with its known result (the sampler learns from it; no Ray trial, no budget),
        and sampling goes on until the budget's distinct architectures are finished or running;
        FINISHED once they have finished or the space is exhausted."""
        b = self.budget
        if b is None:
            return super().suggest(trial_id)
        while True:
            if b.reached() or b.stop_reason:
                return Searcher.FINISHED if not self._live else None
            if b.count + len({i for i in self._live.values() if i is not None and i not in b.finished}) >= b.total:
                return None  # the rest of the budget is running: wait for it
            config = super().suggest(trial_id)
            identity = b.identity(config.get("arch_hash"), self._ot_trials[trial_id].params)
            known = config.get("cached_result")
            if known is None and config.get("infeasible") and identity in b.finished:
                known = {"status": "infeasible", "status_reason": config["infeasible"],
                         "metrics": config.get("cost_metrics") or {}}
            if known is None:
                b.sampled_new()
                self._live[trial_id] = identity if config.get("wait_for_trial_id") is None else None
                return config
            self._tell_known(trial_id, config, known)
            b.sampled_repeat()

    def _tell_known(self, trial_id: str, config: dict, known: dict) -> None:
        """Record a re-sampled architecture with the result it already has (not a new evaluation)."""
        ot_trial = self._ot_trials.pop(trial_id)
        result = {**known, **{k: config.get(k) for k in ("arch", "arch_hash")}, "final": True}
        if known.get("status") == Status.PRUNED:
            status, values, reason = Status.PRUNED, None, known.get("status_reason", "pruned")
        else:
            status, values, reason = self._outcome(result, False)
        for key, value in outcome_attrs({**result, "deployed_arch": config.get("deployed_arch")}, status, reason).items():
            ot_trial.set_user_attr(key, value)
        frozen = self._ot_study.tell(ot_trial, values, state=status.state)
        if self.on_told is not None:
            self.on_told(frozen)

    def _stop_on_storage_failure(self, e: Exception) -> bool:
        """Remember a storage failure (disk full, read-only, damaged file) instead of letting Tune log a
        traceback per trial; the run then starts nothing new and stops (`StorageFailureStopper`)."""
        if not is_storage_failure(e):
            return False
        if self.storage_failure is None:
            self.storage_failure = e
            log.info("the study storage failed (%s); stopping the run", str(getattr(e, "orig", e)).splitlines()[0])
        return True

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the Optuna study in RDB storage is the search state (resume reads it)."""

    def restore(self, checkpoint_path: str) -> None:
        pass

    @property
    def study(self) -> optuna.Study:
        return self._ot_study

    def trial_number(self, trial_id: str) -> int | None:
        """The study's number of the trial Ray calls ``trial_id`` (None before it is sampled)."""
        trial = self._ot_trials.get(trial_id)
        return None if trial is None else trial.number

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        return  # multi-objective: nothing to report step by step

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._live.pop(trial_id, None)
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        if self.storage_failure is not None:
            self._completed_trials.add(trial_id)
            return
        try:
            self._record(trial_id, result, error)
        except Exception as e:
            if not self._stop_on_storage_failure(e):
                raise
            self._completed_trials.add(trial_id)

    def _record(self, trial_id: str, result: dict | None, error: bool) -> None:
        ot_trial = self._ot_trials[trial_id]
        result = unflatten(result) if result else {}  # Tune hands searchers flattened results
        status, values, reason = self._outcome(result, error)
        state = status.state
        for key, value in outcome_attrs(result, status, reason).items():
            ot_trial.set_user_attr(key, value)
        try:
            frozen = self._ot_study.tell(ot_trial, values, state=state)
        except (ValueError, RuntimeError) as e:  # e.g. a NaN value slipped through
            log.warning("trial %s: could not record (%s); recording it as failed", ot_trial.number, e)
            ot_trial.set_user_attr("status", Status.ERROR.value)
            frozen = self._ot_study.tell(ot_trial, None, state=TrialState.FAIL)
        self._completed_trials.add(trial_id)
        if self.on_told is not None:
            self.on_told(frozen)

    def _outcome(self, result: dict, error: bool) -> tuple[Status, list[float] | None, str]:
        status = result.get("status")
        metrics = result.get("metrics") or {}
        if error and not result.get("final"):
            return Status.ERROR, None, result.get("status_reason") or "error: the trial's worker failed"
        if status == Status.INFEASIBLE:
            values = [worst_value(m, d, metrics) for m, d in zip(self.objectives, self.directions)]
            return Status.INFEASIBLE, values, result.get("status_reason", "infeasible")
        if status in (Status.DIVERGED, Status.OOM, Status.ERROR):
            return Status(status), None, result.get("status_reason", status)
        if status == Status.OK and result.get("final"):
            values = [float(metrics[m]) for m in self.objectives]
            if all(math.isfinite(v) for v in values):
                return Status.OK, values, result.get("status_reason", "ok")
            return Status.ERROR, None, "error: non-finite objective values"
        epoch = result.get("epoch")
        if epoch is not None:
            return Status.PRUNED, None, f"pruned at epoch {epoch}"
        return Status.ERROR, None, "error: the trial stopped before reporting"
