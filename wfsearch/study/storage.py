"""Optuna RDB storage through SQLAlchemy: SQLite (WAL, busy timeout) by default, any URL otherwise.

`open_storage` is the writer's opener (creates the file and tables); `open_study` the readers'
(``studies/<name>`` or a URL, never creates anything).
"""
from __future__ import annotations

import datetime
import errno
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from wfsearch.errors import UserError

from .connect import SQLITE_BUSY_TIMEOUT_S, cannot_open, engine_options
from .record import Status
from .naming import check_study_name, is_references_study, mask_secrets, references_study_name, safe_url, study_dir
from .sqlite import check_database_file, reader_url, sqlite_path, storage_error, writable

log = logging.getLogger(__name__)


def open_storage(url: str, create: bool = True) -> optuna.storages.RDBStorage:
    """An `RDBStorage`; SQLite files get WAL journaling and a busy timeout so readers never block a run.

    A damaged, empty or foreign SQLite file, a read-only place and a full disk are one `UserError` line.
    """
    path = sqlite_path(url)
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
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_options(url), skip_compatibility_check=False)
    except Exception as e:  # bad URL, unreachable server, missing driver, a damaged file
        if path is None:
            raise UserError(cannot_open(url, e)) from None
        reason = mask_secrets(str(e).splitlines()[0] if str(e) else "", url)
        raise (storage_error(str(path), e) or UserError(f"{path}: cannot open ({type(e).__name__}: {reason})")) from None


def fail_stale_trials(study: optuna.Study, reason: str = "interrupted: the run stopped while it was running") -> int:
    """Mark trials left RUNNING by a crash or kill as FAIL, so their budget is spent again. ``reason``
    is stored as the ``status_reason``; its status is the one it starts with (`Status.of`), else interrupted."""
    status = (Status.of(reason) or Status.INTERRUPTED).value
    storage = study._storage
    backend = getattr(storage, "_backend", storage)  # the database itself: it filters by state, Optuna's
    n = 0                                              # trial cache would read every trial first
    for t in backend.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        storage.set_trial_user_attr(t._trial_id, "status_reason", reason)
        storage.set_trial_user_attr(t._trial_id, "status", status)
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        n += 1
    if n:
        log.warning("study %s: %d trial(s) left running by an earlier run marked failed", study.study_name, n)
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
    ref = references_study_name(name)
    if ref in names:
        optuna.copy_study(from_study_name=ref, from_storage=storage, to_storage=storage,
                          to_study_name=references_study_name(new))
        optuna.delete_study(study_name=ref, storage=storage)
    return new


@dataclass
class OpenStudy:
    """A loaded study, the folder its outputs go to, and its storage URL (password hidden)."""

    study: optuna.Study
    folder: Path
    storage_url: str
    by_storage: bool = False  # opened with --storage URL rather than a study folder

    @property
    def name(self) -> str:
        return self.study.study_name


def open_study(path: str | Path | None = None, storage: str | None = None,
               study_name: str | None = None) -> OpenStudy:
    """Open ``studies/<name>`` (its ``optuna.db``) or any ``storage`` URL, for reading.

    With several studies in one storage, ``study_name`` picks one (default: the only search study,
    or the one named like the folder).
    """
    folder = Path(path) if path is not None else None
    by_storage = storage is not None
    if storage is None and folder is not None and folder.is_file():  # studies/<name>/optuna.db itself
        storage, folder = f"sqlite:///{folder}", folder.parent
    if storage is None:
        if folder is None:
            raise UserError("give a study folder (studies/<name>) or --storage URL [--study NAME]")
        db = folder / "optuna.db"
        if not folder.is_dir():
            raise UserError(f"{folder}: no such study folder; run `wfsearch run SPEC` first or pass --storage URL")
        if not db.is_file():
            raise UserError(f"{db}: no study database here; run `wfsearch run SPEC` first or pass --storage URL")
        storage = f"sqlite:///{db}"
    url = storage
    if sqlite_path(storage) is not None:
        url = reader_url(sqlite_path(storage))  # a read-only copy is opened read-only
    try:
        rdb = optuna.storages.RDBStorage(url, engine_kwargs=engine_options(url), skip_table_creation=True)
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
        searches = [n for n in names if not is_references_study(n)]
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
    return OpenStudy(study=study, folder=folder, storage_url=safe_url(storage), by_storage=by_storage)
