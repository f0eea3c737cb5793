"""Steady CPU timings: keep glibc's large allocations on the heap instead of fresh ``mmap`` pages.

By default glibc serves each allocation above a *dynamic* threshold (128 KiB, growing as blocks
are freed) with its own ``mmap``, and gives freed heap tops back to the OS. A model's activations
at a realistic batch are such blocks, so every forward pass page-faults and zeroes memory anew,
and how much it does so depends on the process's allocation history. Measured on a 2-core CPU
with DeiT-Tiny at 224 x 16, one thread: images/s differed by up to 15% between processes and
stayed put within each (so more repeats did not help), and two processes' throughput ratios
disagreed by up to 14%; with the allocations kept on the heap every process ran at the fastest
of those speeds and the ratios agreed within 1% (``benchmarks/measure_concurrency.py``,
``benchmarks/NOTES.md``). The cost is that freed memory stays with the process, and in a process that
measures one architecture after another (a reused Ray worker, a table's worker) the heap grows with
each one's shapes: about 170 MB per DeiT-scale architecture at 224 px, 7 GB per table worker after
about 100 of them. `release_memory` hands the freed pages back (``malloc_trim``) once a measurement or
a training has ended, outside anything timed: about 38 MB per architecture remain, from elsewhere
(not oneDNN's primitive cache, not the CPU fast path's cached weights; `benchmarks/memory_growth.txt`).

`steady_allocations` sets that once per process with ``mallopt``; elsewhere (musl, macOS,
Windows) it does nothing, as `release_memory` does. ``WFSEARCH_MALLOC=default`` leaves glibc's
settings alone.
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
    """Give the heap's freed pages back to the OS (``malloc_trim(0)``): after a measurement or a training,
    so that a long-lived worker stays at one architecture's peak. True when glibc released some."""
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
