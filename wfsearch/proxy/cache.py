"""A cache of cost measurements: in memory, and with a folder on disk as one JSON file per key, written
atomically (temporary name, then rename), so processes share it without locks.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _digest(key: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]


class MeasureCache:
    """``get(key) -> dict | None`` and ``put(key, value)``; keys and values are JSON-able dicts."""

    def __init__(self, cache_dir: str | os.PathLike | None = None):
        self.dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self._memory: dict[str, dict[str, Any]] = {}

    def _path(self, digest: str) -> Path:
        assert self.dir is not None
        return self.dir / f"measure-{digest}.json"

    def get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        digest = _digest(key)
        if digest in self._memory or self.dir is None:
            return self._memory.get(digest)
        path = self._path(digest)
        try:
            blob = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable measurement cache file %s (%s)", path, e)
            return None
        if blob.get("key") != json.loads(json.dumps(key, default=str)):
            return None  # a digest collision; measure again
        self._memory[digest] = blob["value"]
        return blob["value"]

    def put(self, key: dict[str, Any], value: dict[str, Any]) -> None:
        digest = _digest(key)
        self._memory[digest] = dict(value)
        if self.dir is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self._path(digest)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "value": value}, sort_keys=True, default=str, indent=1))
        os.replace(tmp, path)

    def __len__(self) -> int:
        return len(self._memory)


_CACHES: dict[str | None, MeasureCache] = {}


def default_cache(cache_dir: str | os.PathLike | None = None) -> MeasureCache:
    """The process-wide cache for ``cache_dir`` (None: memory only)."""
    k = str(Path(cache_dir).expanduser().resolve()) if cache_dir is not None else None
    if k not in _CACHES:
        _CACHES[k] = MeasureCache(k)
    return _CACHES[k]
