"""A clean stop: SIGINT (Ctrl-C) and SIGTERM end a search within seconds.

In a Ray Tune round a signal asks Tune to end the round (its own interrupt handler, and a stopper as a second
route); outside one it raises `Interrupted` at once. The engine then marks running trials interrupted and the CLI
exits with 128 + the signal number. A watchdog exits anyway ``HARD_STOP_S`` after the signal.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any, Callable

log = logging.getLogger(__name__)

HARD_STOP_S = 30.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The search was stopped by a signal; ``marked`` trials were left interrupted (FAIL)."""

    def __init__(self, signum: int, marked: int = 0):
        super().__init__(signal.Signals(signum).name)
        self.signum, self.marked = signum, marked

    @property
    def exit_status(self) -> int:
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name


class StopOnSignal:
    """Signal handlers for one search. ``in_round`` is True while Tune runs a round."""

    def __init__(self, on_hard_stop: Callable[[int], None] | None = None, hard_stop_s: float = HARD_STOP_S):
        self.event, self.signum, self.in_round = threading.Event(), None, False
        self.on_hard_stop, self.hard_stop_s = on_hard_stop, hard_stop_s
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """(Re)install the handlers; call again after anything that sets its own (``ray.init`` sets SIGTERM)."""
        if threading.current_thread() is not threading.main_thread():
            return
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # Tune's would swallow the first Ctrl-C for itself
        for s in SIGNALS:
            prev = signal.signal(s, self._handle)
            self._previous.setdefault(s, prev)

    def restore(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for s, prev in self._previous.items():
            signal.signal(s, prev if prev is not None else signal.SIG_DFL)
        self._previous.clear()

    def check(self) -> None:
        """Raise `Interrupted` when a signal has arrived."""
        if self.signum is not None:
            raise Interrupted(self.signum)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.event.is_set():
            log.warning("%s again: already stopping", signal.Signals(signum).name)
            return
        self.signum = signum
        self.event.set()
        log.warning("%s: stopping the search", signal.Signals(signum).name)
        watchdog = threading.Timer(self.hard_stop_s, self._hard_stop, args=(signum,))
        watchdog.daemon = True
        watchdog.start()
        if not self.in_round:
            raise Interrupted(signum)
        from .ray_api import tune_stop_handler

        tune_stop = tune_stop_handler()
        if tune_stop is not None:  # Tune's "end the run now" handler: its loop exits at the next step
            logging.getLogger("ray.tune.tune").setLevel(logging.ERROR)
            tune_stop(signal.SIGUSR1, frame)

    def _hard_stop(self, signum: int) -> None:
        log.error("the search did not stop within %.0f s of %s; exiting", self.hard_stop_s, signal.Signals(signum).name)
        try:
            if self.on_hard_stop is not None:
                self.on_hard_stop(signum)
        finally:
            os._exit(128 + signum)


_ACTIVE: list[StopOnSignal] = []  # the search of this process (the stopper is pickled by Tune: no state in it)


def signal_stopper(stop: StopOnSignal):
    """A Tune `Stopper` that ends every trial once a signal has arrived (not relying on Tune's own handler)."""
    _ACTIVE[:] = [stop]
    return _SignalStopper()


try:
    from ray.tune import Stopper as _TuneStopper
except ImportError:  # pragma: no cover (the search layer always has Ray)
    _TuneStopper = object  # type: ignore[misc,assignment]


class _SignalStopper(_TuneStopper):
    def __call__(self, trial_id: str, result: dict) -> bool:
        return self.stop_all()

    def stop_all(self) -> bool:
        return any(s.event.is_set() for s in _ACTIVE)
