"""One measurement at a time per device: a host-wide readers-writer lock.

Work that other trials run on a shared device inside a timed window moves the figure, so a measurement
takes its device *exclusively* and each training or validation step *shared*. The locks are ``flock(2)``
locks on files, one pair per device and user, so every process of this user on the host takes part and a
dead process drops its locks. A turnstile keeps a stream of training steps from starving a waiting
measurement. Without ``fcntl`` (Windows) the locks do nothing.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from wfsearch.errors import UserError

if TYPE_CHECKING:
    import torch

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def device_key(device: torch.device | str) -> str:
    """The physical device: ``cpu``, or the GPU's UUID (the same whatever ``CUDA_VISIBLE_DEVICES`` says)."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    return f"cuda-{uuid}" if uuid is not None else f"cuda-{os.environ.get('CUDA_VISIBLE_DEVICES', '')}-{index}"


def lock_dir() -> Path:
    """``WFSEARCH_LOCK_DIR`` (an existing writable folder, never created: a typo would silently desynchronize
    this run), else this user's folder in the temporary folder."""
    named = os.environ.get("WFSEARCH_LOCK_DIR")
    if not named:
        return Path(tempfile.gettempdir()) / f"wfsearch-locks-{os.getuid()}"
    if not os.path.isdir(named) or not os.access(named, os.W_OK | os.X_OK):
        what = "not a writable folder" if os.path.isdir(named) else "not a folder" if os.path.exists(named) \
            else "no such folder"
        raise UserError(f"WFSEARCH_LOCK_DIR: {named!r}: {what}; point it at a folder every wfsearch process on this "
                        "host can write (make it first), or unset it to use the temporary folder")
    return Path(named)


class DeviceLock:
    """``exclusive()`` for measurements, ``shared()`` for training steps, on one device of this host."""

    def __init__(self, key: str, directory: str | os.PathLike | None = None, drain=None):
        self.key = re.sub(r"[^A-Za-z0-9_.-]", "_", key)
        self.drain = drain  # waits for this process's queued work on the device (CUDA is asynchronous)
        self.dir = Path(directory) if directory is not None else lock_dir()
        self._fds: dict[str, int] = {}

    def _fd(self, name: str, fresh: bool = False) -> int:
        if not fresh and name in self._fds:
            return self._fds[name]
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.dir / f"{self.key}.{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        if not fresh:
            self._fds[name] = fd
        return fd

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the device alone: no other measurement and no training step runs meanwhile."""
        if fcntl is None:
            yield
            return
        gate, data = self._fd("gate", fresh=True), self._fd("data", fresh=True)
        try:
            fcntl.flock(gate, fcntl.LOCK_EX)  # new steps and other measurements stop here
            fcntl.flock(data, fcntl.LOCK_EX)  # the steps in flight finish
            yield
        finally:
            os.close(data)  # closing drops the locks
            os.close(gate)

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """One training step: runs alongside other steps, never inside a measurement."""
        if fcntl is None:
            yield
            return
        gate, data = self._fd("gate"), self._fd("data")
        fcntl.flock(gate, fcntl.LOCK_EX)  # the turnstile: blocks while a measurement waits or runs
        fcntl.flock(gate, fcntl.LOCK_UN)
        fcntl.flock(data, fcntl.LOCK_SH)
        try:
            yield
        finally:
            if self.drain is not None and self._measurement_waiting(gate):
                self.drain()  # the step's kernels must finish before the measurement's start
            fcntl.flock(data, fcntl.LOCK_UN)

    @staticmethod
    def _measurement_waiting(gate: int) -> bool:
        try:
            fcntl.flock(gate, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True  # (or another trainer passing the turnstile: one needless drain, harmless)
        fcntl.flock(gate, fcntl.LOCK_UN)
        return False

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


@functools.lru_cache(maxsize=None)
def _lock(key: str, directory: str, device: str) -> DeviceLock:
    drain = None
    if key.startswith("cuda"):
        import torch

        dev = torch.device(device)
        drain = functools.partial(torch.cuda.synchronize, dev)
    return DeviceLock(key, directory, drain)


def device_lock(device: torch.device | str) -> DeviceLock:
    """This process's lock object for ``device`` (one per device, its files opened once)."""
    return _lock(device_key(device), str(lock_dir()), str(device))


if hasattr(os, "register_at_fork"):  # a forked child must not share its parent's open lock files
    os.register_at_fork(after_in_child=_lock.cache_clear)
