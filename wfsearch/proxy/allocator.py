"""Steady CPU timings: keep glibc's large allocations on the heap instead of fresh ``mmap`` pages.

glibc serves allocations above a dynamic threshold with their own ``mmap``, so each forward pass
page-faults anew, depending on the process's history: DeiT-Tiny's images/s differed by up to 15% between
processes, and throughput ratios by 14%; on the heap they agreed within 1% (``benchmarks/NOTES.md``).
The heap then grows with each architecture's shapes (~170 MB each), so `release_memory` (``malloc_trim``)
hands freed pages back after a measurement or training (`benchmarks/memory_growth.txt`). Both do nothing
off glibc or with ``WFSEARCH_MALLOC=default``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's maximum on 64-bit: blocks up to 32 MiB come from the heap
TRIM_THRESHOLD = 2 ** 31 - 1  # never give the heap's top back (the next batch needs it again)

_done: bool | None = None
_libc = None


def steady_allocations() -> bool:
    """Keep large allocations on the heap (see the module doc). True when glibc accepted it."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("WFSEARCH_MALLOC", "").lower() == "default":
        return _done
    libc = _glibc()
    if libc is None:
        return _done  # not glibc
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    log.debug("steady allocations: %s", _done)
    return _done


def release_memory() -> bool:
    """Give the heap's freed pages back to the OS (``malloc_trim(0)``); True when glibc released some."""
    libc = _glibc()
    if libc is None or os.environ.get("WFSEARCH_MALLOC", "").lower() == "default":
        return False
    return bool(libc.malloc_trim(0))


def _glibc():
    """glibc, with ``mallopt`` and ``malloc_trim``; None elsewhere."""
    global _libc
    if _libc is None:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            lib.mallopt, lib.malloc_trim  # noqa: B018  (both present: glibc)
            lib.malloc_trim.argtypes, lib.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
            _libc = lib
        except (OSError, AttributeError):
            _libc = False
    return _libc or None
