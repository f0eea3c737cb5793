"""`run_search`: a multi-objective search on Ray Tune, every trial stored in an Optuna study.

The study is prepared (header, sampler, run lease); the references and then the search run through the one
`SearchLoop` with the Ray Tune evaluator (`wfsearch.search.tune`). Re-running continues the same study.
"""
from __future__ import annotations

import logging
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

import wfsearch
from wfsearch.errors import UserError
from wfsearch.gpu import gpu_count, gpu_info
from wfsearch.study import (TrialRecord, archive_study, as_dicts, fail_stale_trials, open_storage, pareto_front,
                            references_study_name, safe_url, set_study_attrs, sqlite_path, study_attrs, study_dir,
                            write_header)
from wfsearch.study.verdict import verdict_line, verdict_passed
from wfsearch.study.connect import engine_options
from wfsearch.study.hypervolume import stored_box
from wfsearch.study.lease import StudyBusy, StudyLease, study_lease
from wfsearch.study.naming import default_storage_url
from wfsearch.study.optuna_api import n_trials
from wfsearch.study.rows import check_values_stored
from wfsearch.study.sqlite import checkpoint_wal

from .driver import distinct_budget, evaluate_references, search_loop, search_records
from .sampler import SAMPLER_ATTR, SpaceFunction, make_sampler, objective_names, resolve_sampler  # noqa: F401
from .ray_api import await_result, concurrency, init_ray, shutdown_ray
from .stop import Interrupted, StopOnSignal
from .progress import SearchProgress
from .tune import ProgressPrinter, TuneEvaluator, exception_chain

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    study_name: str
    storage: str
    study_dir: Path
    finished: int
    pruned: int
    failed: int
    front: list[TrialRecord] = field(default_factory=list)
    references: list[TrialRecord] = field(default_factory=list)
    hypervolume: float = 0.0
    archived_as: str | None = None
    seconds: float = 0.0
    repeats: int = 0  # re-sampled architectures told their known result (not counted in ``finished``)
    stopped: str | None = None  # why the search ended below its budget (the space is exhausted)
    verdict: str = ""  # how far the proxy's ranking can be trusted (`wfsearch.study.verdict.verdict_line`)


def storage_url(spec: Any) -> str:
    """The spec's storage URL; by default ``sqlite:///studies/<name>/optuna.db`` under the current folder."""
    return spec.study.storage or default_storage_url(spec.study.name)


def absolute_url(url: str) -> str:
    """``url`` with a relative SQLite path made absolute (Ray workers run in other folders)."""
    path = sqlite_path(url)
    return f"sqlite:///{path.resolve()}" if path is not None else url


def study_dir_for(spec: Any) -> Path:
    """Where a study writes its logs and outputs: the SQLite file's folder or ``studies/<name>``."""
    path = sqlite_path(storage_url(spec))
    return path.parent if path is not None else study_dir(spec.study.name)


