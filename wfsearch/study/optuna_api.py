"""The private Optuna APIs this project uses, each named here once (tests/test_private_apis.py pins them):
a study's storage and ids, the RDB table models, bulk trial inserts, non-dominated sorting and hypervolume."""
from __future__ import annotations

import datetime
import json
from typing import Any

import optuna
from optuna._hypervolume import compute_hypervolume  # noqa: F401 (re-exported)
from optuna.storages._rdb import models as rdb_models  # noqa: F401 (re-exported): the RDB tables
from optuna.study._multi_objective import _fast_non_domination_rank as fast_non_domination_rank  # noqa: F401
from optuna.study._multi_objective import _is_pareto_front as is_pareto_front  # noqa: F401


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    return study._storage


def study_id(study: optuna.Study) -> int:
    return study._study_id


def n_trials(study: optuna.Study) -> int:
    """How many trials the study holds, counted by the storage (not read)."""
    return storage_of(study).get_n_trials(study_id(study))


def trial_id(trial: Any) -> int | None:
    """The storage's id of a trial (None for one not stored, such as a `FixedTrial`)."""
    return getattr(trial, "_trial_id", None)


def rdb_backend(study_or_storage: Any) -> optuna.storages.RDBStorage | None:
    """The RDB storage under a study or storage (`load_study` wraps it in a cache); None for others."""
    storage = storage_of(study_or_storage) if isinstance(study_or_storage, optuna.Study) else study_or_storage
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, optuna.storages.RDBStorage) else None


def insert_trials(storage: optuna.storages.RDBStorage, study: int,
                  trials: list[tuple[optuna.trial.FrozenTrial, datetime.datetime, datetime.datetime]]) -> None:
    """Insert finished trials (numbered 0, 1, ...) into the empty study of id ``study`` in one transaction, with
    Optuna's own models and encodings (what ``add_trial`` writes, committing row by row)."""
    from optuna.distributions import distribution_to_json
    from sqlalchemy import insert

    session = storage.scoped_session()
    try:
        rows = []
        for number, (t, start, end) in enumerate(trials):
            row = rdb_models.TrialModel(study_id=study, number=number, state=t.state)
            row.datetime_start, row.datetime_complete = start, end  # stored as naive UTC, as Optuna does
            rows.append(row)
        session.add_all(rows)
        session.flush()  # trial ids
        values, params, user, system, steps = [], [], [], [], []
        for row, (t, _, _) in zip(rows, trials):
            tid = row.trial_id
            for i, v in enumerate(t.values or []):
                stored, kind = rdb_models.TrialValueModel.value_to_stored_repr(v)
                values.append({"trial_id": tid, "objective": i, "value": stored, "value_type": kind})
            for name, v in t.params.items():
                dist = t.distributions[name]
                params.append({"trial_id": tid, "param_name": name, "param_value": dist.to_internal_repr(v),
                               "distribution_json": distribution_to_json(dist)})
            user += [{"trial_id": tid, "key": k, "value_json": json.dumps(v)} for k, v in t.user_attrs.items()]
            system += [{"trial_id": tid, "key": k, "value_json": json.dumps(v)} for k, v in t.system_attrs.items()]
            for step, v in t.intermediate_values.items():
                stored, kind = rdb_models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(v)
                steps.append({"trial_id": tid, "step": step, "intermediate_value": stored,
                              "intermediate_value_type": kind})
        for model, data in ((rdb_models.TrialValueModel, values), (rdb_models.TrialParamModel, params),
                            (rdb_models.TrialUserAttributeModel, user),
                            (rdb_models.TrialSystemAttributeModel, system),
                            (rdb_models.TrialIntermediateValueModel, steps)):
            if data:
                session.execute(insert(model), data)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
