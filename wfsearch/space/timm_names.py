"""Is a name a timm model? Answered from a list cached per timm version in ``$XDG_CACHE_HOME/wfsearch``, so
that checking a spec does not import torch (470 MB, seconds); where timm is imported, its registry answers."""
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
    """Every architecture name timm can build here (pretrained tags stripped), wfsearch's sizes included."""
    if "timm" not in sys.modules:
        try:
            return _read(cache_path())
        except (OSError, UnicodeDecodeError):
            pass
    import timm
    names = frozenset(timm.list_models()) | set(MODEL_SIZES)
    path = cache_path()
    if not path.is_file():  # written once per timm version, whole (readers see all of it or none)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write("\n".join(sorted(names)) + "\n")
            os.replace(tmp, path)
        except OSError:  # a read-only home: the next process asks timm again
            pass
    return names


@functools.lru_cache(maxsize=4)
def _read(path: Path) -> frozenset[str]:
    """The cached list, read once per process (a spec checks each of its reference models)."""
    return frozenset(path.read_text().split()) | set(MODEL_SIZES)


def is_timm_model(name: str) -> bool:
    """``timm.is_model(name)``: the name before a pretrained tag (``deit_tiny_patch16_224.fb_in1k``) is known."""
    return str(name).split(".", 1)[0] in timm_model_names()
