"""Study names: the one check every path built from a name goes through (a stored name like ``../../tmp/x``
must not steer `report` or `export` outside the study folder)."""
from __future__ import annotations

import re
from pathlib import Path

from wfsearch.errors import UserError
from wfsearch.urls import mask_secrets, safe_url  # noqa: F401 (the study's way to show a storage URL)

PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # the spec's `study.name` rule
MAX_NAME_LENGTH = 128  # the spec's too (`wfsearch.space.spec`, not imported: readers stay light)
REFERENCES_SUFFIX = ":references"


def check_study_name(name: object, origin: str = "study name") -> str:
    """``name`` when it is a plain name, else one line naming where it came from."""
    if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
        shown = repr(name) if not isinstance(name, str) or len(name) <= 80 else repr(name[:80] + "...")
        raise UserError(f"{origin}: {shown}: not a plain study name; a study name uses letters, digits and "
                        f"_ . - only, starts with a letter or digit and has at most {MAX_NAME_LENGTH} characters; "
                        f"such a name cannot name a folder, so rename the study")
    return name


def study_dir(name: str, root: str | Path = "studies", origin: str = "study name") -> Path:
    """``<root>/<name>``, for a plain ``name`` only."""
    return Path(root) / check_study_name(name, origin)


def references_study_name(name: str) -> str:
    """The study that holds the reference models of study ``name``."""
    return f"{check_study_name(name)}{REFERENCES_SUFFIX}"


def is_references_study(name: str) -> bool:
    return name.endswith(REFERENCES_SUFFIX)


def default_storage_url(name: str) -> str:
    """Where a study is stored unless its spec says otherwise: ``sqlite:///studies/<name>/optuna.db``."""
    return f"sqlite:///{study_dir(name).as_posix()}/optuna.db"
