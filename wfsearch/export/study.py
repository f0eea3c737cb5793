"""Reading a finished (or running) study for export: open it, its objectives, its Pareto front.

The storage layout is docs/CONTRACTS.md: a study folder ``studies/<name>/`` holds ``optuna.db``
(SQLite; any SQLAlchemy URL works through ``storage=``); trial user attrs carry ``kind``, ``arch``,
``metrics``, ``costs``; the study user attr ``objectives`` names the values in order.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from wfsearch.errors import UserError
from wfsearch.study.connect import cannot_open, engine_options
from wfsearch.study.naming import REFERENCES_SUFFIX, check_study_name, safe_url, study_dir
from wfsearch.study.sqlite import reader_url, sqlite_path

__all__ = ["OpenStudy", "open_study", "search_front", "trial_metrics", "objective_names", "safe_url"]

log = logging.getLogger(__name__)


@dataclass
class OpenStudy:
    """A loaded study, the folder its exports go to, and its storage URL (password hidden)."""

    study: optuna.Study
    folder: Path
    storage_url: str

    @property
    def name(self) -> str:
        return self.study.study_name


def open_study(path: str | Path | None = None, storage: str | None = None,
               study_name: str | None = None) -> OpenStudy:
    """Open ``studies/<name>`` (its ``optuna.db``) or any ``storage`` URL, read-only in spirit.

    With several studies in one storage, ``study_name`` picks one (default: the only one, or the
    one named like the folder).
    """
    folder = Path(path) if path is not None else None
    if storage is None:
        if folder is None:
            raise UserError("export: give a study folder (studies/<name>) or --storage URL --study NAME")
        db = folder / "optuna.db"
        if not folder.is_dir():
            raise UserError(f"{folder}: no such study folder; run `wfsearch run SPEC` first or pass --storage URL")
        if not db.is_file():
            raise UserError(f"{db}: no study database here; run `wfsearch run SPEC` first or pass --storage URL")
        storage = f"sqlite:///{db}"
    engine_kwargs: dict[str, Any] = engine_options(storage)  # bounded waits for a server that does not answer
    url = storage
    if storage.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 30}  # a running search may hold the write lock
        if sqlite_path(storage) is not None:
            url = reader_url(sqlite_path(storage))  # a read-only copy is opened read-only
    try:
        rdb = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, skip_table_creation=True)
        names = [s.study_name for s in rdb.get_all_studies()]
    except (ValueError, ImportError) as e:
        raise UserError(f"--storage: {safe_url(storage)!r}: cannot open ({str(e).splitlines()[0]})") from None
    except Exception as e:  # sqlalchemy.exc.* (no tables, unreachable server ...)
        if isinstance(e, optuna.exceptions.StorageInternalError) and e.__cause__ is not None:
            e = e.__cause__
        text = str(e).lower()
        if "timeout expired" in text or "timed out" in text or "connection refused" in text:
            raise UserError(cannot_open(storage, e)) from None
        raise UserError(f"{safe_url(storage)}: not an Optuna study database ({type(e).__name__}); "
                        f"check the path or --storage URL") from None
    if not names:
        raise UserError(f"{safe_url(storage)}: holds no study yet; run `wfsearch run SPEC` first")
    if study_name is None:
        searches = [n for n in names if not n.endswith(REFERENCES_SUFFIX)]  # `wfsearch run` keeps references apart
        if folder is not None and folder.name in searches:
            study_name = folder.name
        elif len(searches) == 1:
            study_name = searches[0]
        else:
            raise UserError(f"--study: {safe_url(storage)} holds several studies {sorted(searches)}; pass --study NAME")
    elif study_name not in names:
        raise UserError(f"--study: {study_name!r}: no such study in {safe_url(storage)}; studies there: {sorted(names)}")
    check_study_name(study_name, f"{safe_url(storage)}: study name")  # it names files and folders
    study = optuna.load_study(study_name=study_name, storage=rdb)
    if folder is None:
        folder = study_dir(study_name)
    return OpenStudy(study=study, folder=folder, storage_url=safe_url(storage))


def objective_names(study: optuna.Study) -> list[str]:
    """Objective names in value order: the ``objectives`` attr, else Optuna's metric names."""
    objs = study.user_attrs.get("objectives")
    if objs:
        return [o["name"] if isinstance(o, dict) else str(o) for o in objs]
    if study.metric_names:
        return list(study.metric_names)
    return [f"objective{i}" for i in range(len(study.directions))]


def is_search_trial(trial: FrozenTrial) -> bool:
    return trial.user_attrs.get("kind", "search") == "search"


def was_trained(trial: FrozenTrial) -> bool:
    """A completed search trial with real scores (infeasible ones are stored with the worst values)."""
    return (trial.state == TrialState.COMPLETE and is_search_trial(trial) and trial.values is not None
            and not str(trial.user_attrs.get("status_reason", "ok")).startswith("infeasible") and _feasible(trial))


def search_front(study: optuna.Study) -> list[FrozenTrial]:
    """The Pareto front of the trained search trials, by trial number: Optuna's ``best_trials``.

    When ``best_trials`` also holds trials that cannot be exported (a reference model stored in the
    study, an infeasible architecture recorded with the worst scores) they are left out and the front
    is recomputed over the trained search trials alone, so the trials they dominated come back.
    """
    best = study.best_trials
    if all(was_trained(t) for t in best):
        return one_per_architecture(best)
    trained = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if was_trained(t)]
    signs = [1.0 if d == optuna.study.StudyDirection.MAXIMIZE else -1.0 for d in study.directions]
    keyed = [(t, [s * v for s, v in zip(signs, t.values)]) for t in trained]  # all maximized now

    def dominated(a: list[float]) -> bool:
        return any(all(x >= y for x, y in zip(b, a)) and any(x > y for x, y in zip(b, a)) for _, b in keyed)

    return one_per_architecture(t for t, v in keyed if not dominated(v))


def one_per_architecture(trials) -> list[FrozenTrial]:
    """``trials`` by number, the first of each architecture only: a later trial that re-sampled an
    architecture reused its result and is not another point of the front (as `run` and `show` count)."""
    out, seen = [], set()
    for t in sorted(trials, key=lambda t: t.number):
        h = t.user_attrs.get("arch_hash")
        if h is None or h not in seen:
            out.append(t)
            seen.add(h)
    return out


def _feasible(trial: FrozenTrial) -> bool:
    """No constraint violated: Optuna's own (``trial.constraints`` / system attr) nor the engine's user attr."""
    for cons in (getattr(trial, "constraints", None), trial.system_attrs.get("constraints"),
                 trial.user_attrs.get("constraints")):
        values = cons.values() if isinstance(cons, dict) else (cons or [])
        if any(c > 0.0 for c in values):
            return False
    return True


def trial_metrics(trial: FrozenTrial, objectives: list[str]) -> dict[str, float]:
    """Every number known for a trial by name: costs, then metrics, then the objective values."""
    out: dict[str, float] = {}
    for source in (trial.user_attrs.get("costs") or {}, trial.user_attrs.get("metrics") or {}):
        for k, v in source.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                out[k] = float(v)
    for name, v in zip(objectives, trial.values or []):
        if v is not None and math.isfinite(v):
            out[name] = float(v)
    return out
