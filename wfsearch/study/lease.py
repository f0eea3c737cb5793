"""One search per study: a lease (study user attribute ``run_lease``: owner, heartbeat, expiry) taken with an
atomic insert and renewed or taken over by compare-and-swap, so two runs (on one machine or sharing a server) never
both hold it. It is renewed every ``RENEW_S``; a killed run's lease is taken over at once on the same machine,
else ``TTL_S`` after its last renewal.
"""
from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import optuna

from wfsearch.errors import UserError

log = logging.getLogger(__name__)

LEASE_ATTR = "run_lease"
TTL_S = 60.0
RENEW_S = 10.0


class StudyBusy(UserError):
    """Another live run holds the study."""


def _table():
    from .optuna_api import rdb_models

    return rdb_models.StudyUserAttributeModel.__table__


@dataclass
class StudyLease:
    """The lease of one run on one study; `acquire` it, `release` it when the run ends."""

    storage: optuna.storages.RDBStorage
    study_id: int
    study_name: str
    owner: dict[str, Any] = field(default_factory=lambda: {
        "host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex})
    _value: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _new_value(self) -> str:
        now = time.time()
        return json.dumps({**self.owner, "heartbeat": now, "expires": now + TTL_S})

    def _read(self, conn) -> str | None:
        t = _table()
        row = conn.execute(t.select().with_only_columns(t.c.value_json)
                           .where(t.c.study_id == self.study_id, t.c.key == LEASE_ATTR)).first()
        return None if row is None else row[0]

    def _swap(self, conn, old: str, new: str) -> bool:
        t = _table()
        res = conn.execute(t.update().where(t.c.study_id == self.study_id, t.c.key == LEASE_ATTR,
                                            t.c.value_json == old).values(value_json=new))
        return res.rowcount == 1

    def acquire(self) -> None:
        """Take the lease, or raise `StudyBusy` naming the live run that holds it."""
        import sqlalchemy.exc

        engine = self.storage.engine
        new = self._new_value()
        try:
            with engine.begin() as conn:
                conn.execute(_table().insert().values(study_id=self.study_id, key=LEASE_ATTR, value_json=new))
            self._value = new
        except sqlalchemy.exc.IntegrityError:  # a lease row exists: take it only if it has expired
            with engine.begin() as conn:
                old = self._read(conn)
                holder = _parse(old)
                if old is not None and holder.get("expires", 0) > time.time() and not self._is_mine(holder) \
                        and not self._died_here(holder):
                    raise StudyBusy(self._busy_message(holder)) from None
                if old is None or not self._swap(conn, old, new):
                    raise StudyBusy(f"study {self.study_name!r}: another run took it a moment ago; "
                                    f"try again in {TTL_S:.0f} s if that run is gone") from None
                self._value = new
                if holder and not self._is_mine(holder):
                    log.warning("study %s: the run on %s (pid %s) is gone; taking over its lease",
                                self.study_name, holder.get("host"), holder.get("pid"))
        self._thread = threading.Thread(target=self._renew_loop, name="study-lease", daemon=True)
        self._thread.start()

    def renew(self) -> bool:
        """Push the expiry forward; False when the lease was lost (expired and taken over)."""
        if self._value is None:
            return False
        new = self._new_value()
        with self.storage.engine.begin() as conn:
            ok = self._swap(conn, self._value, new)
        if ok:
            self._value = new
        else:
            log.error("study %s: lost the run lease (this run was stalled for over %.0f s)", self.study_name, TTL_S)
        return ok

    def release(self) -> None:
        """Give the lease back (only ours: a lease taken over by another run is left alone)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._value is None:
            return
        t = _table()
        try:
            with self.storage.engine.begin() as conn:
                conn.execute(t.delete().where(t.c.study_id == self.study_id, t.c.key == LEASE_ATTR,
                                              t.c.value_json == self._value))
        except Exception as e:  # the storage went away: the lease expires on its own
            log.warning("study %s: could not release the run lease (%s); it expires in %.0f s",
                        self.study_name, e, TTL_S)
        self._value = None

    def _renew_loop(self) -> None:
        while not self._stop.wait(RENEW_S):
            try:
                if not self.renew():
                    return
            except Exception as e:  # a storage hiccup: try again at the next tick, before the lease expires
                log.warning("study %s: renewing the run lease failed (%s)", self.study_name, e)

    def _died_here(self, holder: dict) -> bool:
        """The holder ran on this machine and its process is gone (killed): no need to wait for expiry."""
        pid = holder.get("pid")
        if holder.get("host") != self.owner["host"] or not isinstance(pid, int) or not 0 < pid < 2**22:
            return False  # another machine's, or not a process id (2**22: Linux's largest)
        try:
            os.kill(holder["pid"], 0)
        except ProcessLookupError:
            return True
        except OSError:  # alive, owned by someone else
            pass
        return False

    def _is_mine(self, holder: dict) -> bool:
        return holder.get("token") == self.owner["token"]

    def _busy_message(self, holder: dict) -> str:
        age = time.time() - float(holder.get("heartbeat", 0))
        return (f"study {self.study_name!r} is being searched by another run (pid {holder.get('pid')} on "
                f"{holder.get('host')}, alive {age:.0f} s ago); wait for it to finish or stop it (Ctrl-C); "
                f"a run that died releases the study {TTL_S:.0f} s after its last heartbeat")

    def __enter__(self) -> "StudyLease":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _parse(value: str | None) -> dict:
    """A stored lease; a damaged one (wrong types, an expiry further ahead than ever written) reads as expired."""
    try:
        out = json.loads(value) if value else {}
    except ValueError:
        out = None
    if not isinstance(out, dict):
        return {}
    now = time.time()
    for key in ("heartbeat", "expires"):
        v = out.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v > now + 2 * TTL_S:
            out[key] = 0.0
    if isinstance(out.get("pid"), bool):
        out["pid"] = None
    return out


def study_lease(study: optuna.Study) -> StudyLease:
    """The run lease of ``study`` (an Optuna study in RDB storage), not yet acquired."""
    from .optuna_api import rdb_backend, study_id

    return StudyLease(storage=rdb_backend(study), study_id=study_id(study), study_name=study.study_name)
