"""Optuna RDB storage through SQLAlchemy: SQLite (WAL, busy timeout) by default, any URL otherwise."""
from __future__ import annotations

import datetime
import errno
import logging
import sqlite3
from pathlib import Path

import optuna
from optuna.trial import TrialState

from wfsearch.errors import UserError
from wfsearch.study.connect import cannot_open, engine_options
from wfsearch.study.sqlite import check_database_file, storage_error, writable

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_S = 60


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for other URLs and in-memory SQLite)."""
    if not url.startswith("sqlite:///") or url in ("sqlite://", "sqlite:///:memory:"):
        return None
    return Path(url[len("sqlite:///"):])


def open_storage(url: str, create: bool = True) -> optuna.storages.RDBStorage:
    """An `RDBStorage`; SQLite files get WAL journaling and a busy timeout so readers never block a run.

    A damaged, empty or foreign SQLite file, a read-only place and a full disk are one `UserError` line.
    """
    path = sqlite_path(url)
    engine_kwargs: dict = {}
    if path is not None:
        check_database_file(path)
        if not path.exists() and not create:
            raise UserError(f"{path}: no study database here (run `wfsearch run SPEC` first, or pass --storage)")
        if path.parent.is_dir() and not writable(path):
            raise storage_error(str(path), PermissionError(errno.EROFS, "read-only"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S)
            try:
                con.execute("PRAGMA journal_mode=WAL")
            finally:
                con.close()
        except (OSError, sqlite3.Error) as e:
            raise (storage_error(str(path), e) or UserError(f"{path}: cannot open the study database ({e})")) from None
        engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    else:
        engine_kwargs = engine_options(url)  # bounded waits for a server that does not answer
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, skip_compatibility_check=False)
    except Exception as e:  # bad URL, unreachable server, missing driver, a damaged file
        err = storage_error(str(path), e) if path is not None else None
        raise (err or UserError(cannot_open(url, e) if path is None else
                                f"{path}: cannot open ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")) from None


def fail_stale_trials(study: optuna.Study, reason: str = "interrupted: the run stopped while it was running") -> int:
    """Mark trials left RUNNING by a crash or kill as FAIL, so their budget is spent again."""
    storage = study._storage
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        storage.set_trial_user_attr(t._trial_id, "status_reason", reason)
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        n += 1
    if n:
        log.warning("study %s: %d trial(s) left running marked failed (%s)", study.study_name, n, reason)
    return n


def archive_study(storage: optuna.storages.BaseStorage, name: str) -> str | None:
    """Keep an existing study under ``<name>-<timestamp>`` and delete ``name``; returns the new name."""
    names = {s.study_name for s in storage.get_all_studies()}  # names only: summaries read every trial
    if name not in names:
        return None
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    new = f"{name}-{stamp}"
    optuna.copy_study(from_study_name=name, from_storage=storage, to_storage=storage, to_study_name=new)
    optuna.delete_study(study_name=name, storage=storage)
    ref = f"{name}:references"
    if ref in names:
        optuna.copy_study(from_study_name=ref, from_storage=storage, to_storage=storage,
                          to_study_name=f"{new}:references")
        optuna.delete_study(study_name=ref, storage=storage)
    return new
