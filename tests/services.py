"""Test services started on loopback and stopped afterwards: a throwaway PostgreSQL server."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from typing import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


@contextmanager
def postgres_server() -> Iterator[str | None]:
    """Yields a SQLAlchemy URL of a fresh PostgreSQL server on 127.0.0.1 (None when not installed).

    ``WFSEARCH_TEST_POSTGRES_URL`` points at an existing server instead.
    """
    url = os.environ.get("WFSEARCH_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    pg = _pg_bin()
    if pg is None:
        yield None
        return
    data = tempfile.mkdtemp(prefix="wfsearch-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
        shutil.chown(data, user="postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(as_user + [f"{pg}/initdb", "-D", data, "-A", "trust", "-U", "postgres"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(as_user + [f"{pg}/pg_ctl", "-D", data, "-l", f"{data}/server.log", "-w", "-o",
                              f"-h 127.0.0.1 -p {port} -k {data}", "start"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_user + [f"{pg}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(data, ignore_errors=True)
