"""Trials read from RDB storage with four queries and only the attributes asked for (`Study.get_trials` loads
everything object by object: tens of seconds and hundreds of MB for 10,000 trials). The same `FrozenTrial`s,
without intermediate values; storages other than RDB fall back to ``get_trials``."""
from __future__ import annotations

import datetime
import json
import math
from collections import defaultdict
from typing import Collection, Iterable

import optuna
from optuna.distributions import json_to_distribution
from optuna.trial import FrozenTrial, TrialState

from .optuna_api import rdb_backend, rdb_models as models, study_id as study_id_of


def _local(t: datetime.datetime | None) -> datetime.datetime | None:
    """A naive UTC time as stored -> naive local time, as Optuna's own models return it."""
    if t is None:
        return None
    return t.replace(tzinfo=datetime.timezone.utc).astimezone().replace(tzinfo=None)


def _load_json(rows: list, into: dict[int, dict]) -> None:
    """``(trial_id, key, value_json)`` rows into ``into[trial_id][key]``, by one ``json.loads`` of them all (a
    third of the time of one call each); a document stored many times is decoded once and shared."""
    if not rows:
        return
    distinct = list(dict.fromkeys(r[2] for r in rows))
    decoded = dict(zip(distinct, json.loads("[" + ",".join(distinct) + "]")))
    for tid, key, text in rows:
        into[tid][key] = decoded[text]


def read_trials(study: optuna.Study, states: Iterable[TrialState] | None = None,
                user_attrs: Collection[str] | None = None, system_attrs: Collection[str] | None = (),
                after_number: int | None = None) -> list[FrozenTrial]:
    """The trials of ``study`` (of ``states``; numbered above ``after_number``) by number, with only
    ``user_attrs`` and ``system_attrs`` (None: all of them; the default reads no system attribute)."""
    rdb = rdb_backend(study)
    states = tuple(states) if states is not None else None
    if rdb is None:
        return [t for t in study.get_trials(deepcopy=False, states=states)
                if after_number is None or t.number > after_number]
    import sqlalchemy as sa

    T = models.TrialModel.__table__
    V = models.TrialValueModel.__table__
    P = models.TrialParamModel.__table__
    U = models.TrialUserAttributeModel.__table__
    S = models.TrialSystemAttributeModel.__table__
    study_id = study_id_of(study)
    mine = sa.select(T.c.trial_id).where(T.c.study_id == study_id)
    if states is not None:
        mine = mine.where(T.c.state.in_(states))
    if after_number is not None:
        mine = mine.where(T.c.number > after_number)
    q_trials = sa.select(T.c.trial_id, T.c.number, T.c.state, T.c.datetime_start, T.c.datetime_complete) \
        .where(T.c.trial_id.in_(mine)).order_by(T.c.number)
    q_values = sa.select(V.c.trial_id, V.c.objective, V.c.value, V.c.value_type).where(V.c.trial_id.in_(mine))
    q_params = sa.select(P.c.trial_id, P.c.param_name, P.c.param_value, P.c.distribution_json) \
        .where(P.c.trial_id.in_(mine)).order_by(P.c.param_id)
    q_attrs, q_system = (sa.select(A.c.trial_id, A.c.key, A.c.value_json).where(
        A.c.trial_id.in_(mine), *([] if keys is None else [A.c.key.in_(list(keys))]))
        for A, keys in ((U, user_attrs), (S, system_attrs)))
    values: dict[int, dict[int, float]] = defaultdict(dict)
    params, dists, attrs, system = (defaultdict(dict) for _ in range(4))
    parsed_dists: dict[str, optuna.distributions.BaseDistribution] = {}
    finite = models.TrialValueModel.TrialValueType.FINITE
    with rdb.engine.connect() as con:
        rows = con.execute(q_trials).all()
        for tid, obj, value, vtype in con.execute(q_values).all():  # a damaged (NULL) finite value reads as NaN
            values[tid][obj] = math.nan if value is None and vtype == finite else \
                models.TrialValueModel.stored_repr_to_value(value, vtype)
        for tid, name, value, dist_json in con.execute(q_params).all():
            dist = parsed_dists.get(dist_json)
            if dist is None:
                dist = parsed_dists[dist_json] = json_to_distribution(dist_json)
            params[tid][name] = dist.to_external_repr(value)
            dists[tid][name] = dist
        _load_json(con.execute(q_attrs).all(), attrs)
        if system_attrs is None or system_attrs:
            _load_json(con.execute(q_system).all(), system)
    out = []
    for tid, number, state, start, complete in rows:
        v = values.get(tid)
        out.append(FrozenTrial(
            number=number, state=state, value=None,
            values=[v.get(i, math.nan) for i in range(max(v) + 1)] if v else None,
            datetime_start=_local(start), datetime_complete=_local(complete),
            params=params.get(tid, {}), distributions=dists.get(tid, {}), user_attrs=attrs.get(tid, {}),
            system_attrs=system.get(tid, {}), intermediate_values={}, trial_id=tid))
    return out


def check_values_stored(study: optuna.Study) -> None:
    """Refuse a study holding a finite objective value as NULL (Optuna's reader fails on it): one `UserError`
    line naming the trial. Readers read it as NaN instead."""
    rdb = rdb_backend(study)
    if rdb is None:
        return
    import sqlalchemy as sa

    T, V = models.TrialModel.__table__, models.TrialValueModel.__table__
    q = sa.select(T.c.number, V.c.objective).join(V, V.c.trial_id == T.c.trial_id).where(
        T.c.study_id == study_id_of(study), V.c.value.is_(None),
        V.c.value_type == models.TrialValueModel.TrialValueType.FINITE).limit(1)
    with rdb.engine.connect() as con:
        row = con.execute(q).first()
    if row is not None:
        from wfsearch.errors import UserError

        raise UserError(f"study {study.study_name!r}: trial {row[0]}: objective {row[1]} is stored as NULL (a damaged "
                        "database): the search cannot continue it; start a new study with --fresh (the old one is "
                        "kept, and show, report and export still read it)")
