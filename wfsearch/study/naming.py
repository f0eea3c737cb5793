"""Naming rules of studies: valid names, the folder a study writes to, its references study."""
from __future__ import annotations

import re
from pathlib import Path

from wfsearch.errors import UserError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
REFERENCES_SUFFIX = ":references"  # `wfsearch run` keeps the reference models in the study "<name>:references"


def check_study_name(name: str) -> str:
    """``name`` if it is a valid study name (a folder name and a URL path segment), else `UserError`."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UserError(f"study.name: {name!r}: use letters, digits, '_', '.', '-' (starting with a letter or digit)")
    return name


def references_study_name(name: str) -> str:
    """The study that holds the reference models of the search study ``name``."""
    return f"{name}{REFERENCES_SUFFIX}"


def is_references_study(name: str) -> bool:
    return name.endswith(REFERENCES_SUFFIX)


def study_dir(name: str, storage_url: str | None = None) -> Path:
    """Where a study's logs and outputs go: its SQLite file's folder, else ``studies/<name>``."""
    from .storage import sqlite_path

    path = sqlite_path(storage_url) if storage_url else None
    return path.parent if path is not None else Path("studies") / name


def default_storage_url(name: str) -> str:
    return f"sqlite:///studies/{name}/optuna.db"
