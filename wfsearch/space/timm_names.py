"""Is a name a timm model? Answered from a list cached per timm version, so that checking a spec's
reference model does not import torch (about 470 MB and seconds in every `wfsearch run` driver).

The list is what ``timm.list_models()`` returns for the installed timm, plus wfsearch's own registered
sizes; it is written the first time a process needs it, under ``$XDG_CACHE_HOME/wfsearch`` (or
``~/.cache/wfsearch``), and used as is where that folder cannot be written. Where timm is already
imported, timm's own registry answers (it also knows models that a plugin registered).
"""
from __future__ import annotations

import functools
import os
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from wfsearch.arch.config import MODEL_SIZES


def cache_path() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "wfsearch" / f"timm-{metadata.version('timm')}-models.txt"


def timm_model_names() -> frozenset[str]:
    """Every architecture name timm can build here (pretrained tags stripped)."""
    if "timm" not in sys.modules:
        try:
            return _read(cache_path())
        except (OSError, UnicodeDecodeError):
            pass
    import timm

    names = frozenset(timm.list_models()) | set(MODEL_SIZES)
    if not cache_path().is_file():  # written once per timm version, not on every check
        _write(names)
    return names


@functools.lru_cache(maxsize=4)
def _read(path: Path) -> frozenset[str]:
    """The cached list, read once per process (a spec checks each of its reference models)."""
    return frozenset(path.read_text().split()) | set(MODEL_SIZES)


def is_timm_model(name: str) -> bool:
    """``timm.is_model(name)``: the name before a pretrained tag (``deit_tiny_patch16_224.fb_in1k``) is known."""
    return str(name).split(".", 1)[0] in timm_model_names()


def _write(names: frozenset[str]) -> None:
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(sorted(names)) + "\n")
        os.replace(tmp, path)  # readers see the whole list or none
    except OSError:  # a read-only home: the next process asks timm again
        pass
