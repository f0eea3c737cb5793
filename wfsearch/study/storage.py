"""Optuna RDB storage: `open_storage` for writers (creates the SQLite file, WAL mode, and tables), `open_study`
for readers (``studies/<name>`` or a URL, never creates anything)."""
from __future__ import annotations

import datetime
import errno
import logging
import os
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import optuna

from wfsearch.errors import UserError
from wfsearch.urls import missing_driver

from .connect import SQLITE_BUSY_TIMEOUT_S, cannot_open, engine_options
from .naming import (MAX_NAME_LENGTH, check_study_name, is_references_study, mask_secrets, references_study_name,
                     safe_url, study_dir)
from .optuna_api import rdb_backend, rdb_models
from .sqlite import check_database_file, check_not_foreign, reader_url, sqlite_path, storage_error, writable

log = logging.getLogger(__name__)


def open_storage(url: str, create: bool = True) -> optuna.storages.RDBStorage:
    """An `RDBStorage`; SQLite files get WAL journaling and a busy timeout so readers never block a run. A damaged,
    empty or foreign file, a read-only place and a full disk are one `UserError` line."""
    path = sqlite_path(url)
    if path is not None:
        check_database_file(path)
        check_not_foreign(path)
        if not path.exists() and not create:
            raise UserError(f"{path}: no study database here (run `wfsearch run SPEC` first, or pass --storage)")
        if path.parent.is_dir() and not writable(path):
            raise storage_error(str(path), PermissionError(errno.EROFS, "read-only"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                _create_database(path)
            with closing(sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S)) as con:
                con.execute("PRAGMA journal_mode=WAL")
        except (OSError, sqlite3.Error) as e:
            raise (storage_error(str(path), e) or UserError(f"{path}: cannot open the study database ({e})")) from None
    try:
        return _rdb_storage(url)
    except Exception as e:  # bad URL, unreachable server, missing driver, a damaged file
        if path is None:
            raise UserError(cannot_open(url, e)) from None
        reason = mask_secrets(str(e).splitlines()[0] if str(e) else "", url)
        raise (storage_error(str(path), e) or UserError(f"{path}: cannot open ({type(e).__name__}: {reason})")) from None


def _create_database(path: Path) -> None:
    """A new, empty WAL-mode SQLite file at ``path``, made beside it and linked into place: a run starting at the
    same moment finds no file or a whole one, never an empty one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    with closing(sqlite3.connect(tmp)) as con:
        con.execute("PRAGMA journal_mode=WAL")
    try:
        os.link(tmp, path)
    except FileExistsError:  # another run made it first
        pass
    finally:
        tmp.unlink(missing_ok=True)


def _rdb_storage(url: str, tries: int = 5) -> optuna.storages.RDBStorage:
    """Optuna's storage on ``url``, tried again when two runs race to create the tables of a new database."""
    for attempt in range(tries):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_options(url), skip_compatibility_check=False)
        except Exception as e:
            text = str(getattr(e, "orig", None) or e).lower()
            racing = "already exists" in text or "unique constraint" in text or "duplicate" in text
            if not racing or attempt == tries - 1:
                raise
            log.info("storage %s: another process is creating its tables; trying again", safe_url(url))
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def archive_study(storage: optuna.storages.BaseStorage, name: str) -> str | None:
    """Keep an existing study (and its references study) under ``<name>-<timestamp>``, freeing ``name``; the new
    name. Renamed in one transaction, after every check, so a failure leaves the storage as it was."""
    names = {s.study_name for s in storage.get_all_studies()}  # names only: summaries read every trial
    if name not in names:
        return None
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    new = check_study_name(f"{name[:MAX_NAME_LENGTH - len(stamp) - 1]}-{stamp}", "--fresh: the kept study's name")
    renames = {name: new}
    if references_study_name(name) in names:
        renames[references_study_name(name)] = references_study_name(new)
    taken = [to for to in renames.values() if to in names]
    if taken:
        raise UserError(f"--fresh: study {taken[0]!r} exists already, so study {name!r} cannot be kept under that "
                        "name; run again in a second")
    table = rdb_models.StudyModel.__table__
    with rdb_backend(storage).engine.begin() as conn:
        for old, to in renames.items():
            conn.execute(table.update().where(table.c.study_name == old).values(study_name=to))
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
    """Open ``studies/<name>`` (its ``optuna.db``) or any ``storage`` URL, for reading; ``study_name`` picks one of
    several studies (default: the only search study, or the one named like the folder)."""
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
    url, path = storage, sqlite_path(storage)
    if path is not None:
        check_database_file(path)  # a FIFO, an empty or a foreign file: one line, never a wait
        if not path.exists():
            raise UserError(f"{path}: no study database here; run `wfsearch run SPEC` first")
        url = reader_url(path)  # a read-only copy is opened read-only
    try:
        rdb = optuna.storages.RDBStorage(url, engine_kwargs=engine_options(url), skip_table_creation=True)
        names = [s.study_name for s in rdb.get_all_studies()]
    except (ValueError, ImportError) as e:
        missing = missing_driver(storage)
        if missing:
            raise UserError(f"--storage: {safe_url(storage)!r}: {missing}") from None
        raise UserError(f"--storage: {safe_url(storage)!r}: cannot open "
                        f"({mask_secrets(str(e).splitlines()[0], storage)})") from None
    except Exception as e:  # sqlalchemy.exc.* (no tables, unreachable server, locked, full disk ...)
        if isinstance(e, optuna.exceptions.StorageInternalError) and e.__cause__ is not None:
            e = e.__cause__
        text = str(e).lower()
        if "timeout expired" in text or "timed out" in text or "connection refused" in text:
            raise UserError(cannot_open(storage, e)) from None
        err = storage_error(str(path) if path is not None else safe_url(storage), e, writing=False)
        if err is not None:
            raise err from None
        if "no such table" in text or "does not exist" in text:
            raise UserError(f"{safe_url(storage)}: not an Optuna study database (it has no Optuna tables); "
                            f"check the path or --storage URL") from None
        raise UserError(f"{safe_url(storage)}: cannot read the study database ({type(e).__name__}: "
                        f"{mask_secrets(str(e).splitlines()[0], storage)[:200]})") from None
    if not names:
        raise UserError(f"{safe_url(storage)}: holds no study yet; run `wfsearch run SPEC` first")
    if study_name is None:
        searches = [n for n in names if not is_references_study(n)]
        if folder is not None and folder.name in searches:
            study_name = folder.name
        elif len(searches) == 1:
            study_name = searches[0]
        else:
            raise UserError(f"--study: {safe_url(storage)} holds several studies {sorted(searches)}; "
                            "pass --study NAME")
    elif study_name not in names:
        raise UserError(f"--study: {study_name!r}: no such study in {safe_url(storage)}; "
                        f"studies there: {sorted(names)}")
    check_study_name(study_name, f"{safe_url(storage)}: study name")  # it names files and folders
    study = optuna.load_study(study_name=study_name, storage=rdb)
    return OpenStudy(study=study, folder=folder or study_dir(study_name), storage_url=safe_url(storage),
                     by_storage=by_storage)
