"""The one writer of a study: every attribute of a trial or of a study is written here (read back by
`TrialRecord.from_trial`)."""
from __future__ import annotations

import logging
import warnings
from typing import Any, Mapping

import optuna
from optuna.trial import TrialState

from .naming import safe_url
from .optuna_api import rdb_backend, storage_of, study_id, trial_id
from .outcome import Outcome, Proposal, Status
from .record import CONSTRAINTS_ATTR

log = logging.getLogger(__name__)


def set_study_attrs(study: optuna.Study, **attrs: Any) -> None:
    """Study user attributes by name (docs/CONTRACTS.md)."""
    for key, value in attrs.items():
        study.set_user_attr(key, value)


def stored_spec(spec: Any) -> dict:
    """``spec.to_dict()`` with the storage password masked (a study's own record never holds one)."""
    stored = spec.to_dict()
    if stored.get("study", {}).get("storage"):
        stored["study"]["storage"] = safe_url(stored["study"]["storage"])
    return stored


def write_header(study: optuna.Study, spec: Any, machine: Mapping[str, Any]) -> None:
    """What the study is: the spec (password masked), its hash and path, the objectives (also Optuna's metric
    names), this version and the ``machine``."""
    objectives = spec.study.objectives
    with warnings.catch_warnings():  # experimental in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([o.name for o in objectives])
    import wfsearch

    set_study_attrs(study, spec=stored_spec(spec), spec_hash=spec.hash, spec_path=str(getattr(spec, "path", "") or ""),
                    wfsearch_version=wfsearch.__version__, hardware=dict(machine),
                    objectives=[{"name": o.name, "direction": o.direction} for o in objectives])


def write_proposal(trial: optuna.Trial, proposal: Proposal) -> None:
    """What an asked trial evaluates, and its constraint values for the sampler (Optuna's own too)."""
    for key, value in proposal.attrs().items():
        trial.set_user_attr(key, value)
    for name, value in proposal.constraints.items():
        trial.set_constraint(name, value)


def tell(study: optuna.Study, trial: optuna.Trial, outcome: Outcome) -> optuna.trial.FrozenTrial:
    """Store a trial's `Outcome` (scored: with its values) and end it in the state its status implies."""
    for key, value in outcome.attrs().items():
        trial.set_user_attr(key, value)
    try:
        return study.tell(trial, outcome.values, state=outcome.status.state)
    except (ValueError, RuntimeError) as e:  # values that do not fit the study
        log.warning("trial %s: could not record (%s); recording it as failed", trial.number, e)
        trial.set_user_attr("status", Status.ERROR.value)
        return study.tell(trial, None, state=TrialState.FAIL)


def fail_stale_trials(study: optuna.Study, reason: str = "interrupted: the run stopped while it was running") -> int:
    """Mark trials left RUNNING by a crash or kill as FAIL (``reason`` their ``status_reason``, its leading word
    the status, else interrupted), so their budget is spent again."""
    status = (Status.of(reason) or Status.INTERRUPTED).value
    storage = storage_of(study)
    backend = rdb_backend(study) or storage  # the database filters by state; Optuna's cache would read every trial
    stale = backend.get_all_trials(study_id(study), deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    for t in stale:
        storage.set_trial_user_attr(trial_id(t), "status_reason", reason)
        storage.set_trial_user_attr(trial_id(t), "status", status)
        storage.set_trial_state_values(trial_id(t), TrialState.FAIL)
    n = len(stale)
    if n:
        log.warning("study %s: %d trial(s) left running by an earlier run marked failed", study.study_name, n)
    return n


__all__ = ["CONSTRAINTS_ATTR", "fail_stale_trials", "set_study_attrs", "tell", "write_header", "write_proposal"]
