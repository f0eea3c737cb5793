"""SQLite study files: damage found before Optuna touches them, read-only copies opened as such, and storage
failures (disk full, read-only, damaged) as one line that says what to do."""
from __future__ import annotations

import errno
import os
import sqlite3
import stat
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

from wfsearch.errors import UserError

SQLITE_MAGIC = b"SQLite format 3\x00"


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for other URLs and in-memory SQLite)."""
    if not url.startswith("sqlite:///") or url in ("sqlite://", "sqlite:///:memory:") or "?" in url:
        return None
    return Path(url[len("sqlite:///"):])


def check_database_file(path: Path) -> None:
    """``path``, when it exists, must look like a whole SQLite database, else one `UserError` line: a 0-byte file
    (SQLite would silently start a new database in it), another kind of file, one shorter than its header says."""
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block the open below forever
            raise UserError(f"{path}: not a regular file (a FIFO, a device or a socket), not a study database; "
                            "move it away or point study.storage at a file")
        size = st.st_size
        with open(path, "rb") as f:
            head = f.read(100)
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise UserError(f"{path}: a folder, not a study database; point the storage at the optuna.db file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read the study database ({e.strerror})") from None
    if size == 0:
        raise UserError(f"{path}: an empty file, not a study database (a copy or a write that did not finish?); "
                        "restore the study from a backup, or delete the file to start a new study")
    if not head.startswith(SQLITE_MAGIC):
        raise UserError(f"{path}: not an SQLite database (an Optuna study database starts with "
                        f"{SQLITE_MAGIC[:15].decode()!r}); check the path, or move the file away to start a new study")
    if len(head) == 100:
        page_size = int.from_bytes(head[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        pages = int.from_bytes(head[28:32], "big")
        valid = head[24:28] == head[92:96]  # the header's page count is current
        wal = path.with_name(path.name + "-wal")
        wal_has_pages = wal.exists() and wal.stat().st_size > 32
        if valid and pages and pages * page_size > size and not wal_has_pages:
            raise UserError(f"{path}: truncated: {size} bytes where the database header says "
                            f"{pages * page_size}; restore the study from a backup, or delete the file to "
                            "start a new study")


OPTUNA_TABLES = {"studies", "trials", "version_info"}


def check_not_foreign(path: Path) -> None:
    """A database holding tables but not Optuna's belongs to another program: one `UserError` line, never written."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        with closing(sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=5)) as con:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error:  # locked, damaged, unreadable: the opener reports it
        return
    if tables and not OPTUNA_TABLES <= tables:
        shown = ", ".join(sorted(tables)[:5]) + (" ..." if len(tables) > 5 else "")
        raise UserError(f"{path}: a database of another program (tables {shown}), not an Optuna study database; "
                        "wfsearch does not write into it: point study.storage at a new file")


def writable(path: Path) -> bool:
    """Whether SQLite can write ``path`` (and its journal files beside it)."""
    folder = path.parent if str(path.parent) else Path(".")
    return os.access(folder, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def reader_url(path: Path) -> str:
    """A SQLAlchemy URL that reads ``path``; ``immutable`` when its folder cannot be written (WAL mode would need
    to create its shared-memory file there)."""
    if writable(path):
        return f"sqlite:///{path}"
    return f"sqlite:///file:{quote(str(path.resolve()))}?immutable=1&mode=ro&uri=true"


def storage_error(url_shown: str, e: BaseException, writing: bool = True) -> UserError | None:
    """One line for a storage failure SQLite or the file system reports; None for anything else."""
    text = str(getattr(e, "orig", None) or e).lower()
    err = getattr(e, "errno", None)
    if err == errno.ENOSPC or "disk is full" in text or "no space left" in text:
        return UserError(f"{url_shown}: the disk is full; the study holds every trial that finished before: "
                         "free some space and run the same command again to continue")
    if err in (errno.EROFS, errno.EACCES, errno.EPERM) or "readonly database" in text or "read-only" in text:
        return UserError(f"{url_shown}: cannot write here (read-only); run from a writable folder or set "
                         "study.storage to a writable place (reading commands such as show and report work on "
                         "a read-only copy)")
    if "database is locked" in text or "database table is locked" in text:
        from .connect import SQLITE_BUSY_TIMEOUT_S

        return UserError(f"{url_shown}: locked by another process for more than {SQLITE_BUSY_TIMEOUT_S} s (a program "
                         "holding it open in a write transaction); let it finish or close it, then run again")
    if "unable to open database file" in text:
        return UserError(f"{url_shown}: cannot open the database file (a missing or read-only folder?); run from "
                         "a writable folder or set study.storage")
    if "malformed" in text or "not a database" in text or "file is encrypted" in text:
        return UserError(f"{url_shown}: the study database is damaged ({text.splitlines()[0]}); restore it from a "
                         "backup, or move it away to start a new study")
    if "disk i/o error" in text:
        return UserError(f"{url_shown}: disk I/O error{' while writing' if writing else ''}; check the disk "
                         "(full, removed or failing) and run the same command again")
    return None


def checkpoint_wal(path: Path | None) -> None:
    """Move a WAL-mode database's log into the file, so ``optuna.db`` alone (a copy) holds the whole study; a
    failure is logged, never raised."""
    import logging

    if path is None or not path.is_file():
        return
    try:
        with closing(sqlite3.connect(path, timeout=5)) as con:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error as e:
        logging.getLogger(__name__).warning("%s: could not fold the write-ahead log into it (%s)", path, e)
