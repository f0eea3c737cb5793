"""The Ray Tune evaluator of a `SearchLoop`: one Ray trial per proposal, on a CPU/GPU slot.

Tune's searcher (`LoopSearcher`) asks the loop what to evaluate and tells it every outcome. A trial (`run_trial`,
in a worker) gets its `Proposal` as JSON and reports after every epoch and at the end with the `Outcome` as JSON
(a string, so Tune does not flatten it).
"""
from __future__ import annotations

import json
import logging
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TextIO

from ray.tune import Callback
from ray.tune.search import Searcher
from ray.tune.stopper import Stopper

from wfsearch.study import Outcome, Proposal, Status, fail_stale_trials

from .driver import FINISHED, SearchLoop
from .progress import SearchProgress
from .ray_api import await_result

log = logging.getLogger(__name__)

MAX_ROUNDS = 5  # Tuner rounds to top up the budget after failed or infeasible trials
WAIT_FOR_TRIAL_S = 1800.0
# evaluate(proposal, settings, report) -> Outcome, in a worker; report(epoch, partial) -> True to stop
Evaluate = Callable[[Proposal, dict, Any], Outcome]


def evaluate_proposal(p: Proposal, settings: dict, report: Any = None) -> Outcome:
    """A real evaluation: the deployed network's costs, then the proxy training (``noop``: none at all)."""
    if settings.get("noop"):  # orchestration-overhead benchmark
        return Outcome(Status.OK, metrics={m: 1.0 for m in settings["objectives"]})
    from wfsearch.proxy.evaluate import evaluate_arch
    from wfsearch.study import first_violation

    constraints = settings.get("constraints", [])
    return evaluate_arch(p.target, p.proxy, settings["throughput"], report, deployed=p.deployed,
                         reject=lambda m: first_violation(constraints, m), cache_dir=settings.get("cache_dir"),
                         reference_img_s=settings.get("reference_img_s"), seed_noise=settings.get("seed_noise"))


def run_trial(config: dict, settings: dict, evaluate: Evaluate = evaluate_proposal) -> None:
    """Ray function trainable: one proposal (``config["proposal"]``) evaluated."""
    from ray import tune

    proposal = Proposal.from_json(config["proposal"])
    objectives = settings["objectives"]
    outcome = wait_for_trial(settings, proposal.wait_for) if proposal.wait_for is not None else None

    def report(epoch: int, partial: Outcome) -> bool:
        values = {m: float(v) for m in objectives if isinstance(v := partial.metrics.get(m), (int, float))}
        tune.report({"epoch": epoch, **values, "outcome": json.dumps(partial.to_json())})
        return False

    if outcome is None:
        try:
            outcome = evaluate(proposal, settings, report)
        except Exception as e:  # a broken trial is recorded, never takes the search down
            if type(e).__name__ in ("StopTrial", "TuneError"):
                raise
            log.error("trial failed: %s", traceback.format_exc())
            outcome = Outcome(Status.ERROR, f"error: {type(e).__name__}: {e}")
    tune.report({"final": True, "outcome": json.dumps(outcome.to_json())})


def wait_for_trial(settings: dict, trial_id: int, poll_s: float = 0.02, max_poll_s: float = 1.0,
                   timeout_s: float | None = None) -> Outcome | None:
    """Wait (at most ``timeout_s``, default ``settings["wait_for_trial_s"]`` or 30 min) until the Optuna trial
    ``trial_id`` has finished; its outcome to reuse when it was trained, else None (pruned, failed or still
    running: this trial then evaluates the architecture itself)."""
    from wfsearch.study import TrialRecord, open_storage

    timeout_s = float(settings.get("wait_for_trial_s", WAIT_FOR_TRIAL_S)) if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s
    storage = open_storage(settings["storage"], create=False)
    while True:
        frozen = storage.get_trial(trial_id)
        if frozen.state.is_finished():
            break
        if time.monotonic() >= deadline:
            log.warning("trial %s still runs after %.0f s: evaluating the same architecture here", frozen.number,
                        timeout_s)
            return None
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
        poll_s = min(max_poll_s, poll_s * 1.5)  # quick for short trials, one read a second for long ones
    record = TrialRecord.from_trial(frozen)
    if not record.trained:
        log.info("trial %s ended %s (%s): evaluating the architecture here", record.number, record.state.name,
                 record.reason)
        return None
    return record.outcome.reused(record.number)