def hardware_info() -> dict[str, Any]:
    info = {"hostname": platform.node(), "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), **gpu_info()}
    import ray

    return {**info, "ray": ray.__version__}


def quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


# what may change between runs of one study: it cannot change a trial's result
RESUMABLE_CHANGES = (("study", "trials"), ("study", "storage"), ("resources",))


def spec_change(stored: Any, spec: Any) -> str | None:
    """The first key path where ``spec`` differs from the ``stored`` one (rebuilt with today's defaults) in what
    decides results (``"proxy.dataset.num_classes: 4 -> 8"``), or None."""
    from wfsearch.space import spec_from_dict

    if not isinstance(stored, dict):
        return None
    try:
        old = spec_from_dict(stored, "the study's spec").to_dict()
    except ValueError:  # written by an incompatible version: compare what was stored
        old = stored
    new = spec.to_dict()
    for path in RESUMABLE_CHANGES:
        for d in (old, new):
            parent = d
            for k in path[:-1]:
                parent = parent.get(k, {}) if isinstance(parent, dict) else {}
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
    return _first_difference(old, new, ())


def _first_difference(a: Any, b: Any, path: tuple) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            diff = _first_difference(a.get(k, "(absent)"), b.get(k, "(absent)"), (*path, k))
            if diff:
                return diff
        return None
    if a != b:
        return f"{'.'.join(map(str, path)) or 'spec'}: {_short(a)} -> {_short(b)}"
    return None


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def prepare_study(spec: Any, fresh: bool = False
                  ) -> tuple[optuna.Study, optuna.storages.RDBStorage, str | None, StudyLease]:
    """Open (or create) the study with its header and sampler, holding its run lease; ``fresh`` archives the old one."""
    quiet_optuna()
    storage = open_storage(storage_url(spec))
    names, directions = objective_names(spec)
    existing = {s.study_name for s in storage.get_all_studies()}  # names only: summaries read every trial
    archived = None
    if fresh and spec.study.name in existing:
        with study_lease(optuna.load_study(study_name=spec.study.name, storage=storage)):  # not while a run holds it
            archived = archive_study(storage, spec.study.name)
        existing.discard(spec.study.name)
    study = optuna.create_study(study_name=spec.study.name, storage=storage, directions=directions,
                                load_if_exists=True)
    lease = study_lease(study)
    lease.acquire()
    try:
        check_values_stored(study)
        attrs = study_attrs(study)
        if spec.study.name in existing:
            _check_resumable(spec, attrs, names)
        sampler = resolve_sampler(spec, attrs.get(SAMPLER_ATTR))
        study.sampler = make_sampler(spec, sampler, resumed_at=n_trials(study))
        write_header(study, spec, hardware_info())
        set_study_attrs(study, **{SAMPLER_ATTR: sampler})
        fail_stale_trials(study)  # safe: no other live run holds the study
    except BaseException:
        lease.release()
        raise
    return study, storage, archived, lease


def _check_resumable(spec: Any, attrs: dict, names: list[str]) -> None:
    old = [o["name"] for o in attrs.get("objectives") or []]
    if old and old != names:
        raise UserError(f"study {spec.study.name!r} in {safe_url(storage_url(spec))}: it was run with objectives "
                        f"{old}, the spec now says {names}; use --fresh to start a new study (the old one is kept)")
    if attrs.get("spec_hash") not in (None, spec.hash):
        change = spec_change(attrs.get("spec"), spec)
        if change:
            raise UserError(f"{getattr(spec, 'path', None) or 'spec'}: {change}: the spec changed since study "
                            f"{spec.study.name!r} started, and trials of both would share one front; keep the "
                            "spec, or start a new study with --fresh (the old one is kept as <name>-<timestamp>) "
                            "or another study.name (only study.trials, study.storage and resources may change)")


def preflight_data(spec: Any, cache_dir: str) -> None:
    """Load a real dataset once on the driver (a missing folder, or a bad WFSEARCH_LOCK_DIR, is one line before Ray
    starts; the decoded tensors land in the study's cache for every worker)."""
    from wfsearch.proxy.devicelock import lock_dir

    lock_dir()
    if spec.proxy.dataset.name in ("synthetic", "digits"):
        return
    from wfsearch.proxy.data import load_dataset

    load_dataset(spec.proxy, cache_dir, origin=str(spec.path))


SCALE_ATTR = "throughput_scale"


def throughput_scale(spec: Any, study: optuna.Study, settings: dict) -> float | None:
    """The study's pooled median reference images/s (paired ``throughput`` = per-repeat ratio x this), measured once
    as a trial would and stored as ``throughput_scale``; None without a reference model."""
    import ray

    reference = spec.throughput.reference
    if not reference or settings.get("noop"):
        return None
    known = study_attrs(study).get(SCALE_ATTR) or {}
    if known.get("reference") == reference and known.get("img_s"):
        return float(known["img_s"])
    remote = ray.remote(num_cpus=spec.resources.cpus_per_trial, num_gpus=spec.resources.gpus_per_trial,
                        max_retries=2)(_measure_reference)
    costs = await_result(remote.remote(reference, settings), spec, f"the speed calibration of {reference}")
    samples = [*costs.get("throughput_img_s_samples", []), *costs.get("reference_samples", [])]
    if not samples:
        return None
    scale = {"reference": reference, "img_s": statistics.median(samples), "samples": len(samples),
             "device": costs.get("device"), "clock": costs.get("clock"),
             "how": "median images/s of the reference model over every repeat of one measurement of it against "
                    "itself, in a trial's setting; throughput = per-repeat ratio to the reference x img_s"}
    set_study_attrs(study, **{SCALE_ATTR: scale})
    log.info("speed objective: ratio to %s x %.2f img/s (%d repeats pooled)", reference, scale["img_s"], len(samples))
    return float(scale["img_s"])


def _measure_reference(reference: str, settings: dict) -> dict:
    """A Ray task: the reference model measured against itself in the spec's throughput setting."""
    from wfsearch.proxy.measure import measure_arch

    return measure_arch(reference, {**settings["throughput"], "highres": None}, cache=settings.get("cache_dir"),
                        memory=False)


def run_search(spec: Any, *, address: str | None = None, fresh: bool = False, progress: bool = True,
               noop: bool = False, time_budget_s: float | None = None, stream: Any = None,
               enqueue: list[dict] | None = None, trackers: tuple[str, ...] = ()) -> RunSummary:
    """Run (or continue) the study of ``spec`` until ``spec.study.trials`` trials have finished; ``trackers``
    (``"tensorboard"``, ``"wandb"``) also log it. A run that fails before its study holds a trial leaves nothing
    behind; a storage failure (disk full, read-only, damaged file) is one `UserError` line."""
    sdir = study_dir_for(spec)
    new_folder = not sdir.exists()
    try:
        t0 = time.monotonic()
        if address is None:  # a local cluster: a trial larger than this machine is refused before anything is made
            concurrency(spec, {"CPU": os.cpu_count() or 1, "GPU": gpu_count()}, "this machine")
        study, storage, archived, lease = prepare_study(spec, fresh)
        for params in enqueue or ():  # known designs first, as Optuna's enqueue_trial does (once per study)
            study.enqueue_trial(params, skip_if_exists=True)

        def mark_interrupted(signum: int) -> int:
            return fail_stale_trials(study, f"interrupted: the run was stopped ({Interrupted(signum).signal_name}) "
                                            "while this trial ran; `wfsearch run` again resumes the study")

        stop = StopOnSignal(on_hard_stop=mark_interrupted)
        stop.install()
        try:
            return _search(spec, study, storage, archived, stop, t0, address=address, progress=progress, noop=noop,
                           time_budget_s=time_budget_s, stream=stream, trackers=trackers)
        except Interrupted as e:
            e.marked = mark_interrupted(e.signum)
            shutdown_ray()  # now, from Python: left to interpreter exit it takes many seconds
            raise e from None
        finally:
            stop.restore()
            lease.release()
            checkpoint_wal(sqlite_path(storage_url(spec)))  # the study whole in optuna.db, however the run ended
    except BaseException as e:
        if not isinstance(e, StudyBusy):  # never touch a study that another run holds
            _remove_if_empty(spec, sdir, new_folder)
        if isinstance(e, UserError):
            raise
        err = _storage_error(spec, e) or _ray_error(e)
        if err is not None:
            raise err from None
        raise


def _ray_error(e: BaseException) -> UserError | None:
    """One line for a Ray failure (a node declared dead, a worker lost, a mistake inside a task), else None."""
    ray = sys.modules.get("ray")
    if ray is None or not isinstance(e, ray.exceptions.RayError):
        return None
    cause = getattr(e, "cause", None)
    if isinstance(cause, UserError):
        return UserError(str(cause))
    text = " ".join(str(cause or e).split())[:200] or type(e).__name__
    return UserError(f"the Ray cluster failed ({type(e).__name__}: {text}); the study holds every trial that "
                     "finished before: run the same command again to continue (on a busy machine, with fewer "
                     "trials at once: resources.max_concurrent)")


def _storage_error(spec: Any, e: BaseException) -> UserError | None:
    """One line for a storage failure anywhere in ``e``'s chain (Ray may wrap it), else None."""
    import sqlite3

    import sqlalchemy.exc

    from wfsearch.study.sqlite import storage_error

    path = sqlite_path(storage_url(spec))
    shown = str(path) if path is not None else "the study storage"
    errs = (storage_error(shown, c) for c in exception_chain(e)
            if isinstance(c, (OSError, sqlite3.Error, sqlalchemy.exc.DBAPIError)))
    return next((err for err in errs if err is not None), None)


def _remove_if_empty(spec: Any, sdir: Path, new_folder: bool) -> None:
    """After a failed run: drop a study that holds no trial yet, and its folder if this run made it."""
    url, path = storage_url(spec), sqlite_path(storage_url(spec))
    try:
        if path is None or path.exists():
            storage = optuna.storages.RDBStorage(url, skip_table_creation=True, engine_kwargs=engine_options(url))
            names = {s.study_name for s in storage.get_all_studies()}  # names only: summaries read every trial
            if spec.study.name in names and not optuna.load_study(study_name=spec.study.name,
                                                                  storage=storage).get_trials(deepcopy=False):
                optuna.delete_study(study_name=spec.study.name, storage=storage)
                names.discard(spec.study.name)
            storage.remove_session()
            storage.engine.dispose()
            if names:
                return
    except Exception:  # a damaged or unreachable storage: leave it as it is
        return
    if new_folder and sdir.is_dir():
        import shutil

        shutil.rmtree(sdir, ignore_errors=True)



def _search(spec: Any, study: optuna.Study, storage: optuna.storages.RDBStorage, archived: str | None,
            stop: StopOnSignal, t0: float, *, address: str | None, progress: bool, noop: bool,
            time_budget_s: float | None, stream: Any, trackers: tuple[str, ...] = ()) -> RunSummary:
    """The search itself, on a prepared study (SIGINT/SIGTERM raise `Interrupted`), with a live line."""
    sdir = study_dir_for(spec)
    sdir.mkdir(parents=True, exist_ok=True)
    _log_to_file(sdir / "run.log")
    log.info("run started: study %s (%s), %d trials, sampler %s, wfsearch %s (pid %d)", spec.study.name,
             getattr(spec, "path", None) or "?", spec.study.trials, spec.study.sampler, wfsearch.__version__,
             os.getpid())
    names, directions = objective_names(spec)
    settings = {"proxy": spec.proxy.model_dump(mode="json"), "throughput": spec.throughput.model_dump(mode="json"),
                "constraints": as_dicts(spec.study.constraints), "objectives": names, "noop": noop,
                "cache_dir": str((sdir / "cache").resolve()), "storage": absolute_url(storage_url(spec))}
    attrs = study_attrs(study)
    prog = SearchProgress(total=spec.study.trials, objectives=names, directions=directions,
                          chance=1.0 / spec.proxy.dataset.num_classes if spec.proxy.dataset.num_classes else None,
                          hv_box=stored_box(attrs, names))
    printer = ProgressPrinter(prog, stream=stream, enabled=progress)
    if progress and verdict_passed(attrs, settings["proxy"]) is not True:
        print(verdict_line(attrs, settings["proxy"], spec.path and os.path.relpath(spec.path)),
              file=stream or sys.stdout, flush=True)
    printer.set_phase("checking the data")
    printer.start()
    try:
        preflight_data(spec, settings["cache_dir"])
        printer.set_phase("starting Ray")
        init_ray(address, sdir)
        trials_at_once = concurrency(spec)  # before anything waits on Ray: a task larger than the cluster never runs
        stop.install()  # ray.init sets its own SIGTERM handler
        if spec.throughput.reference and not settings.get("noop"):
            printer.set_phase(f"measuring the reference {spec.throughput.reference} (the speed scale)")
        settings["reference_img_s"] = prog.reference_img_s = throughput_scale(spec, study, settings)
        settings["seed_noise"] = study_attrs(study).get("seed_noise")
        evaluator = TuneEvaluator(spec, settings, sdir, stop, time_budget_s=time_budget_s,
                                  concurrency=trials_at_once, printer=printer)
        references = []
        if spec.references:
            printer.set_phase(f"evaluating {len(spec.references)} reference(s)")
            ref_study = optuna.create_study(study_name=references_study_name(spec.study.name), storage=storage,
                                            directions=directions, load_if_exists=True)
            references = evaluate_references(spec, ref_study, evaluator, hardware_info())
        printer.set_phase("reading the study")
        ended = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)  # states a trial never leaves
        read_first = search_records(study, ended)  # read once: a study may hold many thousands of trials
        loop = search_loop(spec, study, read_first, progress=prog)
        tracking = search_trackers(spec, sdir, loop, trackers)
        printer.set_phase("searching")
        try:
            evaluator.run(loop)
        finally:
            if tracking is not None:
                tracking.close()
        prog.running = 0
        printer.set_phase("finishing")
        study = optuna.load_study(study_name=spec.study.name, storage=storage)
        # the trials read at the start have ended and cannot change: read only the newer ones
        last = max((r.number for r in read_first), default=None)
        records = list({r.number: r for r in [*read_first, *search_records(study, ended, after_number=last)]}.values())
        front = pareto_front([r for r in records if r.state == TrialState.COMPLETE], directions)
        box = prog.hv_box  # the study's fixed box: the live line's
        hv = box.hypervolume([t.values for t in front]) if box is not None and front else 0.0
        budget = loop.budget
        printer.set_phase("done")
        printer.emit(final=True)
        log.info("run ended: %d distinct architectures finished, front %s, hypervolume %.3f, %.0f s",
                 budget.count, [t.number for t in front], hv, time.monotonic() - t0)
        if budget.stop_reason:
            log.info("%s", budget.stop_reason)
        return RunSummary(study_name=spec.study.name, storage=safe_url(storage_url(spec)), study_dir=sdir,
                          finished=distinct_budget(spec, records).count, repeats=loop.progress.repeats,
                          stopped=budget.stop_reason, pruned=sum(r.state == TrialState.PRUNED for r in records),
                          failed=sum(r.state == TrialState.FAIL for r in records), front=front, references=references,
                          hypervolume=hv, archived_as=archived, seconds=time.monotonic() - t0,
                          verdict=verdict_line(study_attrs(study), settings["proxy"],
                                               spec.path and os.path.relpath(spec.path)))
    finally:
        printer.stop()


