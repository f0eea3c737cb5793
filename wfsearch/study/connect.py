"""How a study storage is connected to: bounded waits for a database server, one line naming a server that
did not answer."""
from __future__ import annotations

from typing import Any

from .naming import mask_secrets, safe_url

CONNECT_TIMEOUT_S = 10
STATEMENT_TIMEOUT_S = 300
SQLITE_BUSY_TIMEOUT_S = 60  # how long a writer or reader waits for another process's SQLite write lock


def engine_options(url: str) -> dict[str, Any]:
    """SQLAlchemy engine options for ``url`` (bounded waits), the same for every reader and writer."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    if url.startswith("postgresql"):
        args = {"connect_timeout": CONNECT_TIMEOUT_S, "options": f"-c statement_timeout={STATEMENT_TIMEOUT_S * 1000}"}
    elif url.startswith("mysql"):
        args = {"connect_timeout": CONNECT_TIMEOUT_S, "read_timeout": STATEMENT_TIMEOUT_S}
    else:
        return {}
    return {"pool_pre_ping": True, "connect_args": args}


def server_of(url: str) -> str:
    """``host:port`` of a server URL (for messages), or the masked URL."""
    try:
        from sqlalchemy.engine import make_url

        u = make_url(url)
        if u.host:
            return f"{u.host}:{u.port}" if u.port else u.host
    except Exception:
        pass
    return safe_url(url)


def cannot_open(url: str, error: BaseException) -> str:
    """One line: which storage, which server, what went wrong (password masked)."""
    text = mask_secrets(" ".join(str(error).split()), url)
    low = text.lower()
    if "timeout expired" in low or "timed out" in low or "canceling statement due to statement timeout" in low:
        return (f"storage {safe_url(url)!r}: the database server at {server_of(url)} did not answer within "
                f"{CONNECT_TIMEOUT_S} s; check that it is up and reachable from here")
    if "connection refused" in low:
        return (f"storage {safe_url(url)!r}: nothing accepts connections at {server_of(url)} (connection refused); "
                "check the host and port, and that the server runs")
    return f"storage {safe_url(url)!r}: cannot open ({type(error).__name__}: {text[:300]})"