def exception_chain(e: BaseException | None) -> Iterator[BaseException]:
    """``e`` and what caused it, in order (each once)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def is_storage_failure(e: BaseException) -> bool:
    """Whether ``e`` (or what caused it) is the storage failing: SQLAlchemy/SQLite errors, a full disk."""
    import errno
    import sqlite3

    import optuna
    import sqlalchemy.exc

    db = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.DatabaseError, sqlite3.Error,
          optuna.exceptions.StorageInternalError)
    return any(isinstance(c, db) or (isinstance(c, OSError) and c.errno in (errno.ENOSPC, errno.EROFS, errno.EIO))
               for c in exception_chain(e))


class LoopSearcher(Searcher):
    """Tune's searcher over a `SearchLoop`: suggests what the loop asks, tells the loop every outcome."""

    def __init__(self, loop: SearchLoop):
        super().__init__()
        self.loop = loop
        self.trials: dict[str, Any] = {}  # Tune trial id -> the Optuna trial it evaluates
        self.storage_failure: BaseException | None = None  # the storage stopped taking writes: stop the run

    def suggest(self, trial_id: str) -> dict | None:
        if self.storage_failure is not None:
            return Searcher.FINISHED
        try:
            asked = self.loop.ask()
        except Exception as e:
            if not self._stop_on_storage_failure(e):
                raise
            return Searcher.FINISHED
        if asked is None or asked == FINISHED:
            return None if asked is None else Searcher.FINISHED
        self.trials[trial_id] = asked[0]
        return {"proposal": asked[1].to_json()}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        trial = self.trials.pop(trial_id, None)
        if trial is None or self.storage_failure is not None:
            return
        try:
            self.loop.tell(trial, self.outcome(result, error))
        except Exception as e:
            if not self._stop_on_storage_failure(e):
                raise

    @staticmethod
    def outcome(result: dict | None, error: bool) -> Outcome:
        """A trial's last result as an `Outcome`: the final one, or the partial one of the rung that stopped it."""
        result = result or {}
        if "outcome" not in result or (error and not result.get("final")):
            return Outcome(Status.ERROR, "error: the trial's worker failed" if error
                           else "error: the trial stopped before reporting")
        return Outcome.from_json(json.loads(result["outcome"]))

    def _stop_on_storage_failure(self, e: Exception) -> bool:
        """Remember a storage failure (the run then stops) instead of letting Tune log a traceback per trial."""
        if not is_storage_failure(e):
            return False
        if self.storage_failure is None:
            self.storage_failure = e
            log.info("the study storage failed (%s); stopping the run", str(getattr(e, "orig", e)).splitlines()[0])
        return True

    def trial_number(self, trial_id: str) -> int | None:
        """The study's number of the trial Ray calls ``trial_id`` (None before it is sampled)."""
        trial = self.trials.get(trial_id)
        return None if trial is None else trial.number

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the Optuna study in RDB storage is the search state (resume reads it)."""

    def restore(self, checkpoint_path: str) -> None:
        """Nothing to restore (see `save`)."""


class StorageFailureStopper(Stopper):
    """Stops every trial once the searcher saw the storage fail."""

    def __init__(self, searcher: LoopSearcher):
        self.searcher = searcher

    def __call__(self, trial_id: str, result: dict) -> bool:
        return self.stop_all()

    def stop_all(self) -> bool:
        return self.searcher.storage_failure is not None


class ProgressPrinter(Callback):
    """Ray Tune callback printing the progress line: in place on a terminal (every second), else a line per event."""

    def __init__(self, progress: SearchProgress, stream: TextIO | None = None, enabled: bool = True,
                 interval_s: float = 1.0):
        self.progress, self.stream, self.enabled, self.interval_s = progress, stream or sys.stderr, enabled, interval_s
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._starts: dict[str, float] = {}
        self._last, self._ticker = "", None
        self._lock, self._stop = threading.Lock(), threading.Event()

    def __getstate__(self) -> dict:
        """Ray Tune pickles its callbacks with the experiment: without the lock, the thread and the stream."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_stop", "_ticker", "stream")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, stream=sys.stderr, _lock=threading.Lock(), _stop=threading.Event(), _ticker=None)

    def start(self) -> None:
        """Redraw every ``interval_s`` on a terminal until `stop`."""
        if self.enabled and self.tty and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="wfsearch-progress", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.emit()

    def stop(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
            self._ticker = None

    def set_phase(self, phase: str) -> None:
        """What the run does now ("starting Ray", "measuring the reference" ...); shown at once."""
        self.progress.phase = phase
        log.info("phase: %s", phase)
        self.emit()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._starts[trial.trial_id] = time.monotonic()
        self._update(trials, redraw_only=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        start = self._starts.pop(trial.trial_id, None)
        if start is not None:
            self.progress.durations.append(time.monotonic() - start)
        self._update(trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._starts.pop(trial.trial_id, None)
        self._update(trials)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._update(trials, redraw_only=True)

    def _update(self, trials: list, redraw_only: bool = False) -> None:
        self.progress.running = sum(1 for t in trials if t.status == "RUNNING")
        if self.tty or not redraw_only:  # a log file gets a line per finished trial, a terminal a live line
            self.emit()

    def emit(self, final: bool = False) -> None:
        if not self.enabled:
            return
        with self._lock:
            line = self.progress.line()
            if not self.tty and line.split(" | elapsed")[0] == self._last.split(" | elapsed")[0] and not final:
                return  # a log gets a line when something changed, not when the clock did
            if line == self._last and not (final and self.tty):
                return
            self._last = line
            self.stream.write("\r\033[K" + line + ("\n" if final else "") if self.tty else line + "\n")
            self.stream.flush()


class TuneEvaluator:
    """Runs a `SearchLoop`'s trials as Ray Tune trials (`Tuner` rounds until the budget is spent), references as
    Ray tasks."""

    def __init__(self, spec: Any, settings: dict, folder: Path, stop: Any, evaluate: Evaluate = evaluate_proposal,
                 time_budget_s: float | None = None, concurrency: int = 1, printer: "ProgressPrinter | None" = None):
        self.spec, self.settings, self.folder, self.stop, self.evaluate_one = spec, settings, folder, stop, evaluate
        self.time_budget_s, self.concurrency, self.printer = time_budget_s, concurrency, printer
        self.resources = {"num_cpus": spec.resources.cpus_per_trial, "num_gpus": spec.resources.gpus_per_trial}

    def evaluate(self, proposals: Sequence[Proposal]) -> list[Outcome]:
        import ray

        remote = ray.remote(max_retries=2, **self.resources)(_evaluate_task)
        futures = [remote.remote(self.evaluate_one, p, self.settings) for p in proposals]
        return [await_result(f, self.spec, f"reference {p.name or p.arch_hash}") for p, f in zip(proposals, futures)]

    def run(self, loop: SearchLoop) -> None:
        from ray import tune
        from ray.tune.stopper import CombinedStopper

        from .scheduler import ParetoSuccessiveHalving
        from .stop import signal_stopper

        spec, budget, stop = self.spec, loop.budget, self.stop
        loop.progress.concurrency = self.concurrency
        printer = self.printer = self.printer or ProgressPrinter(loop.progress, enabled=False)
        printer.progress = loop.progress
        trainable = tune.with_resources(tune.with_parameters(run_trial, settings=self.settings,
                                                             evaluate=self.evaluate_one),
                                        {"cpu": self.resources["num_cpus"], "gpu": self.resources["num_gpus"]})
        t_search = time.monotonic()  # the time budget counts search, not Ray's start-up or the references
        for round_ in range(MAX_ROUNDS):
            stop.check()
            remaining = budget.total - budget.count
            if remaining <= 0 or budget.stop_reason or (
                    self.time_budget_s is not None and time.monotonic() - t_search >= self.time_budget_s):
                break
            searcher = LoopSearcher(loop)
            scheduler = None
            if spec.study.scheduler.type == "mo_asha" and len(spec.proxy.epochs) > 1:
                scheduler = loop.rungs = ParetoSuccessiveHalving(
                    spec.proxy.epochs, loop.objectives, loop.directions, spec.study.scheduler.reduction_factor,
                    trial_number=searcher.trial_number)
            left = None if self.time_budget_s is None else max(1.0, self.time_budget_s - (time.monotonic() - t_search))
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=4 * remaining + 16,
                                            max_concurrent_trials=self.concurrency, reuse_actors=True,
                                            trial_dirname_creator=_trial_dirname, time_budget_s=left),
                run_config=tune.RunConfig(name=f"round-{int(time.time())}-{round_}",
                                          storage_path=str((self.folder / "ray").resolve()), verbose=0,
                                          callbacks=[printer], log_to_file=True,
                                          stop=CombinedStopper(StorageFailureStopper(searcher), signal_stopper(stop)),
                                          failure_config=tune.FailureConfig(max_failures=2)),
            )
            before = budget.count
            stop.in_round = True
            try:
                tuner.fit()
            except Exception:  # Tune's own files may be the next thing a full disk breaks
                if searcher.storage_failure is None:
                    raise
            finally:
                stop.in_round = False
            if searcher.storage_failure is not None:
                raise searcher.storage_failure
            stop.check()
            # trials sampled in this round but never run stay RUNNING: end them, so no later trial waits on one
            fail_stale_trials(loop.study, reason="interrupted: not run, its round ended first")
            loop.round_ended()
            if budget.count == before and not budget.stop_reason:
                log.warning("a round of %d trial(s) finished none; stopping (see %s)", remaining,
                            self.folder / "run.log")
                break
        printer.emit(final=True)


def _evaluate_task(evaluate: Evaluate, proposal: Proposal, settings: dict) -> Outcome:
    """A Ray task: one proposal evaluated to the end (a reference)."""
    return evaluate(proposal, settings)


def _trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"
