"""The one writer of a file a user names (``report -o``, ``export --output``, ``erf --out``, ``schema -o``):
whole or not at all, through a link to a regular file, never over a FIFO, a device or a folder."""
from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

from wfsearch.errors import UserError

KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
         (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
FULL = "the disk is full; nothing was written (a file that was there is kept): free some space and run again"
ERRORS = {errno.ENOSPC: FULL, errno.EDQUOT: FULL,
          errno.EROFS: "a read-only file system; write somewhere else (-o/--output)",
          errno.EACCES: "permission denied; write somewhere else (-o/--output)",
          errno.EPERM: "permission denied; write somewhere else (-o/--output)",
          errno.ENAMETOOLONG: "the name is too long for the file system; choose a shorter path",
          errno.ENOTDIR: "a part of the path is a file, not a folder; fix the path"}


def write_output(path: str | Path, data: str | bytes, flag: str) -> Path:
    """Write ``data`` as the whole file at ``path`` (a temporary file beside it, renamed over it), through a
    link. Anything there but a regular file, a read-only place or a full disk is one `UserError` line naming
    ``flag`` and the path; the temporary file is removed, the old file kept."""
    path = Path(path)
    try:
        target, mode = output_target(path, flag)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
                f.flush()
                os.fsync(f.fileno())
            if mode is not None:
                os.chmod(tmp, stat.S_IMODE(mode))  # a replaced file keeps its permissions
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as e:
        raise UserError(f"{flag}: {str(path)!r}: {output_error(e)}") from None
    return path


def output_target(path: str | Path, flag: str) -> tuple[Path, int | None]:
    """The file ``path`` leads to (through links) and its mode (None: nothing there yet); anything there that
    is not a regular file is one `UserError` line. Commands call it before their work, `write_output` again."""
    path = Path(path)
    target = Path(os.path.realpath(path))
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as e:
        raise UserError(f"{flag}: {str(path)!r}: {output_error(e)}") from None
    folder = next(p for p in target.parents if p.exists())  # the folder that will hold it, or its nearest parent
    if not os.access(folder, os.W_OK):
        err = errno.EROFS if os.statvfs(folder).f_flag & os.ST_RDONLY else errno.EACCES
        raise UserError(f"{flag}: {str(path)!r}: {output_error(OSError(err, ''))}")
    if mode is not None and not stat.S_ISREG(mode):
        kind = next((name for test, name in KINDS if test(mode)), "not a regular file")
        via = f" (the link leads to {str(target)!r})" if path.is_symlink() else ""
        raise UserError(f"{flag}: {str(path)!r}: {kind} is there{via}; wfsearch writes a "
                        "regular file only: give the path of a file (a new one, or one to replace)")
    return target, mode


def output_error(e: OSError) -> str:
    """What an OS error when writing a file means for the user, and the fix (the path not included)."""
    return ERRORS.get(e.errno, f"cannot write it ({e.strerror or e}); fix the path or write somewhere else")
