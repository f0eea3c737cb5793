"""Storage URLs fit to print or store: every credential masked, in the password place and in the query
string alike (``postgresql+psycopg2://u@host/db?password=...`` is a valid libpq form)."""
from __future__ import annotations

import re
from urllib.parse import quote

SECRET_KEY = re.compile(r"pass|pwd|secret|token|auth|key", re.IGNORECASE)  # query keys whose values are hidden
MASK = "***"
PIP_NAMES = {"psycopg2": "psycopg2-binary", "psycopg": "'psycopg[binary]'", "MySQLdb": "mysqlclient"}


def _masked(url: str):
    """(the parsed URL with every credential masked, the credentials' values)."""
    from sqlalchemy.engine import make_url
    u = make_url(url)
    found = [u.password] if u.password else []
    hidden = {}
    for k, v in u.query.items():
        if SECRET_KEY.search(k):
            found += [x for x in (v if isinstance(v, tuple) else (v,)) if x]
            hidden[k] = MASK
    return u.set(query={**u.query, **hidden}), [str(s) for s in found]


def safe_url(url: str) -> str:
    """``url`` with any password masked (``***``); only its scheme when it cannot be parsed."""
    try:
        return _masked(url)[0].render_as_string(hide_password=True).replace(quote(MASK, safe=""), MASK)
    except Exception:  # not a URL SQLAlchemy can parse
        return url.split("://", 1)[0] + "://..."


def mask_secrets(text: str, url: str) -> str:
    """``text`` (an error message that may quote ``url``) with the URL's credentials masked."""
    try:
        found = _masked(url)[1]
    except Exception:  # not parseable: the credentials as written
        found = re.findall(r"://[^:/@\s]*:([^@\s]+)@", url) + [
            v for k, v in re.findall(r"[?&]([^=&]+)=([^&\s]+)", url) if SECRET_KEY.search(k)]
    text = text.replace(url, safe_url(url))
    for secret in found:
        text = text.replace(secret, MASK).replace(quote(secret, safe=""), MASK)
    return text


def missing_driver(url: str) -> str | None:
    """Why the database driver ``url`` names cannot be used here, in one line with what to install; None when it
    is installed (or the URL names no known database: the opener says so)."""
    try:
        from sqlalchemy.engine import make_url
        u = make_url(url)
        dialect = u.get_dialect()
    except Exception:
        return None
    try:
        dialect.import_dbapi()
        return None
    except ImportError as e:
        module = getattr(e, "name", None) or u.get_driver_name()
    backend = u.get_backend_name()
    text = f"the {backend} driver {module!r} ({backend}+{u.get_driver_name()}://) is not installed: pip install " \
           f"{PIP_NAMES.get(module, module)}"
    if backend == "postgresql" and module != "psycopg2":
        text += ", or write postgresql+psycopg2://... and pip install 'wfsearch[postgresql]'"
    return text
