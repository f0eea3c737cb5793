"""The private Optuna and Ray APIs the project uses, each named in one module (`wfsearch.study.optuna_api`,
`wfsearch.search.ray_api`): pinned here against the installed versions, so an upgrade that moves one fails
here, by name, and not in the middle of a search."""
from __future__ import annotations

import datetime
import importlib.util
import signal

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState, create_trial

from wfsearch.study import optuna_api as api


def test_optuna_ids_storage_and_tables(tmp_path) -> None:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(study_name="s", storage=storage, directions=["maximize", "minimize"])
    trial = study.ask()
    assert api.rdb_backend(api.storage_of(study)) is storage and api.study_id(study) == storage.get_study_id_from_name("s")
    assert storage.get_trial(api.trial_id(trial)).number == trial.number == 0
    assert api.trial_id(optuna.trial.FixedTrial({})) is None
    loaded = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}")  # a cached storage
    assert isinstance(api.rdb_backend(loaded), optuna.storages.RDBStorage)
    assert api.rdb_backend(optuna.create_study()) is None
    m = api.rdb_models
    for model, columns in ((m.TrialModel, {"trial_id", "number", "study_id", "state", "datetime_start",
                                           "datetime_complete"}),
                           (m.TrialValueModel, {"trial_id", "objective", "value", "value_type"}),
                           (m.TrialParamModel, {"trial_id", "param_name", "param_value", "distribution_json"}),
                           (m.TrialUserAttributeModel, {"trial_id", "key", "value_json"}),
                           (m.TrialSystemAttributeModel, {"trial_id", "key", "value_json"}),
                           (m.TrialIntermediateValueModel, {"trial_id", "step", "intermediate_value",
                                                            "intermediate_value_type"}),
                           (m.StudyUserAttributeModel, {"study_id", "key", "value_json"})):
        assert columns <= set(model.__table__.c.keys()), model
    stored, kind = m.TrialValueModel.value_to_stored_repr(float("inf"))
    assert m.TrialValueModel.stored_repr_to_value(stored, kind) == float("inf")


def test_optuna_bulk_insert_equals_add_trial(tmp_path) -> None:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    ours = optuna.create_study(study_name="ours", storage=storage, directions=["maximize"])
    theirs = optuna.create_study(study_name="theirs", storage=storage, directions=["maximize"])
    t = create_trial(values=[0.5], params={"x": 2}, distributions={"x": optuna.distributions.IntDistribution(0, 3)},
                     user_attrs={"a": [1, 2]}, system_attrs={"constraints": [0.0]}, intermediate_values={1: 0.25})
    start = datetime.datetime(2026, 1, 1)
    api.insert_trials(storage, api.study_id(ours), [(t, start, start + datetime.timedelta(seconds=3))])
    theirs.add_trial(t)
    a, b = ours.trials[0], theirs.trials[0]
    assert (a.number, a.state, a.values, a.params, a.distributions, a.user_attrs, a.system_attrs,
            a.intermediate_values) == (b.number, b.state, b.values, b.params, b.distributions, b.user_attrs,
                                       b.system_attrs, b.intermediate_values)
    assert (a.datetime_complete - a.datetime_start).total_seconds() == 3 and a.state == TrialState.COMPLETE


def test_optuna_fronts_and_hypervolume() -> None:
    loss = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 3.0], [1.0, 3.0]])
    assert list(api.is_pareto_front(loss, assume_unique_lexsorted=False)) == [True, True, False, True]
    assert list(api.fast_non_domination_rank(loss)) == [0, 0, 1, 0]
    assert api.compute_hypervolume(np.array([[1.0, 1.0]]), np.array([2.0, 3.0])) == pytest.approx(2.0)


def test_ray_private_names_exist() -> None:
    import ray._private.ray_constants as ray_constants

    from wfsearch.search.ray_api import QUIET_LOGGERS

    assert hasattr(ray_constants, "ENABLE_RAY_CLUSTER")
    for name in QUIET_LOGGERS:  # the loggers quieted are the modules' own
        assert importlib.util.find_spec(name) is not None, name


def test_tune_sets_the_stop_handler_that_ends_a_run() -> None:
    """Tune's run sets its "end the run now" handler on SIGUSR1 (what `StopOnSignal` calls)."""
    from ray.tune.tune import _setup_signal_catching

    from wfsearch.search.ray_api import tune_stop_handler

    previous = signal.getsignal(signal.SIGUSR1)
    try:
        event = _setup_signal_catching()
        handler = tune_stop_handler()
        assert handler is not None and not event.is_set()
        handler(signal.SIGUSR1, None)
        assert event.is_set()
    finally:
        signal.signal(signal.SIGUSR1, previous)