def search_trackers(spec: Any, sdir: Path, loop: Any, which: tuple[str, ...]) -> Any:
    """TensorBoard (``studies/<name>/tensorboard/``) and/or W&B, as ``which`` asks (None when nothing is): every
    finished distinct architecture logs ``trial/<objective>`` and ``search/hypervolume``, ``front_size``,
    ``best_<objective>``, ``pruned``, ``failed``, at the count of distinct architectures finished."""
    if not which:
        return None
    from wfsearch.study.write import stored_spec
    from wfsearch.tracking import RunTrackers

    trackers = RunTrackers(sdir, spec.study.name, stored_spec(spec), tensorboard="tensorboard" in which,
                           wandb="wandb" in which, resume=True, first_step=loop.budget.count + 1)
    prog, last = loop.progress, [loop.budget.count]

    def on_told(r: TrialRecord) -> None:
        if prog.finished == last[0]:
            return  # a repeat or a failure: no new architecture finished
        last[0] = prog.finished
        values = {f"trial/{n}": v for n, v in zip(loop.objectives, r.values or ()) if r.trained}
        values.update({"search/hypervolume": prog.hypervolume(), "search/front_size": len(prog.front()),
                       "search/pruned": prog.pruned, "search/failed": prog.failed})
        values.update({f"search/best_{n}": prog.best(n) for n in loop.objectives if prog.best(n) is not None})
        trackers.log(values, prog.finished)

    loop.on_told = on_told
    return trackers


class _QuietFileHandler(logging.FileHandler):
    def handleError(self, record: logging.LogRecord) -> None:
        """A full or read-only disk stops the run's log quietly (the run itself reports that)."""


def _log_to_file(path: Path) -> None:
    root = logging.getLogger("wfsearch")
    if any(isinstance(h, logging.FileHandler) and h.baseFilename == str(path.resolve()) for h in root.handlers):
        return
    handler = _QuietFileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
