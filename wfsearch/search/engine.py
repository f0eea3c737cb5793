"""`run_search`: a multi-objective search on Ray Tune, every trial stored in an Optuna study.

Optuna samples through Ray's `OptunaSearch` (define-by-run over the spec), Ray runs one proxy
evaluation per trial on a CPU/GPU slot, the Pareto-aware successive-halving scheduler stops
trials that fall behind at a rung, and the study in RDB storage holds states, values and every
attribute needed to rebuild and export a trial. Re-running continues the same study.
"""
from __future__ import annotations

import logging
import math
import os
import platform
import time
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import optuna
import warnings
from optuna.trial import TrialState

import wfsearch
from wfsearch.errors import UserError
from wfsearch.gpu import gpu_count, gpu_info
from wfsearch.study.verdict import verdict_line, verdict_passed
from wfsearch.study import (Status, TrialRecord, archive_study, as_dicts, cached_result,
                            fail_stale_trials, known_results, open_storage,
                            pareto_front, read_records, references_study_name, safe_url, sqlite_path, study_dir)
from wfsearch.study.connect import engine_options
from wfsearch.study.lease import StudyBusy, StudyLease, study_lease
from wfsearch.study.naming import default_storage_url
from wfsearch.study.hypervolume import BOX_ATTR, stored_box
from wfsearch.study.record import outcome_attrs

from .budget import DistinctBudget
from .sampler import NATIVE_CONSTRAINTS, SpaceFunction, make_sampler, objective_names  # noqa: F401 (re-exported)

from .progress import ProgressPrinter, SearchProgress
from .searcher import StorageFailureStopper, StudySearcher
from .stop import Interrupted, StopOnSignal, signal_stopper
from .trainable import run_trial

log = logging.getLogger(__name__)

MAX_ROUNDS = 5  # Tuner rounds to top up the budget after failed or infeasible trials


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


# --------------------------------------------------------------------------- study helpers
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


def search_records(study: optuna.Study, states: tuple = (TrialState.COMPLETE,),
                   after_number: int | None = None) -> list[TrialRecord]:
    return [r for r in read_records(study, states, after_number) if r.is_search]


Records = Union[optuna.Study, list[TrialRecord]]  # a study (read here) or its search records, read once


def _records(source: Records, states: tuple) -> list[TrialRecord]:
    if isinstance(source, optuna.Study):
        return search_records(source, states)
    return [r for r in source if r.state in states]


def pareto_candidates(source: Records) -> list[TrialRecord]:
    """The trained trials, one per architecture (a repeat that reused an earlier result is not a second point)."""
    out, seen = [], set()
    for r in _records(source, (TrialState.COMPLETE,)):
        if r.trained and (r.arch_hash is None or r.arch_hash not in seen):
            out.append(r)
            seen.add(r.arch_hash)
    return out


def trial_identity(r: TrialRecord) -> str:
    """The architecture a trial evaluated (its hash; the sampled knobs of one that does not build)."""
    return DistinctBudget.identity(r.arch_hash, r.params)


def distinct_budget(spec: Any, source: Records) -> DistinctBudget:
    """The budget of ``spec.study.trials`` distinct architectures, with those the study has finished."""
    size = spec.size
    budget = DistinctBudget(total=spec.study.trials,
                            space_size=None if size.continuous or size.combinations is None else size.combinations)
    for r in _records(source, (TrialState.COMPLETE, TrialState.PRUNED)):
        budget.add(trial_identity(r))
    return budget


def hardware_info() -> dict[str, Any]:
    info = {"hostname": platform.node(), "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), **gpu_info()}
    try:
        import ray
        info["ray"] = ray.__version__
    except ImportError:  # pragma: no cover
        pass
    return info


# --------------------------------------------------------------------------- the run
def quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


# what may change between runs of one study: it cannot change a trial's result
RESUMABLE_CHANGES = (("study", "trials"), ("study", "storage"), ("resources",))


def spec_change(stored: Any, spec: Any) -> str | None:
    """The first key path where ``spec`` differs from the ``stored`` spec of a study in what decides
    results (``"proxy.dataset.num_classes: 4 -> 8"``), or None. Both sides are read by this version
    (the stored one rebuilt with today's defaults), so a key added since is no change."""
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
            if k not in a or k not in b:
                shown = ".".join(map(str, (*path, k)))
                return f"{shown}: {_short(a.get(k, '(absent)'))} -> {_short(b.get(k, '(absent)'))}"
            diff = _first_difference(a[k], b[k], (*path, k))
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
    """Open (or create) the study with its objectives and attributes, holding its run lease (a second run
    on the study is refused); with ``fresh``, archive the old one. Release the lease when the run ends."""
    quiet_optuna()
    storage = open_storage(storage_url(spec))
    names, directions = objective_names(spec)
    n_constraints = len(as_dicts(spec.study.constraints)) + 1  # the spec's constraints, then "buildable"
    existing = {s.study_name for s in storage.get_all_studies()}  # names only: summaries read every trial
    archived = None
    if fresh and spec.study.name in existing:
        with study_lease(optuna.load_study(study_name=spec.study.name, storage=storage)):  # not while a run holds it
            archived = archive_study(storage, spec.study.name)
        existing.discard(spec.study.name)
    sampler = make_sampler(spec, n_constraints)
    study = optuna.create_study(study_name=spec.study.name, storage=storage, sampler=sampler,
                                directions=directions, load_if_exists=True)
    lease = study_lease(study)
    lease.acquire()
    try:
        _prepare_attrs(spec, study, existing, names, directions)
        fail_stale_trials(study)  # safe: no other live run holds the study
    except BaseException:
        lease.release()
        raise
    return study, storage, archived, lease


def _prepare_attrs(spec: Any, study: optuna.Study, existing: set[str], names: list[str], directions: list[str]) -> None:
    if spec.study.name in existing:
        old = [o["name"] for o in study.user_attrs.get("objectives", [])]
        if old and old != names:
            raise UserError(f"study {spec.study.name!r} in {safe_url(storage_url(spec))}: it was run with objectives {old}, "
                            f"the spec now says {names}; use --fresh to start a new study (the old one is kept)")
        if study.user_attrs.get("spec_hash") not in (None, spec.hash):
            change = spec_change(study.user_attrs.get("spec"), spec)
            if change:
                raise UserError(f"{getattr(spec, 'path', None) or 'spec'}: {change}: the spec changed since study "
                                f"{spec.study.name!r} started, and trials of both would share one front; keep the "
                                "spec, or start a new study with --fresh (the old one is kept as <name>-<timestamp>) "
                                "or another study.name (only study.trials, study.storage and resources may change)")
    study.set_metric_names(names)
    stored_spec = spec.to_dict()
    if stored_spec.get("study", {}).get("storage"):  # the study's own record never holds a password
        stored_spec["study"]["storage"] = safe_url(stored_spec["study"]["storage"])
    study.set_user_attr("spec", stored_spec)
    study.set_user_attr("spec_hash", spec.hash)
    study.set_user_attr("spec_path", str(getattr(spec, "path", "") or ""))
    study.set_user_attr("wfsearch_version", wfsearch.__version__)
    study.set_user_attr("hardware", hardware_info())
    study.set_user_attr("objectives", [{"name": n, "direction": d} for n, d in zip(names, directions)])


def preflight_data(spec: Any, cache_dir: str) -> None:
    """Load a real dataset once on the driver: a missing folder is one clear line before Ray starts,
    and the decoded tensors land in the study's cache for every worker."""
    if spec.proxy.dataset.name in ("synthetic", "digits"):
        return
    from wfsearch.proxy.data import load_dataset

    load_dataset(spec.proxy, cache_dir, origin=str(spec.path))


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast with one line when HOST:PORT does not answer (Ray itself retries for minutes)."""
    import socket

    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address!r}: use auto or HOST:PORT (the head's GCS port, 6379 by default)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise UserError(f"--address {address}: no Ray head answers there ({e.strerror or e}); "
                        "start one with `ray start --head`") from None


def init_ray(address: str | None, log_dir: Path) -> None:
    import ray

    # the study is the record: Tune's own result files and their "not found" warnings are not needed
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    # Tune's own copy of its state under the study folder (never read back: the study is the search state);
    # a full disk is reported once, by the study
    for name in ("ray.train._internal.syncer", "ray.tune.execution.experiment_state"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    if ray.is_initialized():
        return
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=True,
                                  logging_level=logging.WARNING)
    if address:
        _check_reachable(address)
        if address.split(":")[0] in ("127.0.0.1", "localhost"):
            kwargs["_node_ip_address"] = "127.0.0.1"  # a head started with --node-ip-address=127.0.0.1
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UserError(f"--address {address}: cannot join the Ray cluster ({str(e).splitlines()[0]}); "
                            "start one with `ray start --head`") from e
    else:
        # a local cluster on loopback: Ray's notice that it turned token authentication on is noise here
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        keep_on_loopback()
        # address="local": always a new cluster of this run's own, even where `ray start` left one running
        # on this machine (Ray would otherwise join that one; --address is how to join a cluster)
        ray.init(address="local", num_cpus=os.cpu_count(), num_gpus=gpu_count(),
                 _node_ip_address="127.0.0.1", **kwargs)


def keep_on_loopback() -> None:
    """Make every process of a local Ray cluster (GCS, raylet, runtime-env agent, driver and workers) listen
    on 127.0.0.1 only.

    `ray.init(_node_ip_address="127.0.0.1")` alone is not enough: Ray turns a loopback node address into
    the machine's routable one, and its gRPC servers listen on all interfaces unless the node address is
    loopback. Ray keeps the node on loopback when multi-node clustering is off (its switch is named for
    Windows and macOS, where that is the default); a local run never needs other nodes, so it is turned
    off here, for the driver and, through the environment, for every process Ray starts.
    """
    import ray._private.ray_constants as ray_constants

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        ray_constants.ENABLE_RAY_CLUSTER = False


def _concurrency(spec: Any) -> int:
    import ray

    res = ray.cluster_resources()
    cpus = spec.resources.cpus_per_trial
    gpus = spec.resources.gpus_per_trial
    fit = int(res.get("CPU", 1) // cpus) if cpus else 1_000_000
    if gpus:
        fit = min(fit, int(res.get("GPU", 0) // gpus))
    if fit < 1:
        raise UserError(f"resources: a trial needs {cpus} CPU and {gpus} GPU but the Ray cluster has "
                        f"{res.get('CPU', 0)} CPU and {res.get('GPU', 0)} GPU; lower resources.cpus_per_trial/gpus_per_trial")
    if spec.resources.max_concurrent:
        fit = min(fit, spec.resources.max_concurrent)
    return max(1, fit)


def evaluate_references(spec: Any, storage: optuna.storages.RDBStorage, settings: dict) -> list[optuna.trial.FrozenTrial]:
    """Evaluate the spec's references once per study (Ray tasks), stored in ``<name>:references``."""
    import ray

    names, directions = objective_names(spec)
    ref_study = optuna.create_study(study_name=references_study_name(spec.study.name), storage=storage,
                                    directions=directions, load_if_exists=True)
    ref_study.set_metric_names(names)
    done = {r.name for r in read_records(ref_study, (TrialState.COMPLETE,))}
    todo = [r for r in spec.reference_archs() if r.name not in done]
    if todo:
        remote = ray.remote(num_cpus=spec.resources.cpus_per_trial, num_gpus=spec.resources.gpus_per_trial,
                            max_retries=2)(_evaluate_reference)
        futures = [(r, remote.remote(_reference_target(spec, r), settings)) for r in todo]
        for ref, fut in futures:
            result = ray.get(fut)
            status = Status.of(result.get("status"))
            attrs = {**outcome_attrs(result, status, result.get("status_reason") or status.value, kind="reference"),
                     "reference_name": ref.name}
            if status is Status.OK:
                values = [float(result["metrics"][m]) for m in names]
                ref_study.add_trial(optuna.trial.create_trial(values=values, user_attrs=attrs))
            else:
                log.warning("reference %s: %s", ref.name, result.get("status_reason"))
                ref_study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs=attrs))
    return read_records(ref_study, (TrialState.COMPLETE,))


def _reference_target(spec: Any, ref: Any) -> dict:
    return {"arch": ref.arch.to_dict()} if ref.arch is not None else {"timm_model": ref.model}


def _evaluate_reference(target: dict, settings: dict) -> dict:
    """A Ray task: evaluate one reference (``{"arch": dict}`` or ``{"timm_model": name}``)."""
    if settings.get("noop"):
        metrics = {m: 1.0 for m in settings["objectives"]}
        return {**target, "status": "ok", "status_reason": "ok", "metrics": metrics}
    from wfsearch.models import ArchConfig
    from wfsearch.proxy.evaluate import evaluate_arch

    what = ArchConfig.from_dict(target["arch"]) if target.get("arch") else target["timm_model"]
    res = evaluate_arch(what, settings["proxy"], settings["throughput"], cache_dir=settings.get("cache_dir"),
                        reference_img_s=settings.get("reference_img_s"), seed_noise=settings.get("seed_noise"))
    return {**target, "arch_hash": what.hash if target.get("arch") else None, "status": res.status,
            "status_reason": res.reason, "metrics": res.metrics, "costs": res.costs, "curve": res.curve,
            "proxy": settings["proxy"]}


SCALE_ATTR = "throughput_scale"


def throughput_scale(spec: Any, study: optuna.Study, settings: dict) -> float | None:
    """The study's pooled median reference images/s: the scale of the paired speed objective.

    Every trial's stored ``throughput`` is its per-repeat ratio to the reference model (measured
    alongside it) times this one number, fixed for the whole study: measured once, before the
    first trial, as a trial would (a Ray task with a trial's resources, the spec's throughput
    setting), the reference timed against itself, all repeats of both copies pooled; stored in the
    study attribute ``throughput_scale`` and reused when the study is continued. None (objective =
    raw images/s) without a reference model.
    """
    reference = spec.throughput.reference
    if not reference or settings.get("noop"):
        return None
    known = study.user_attrs.get(SCALE_ATTR) or {}
    if known.get("reference") == reference and known.get("img_s"):
        return float(known["img_s"])
    import ray

    remote = ray.remote(num_cpus=spec.resources.cpus_per_trial, num_gpus=spec.resources.gpus_per_trial,
                        max_retries=2)(_measure_reference)
    costs = ray.get(remote.remote(reference, settings))
    samples = [*costs.get("throughput_samples", []), *costs.get("reference_samples", [])]
    if not samples:
        return None
    import statistics

    scale = {"reference": reference, "img_s": statistics.median(samples), "samples": len(samples),
             "device": costs.get("device"), "clock": costs.get("clock"),
             "how": "median images/s of the reference model over every repeat of one measurement of it against "
                    "itself, in a trial's setting; throughput = per-repeat ratio to the reference x img_s"}
    study.set_user_attr(SCALE_ATTR, scale)
    log.info("speed objective: ratio to %s x %.2f img/s (%d repeats pooled)", reference, scale["img_s"], len(samples))
    return float(scale["img_s"])


def _measure_reference(reference: str, settings: dict) -> dict:
    """A Ray task: the reference model measured against itself in the spec's throughput setting."""
    from wfsearch.proxy.measure import measure_arch

    return measure_arch(reference, {**settings["throughput"], "highres": None}, cache=settings.get("cache_dir"),
                        memory=False)


def run_search(spec: Any, *, address: str | None = None, fresh: bool = False, progress: bool = True,
               noop: bool = False, time_budget_s: float | None = None, stream: Any = None,
               enqueue: list[dict] | None = None) -> RunSummary:
    """Run (or continue) the study of ``spec`` until ``spec.study.trials`` trials have finished.

    A run that fails before its study holds any trial leaves nothing behind (no study, no folder);
    a storage failure (disk full, read-only, damaged file) is one `UserError` line.
    """
    sdir = study_dir_for(spec)
    new_folder = not sdir.exists()
    try:
        return _run_search(spec, address=address, fresh=fresh, progress=progress, noop=noop,
                           time_budget_s=time_budget_s, stream=stream, enqueue=enqueue)
    except BaseException as e:
        if not isinstance(e, StudyBusy):  # never touch a study that another run holds
            _remove_if_empty(spec, sdir, new_folder)
        if isinstance(e, UserError):
            raise
        err = _storage_error(spec, e)
        if err is not None:
            raise err from None
        raise


def _storage_error(spec: Any, e: BaseException) -> UserError | None:
    """One line for a storage failure anywhere in ``e``'s chain (Ray may wrap it), else None."""
    from wfsearch.study.sqlite import storage_error

    path = sqlite_path(storage_url(spec))
    shown = str(path) if path is not None else "the study storage"
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (OSError, *_db_errors())):
            err = storage_error(shown, e)
            if err is not None:
                return err
        e = e.__cause__ or e.__context__
    return None


def _db_errors() -> tuple[type, ...]:
    import sqlite3

    import sqlalchemy.exc

    return (sqlite3.Error, sqlalchemy.exc.DBAPIError)


def _remove_if_empty(spec: Any, sdir: Path, new_folder: bool) -> None:
    """After a failed run: drop a study that holds no trial yet, and its folder if this run made it."""
    try:
        storage = optuna.storages.RDBStorage(storage_url(spec), skip_table_creation=True,
                                             engine_kwargs=engine_options(storage_url(spec))) \
            if sqlite_path(storage_url(spec)) is None or sqlite_path(storage_url(spec)).exists() else None
        if storage is not None:
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


def _run_search(spec: Any, *, address: str | None, fresh: bool, progress: bool, noop: bool,
                time_budget_s: float | None, stream: Any, enqueue: list[dict] | None = None) -> RunSummary:
    t0 = time.monotonic()
    study, storage, archived, lease = prepare_study(spec, fresh)
    for params in enqueue or ():  # known designs first, as Optuna's enqueue_trial does (once per study)
        study.enqueue_trial(params, skip_if_exists=True)

    def mark_interrupted(signum: int) -> int:
        return fail_stale_trials(study, reason=f"interrupted: the run was stopped ({Interrupted(signum).signal_name}) "
                                               "while this trial ran; `wfsearch run` again resumes the study")

    stop = StopOnSignal(on_hard_stop=mark_interrupted)
    stop.install()
    try:
        return _search(spec, study, storage, archived, stop, t0, address=address, progress=progress, noop=noop,
                       time_budget_s=time_budget_s, stream=stream)
    except Interrupted as e:
        e.marked = mark_interrupted(e.signum)
        _shutdown_ray()  # now, from Python: left to interpreter exit it takes many seconds
        raise e from None
    finally:
        stop.restore()
        lease.release()


def _search(spec: Any, study: optuna.Study, storage: optuna.storages.RDBStorage, archived: str | None,
            stop: StopOnSignal, t0: float, *, address: str | None, progress: bool, noop: bool,
            time_budget_s: float | None, stream: Any) -> RunSummary:
    """The search itself, on a prepared study (SIGINT/SIGTERM raise `Interrupted`), with a live line."""
    sdir = study_dir_for(spec)
    sdir.mkdir(parents=True, exist_ok=True)
    _log_to_file(sdir / "run.log")
    log.info("run started: study %s (%s), %d trials, sampler %s, wfsearch %s (pid %d)", spec.study.name,
             getattr(spec, "path", None) or "?", spec.study.trials,
             spec.study.sampler, wfsearch.__version__, os.getpid())
    names, directions = objective_names(spec)
    constraints = as_dicts(spec.study.constraints)
    max_epochs = spec.proxy.max_epochs
    settings = {"proxy": spec.proxy.model_dump(mode="json"), "throughput": spec.throughput.model_dump(mode="json"),
                "constraints": constraints, "objectives": names, "noop": noop,
                "cache_dir": str((sdir / "cache").resolve()), "storage": absolute_url(storage_url(spec)),
                "max_epochs": max_epochs}
    prog = SearchProgress(total=spec.study.trials, objectives=names, directions=directions,
                          chance=1.0 / spec.proxy.dataset.num_classes if spec.proxy.dataset.num_classes else None,
                          hv_box=stored_box(study.user_attrs, names))
    printer = ProgressPrinter(prog, stream=stream, enabled=progress)
    if progress and verdict_passed(study.user_attrs, settings["proxy"]) is not True:
        print(verdict_line(study.user_attrs, settings["proxy"]), file=stream or sys.stdout, flush=True)
    printer.set_phase("checking the data")
    printer.start()
    try:
        return _search_phases(spec, study, storage, archived, stop, t0, sdir, names, directions, settings, prog,
                              printer, address=address, time_budget_s=time_budget_s)
    finally:
        printer.stop()


def _search_phases(spec: Any, study: optuna.Study, storage: optuna.storages.RDBStorage, archived: str | None,
                   stop: StopOnSignal, t0: float, sdir: Path, names: list[str], directions: list[str],
                   settings: dict, prog: SearchProgress, printer: ProgressPrinter, *, address: str | None,
                   time_budget_s: float | None) -> RunSummary:
    from ray import tune
    from ray.tune.stopper import CombinedStopper

    max_epochs = spec.proxy.max_epochs
    constraints = settings["constraints"]
    preflight_data(spec, settings["cache_dir"])
    printer.set_phase("starting Ray")
    init_ray(address, sdir)
    stop.install()  # ray.init sets its own SIGTERM handler
    if spec.throughput.reference and not settings.get("noop"):
        printer.set_phase(f"measuring the reference {spec.throughput.reference} (the speed scale)")
    settings["reference_img_s"] = prog.reference_img_s = throughput_scale(spec, study, settings)
    settings["seed_noise"] = study.user_attrs.get("seed_noise")
    if spec.references:
        printer.set_phase(f"evaluating {len(spec.references)} reference(s)")
    references = evaluate_references(spec, storage, settings) if spec.references else []
    printer.set_phase("reading the study")

    finished_states = (TrialState.COMPLETE, TrialState.PRUNED)
    ended = (*finished_states, TrialState.FAIL)  # states a trial never leaves
    read_first = search_records(study, ended)  # read once: a study may hold many thousands of trials
    records = _records(read_first, finished_states)
    budget = distinct_budget(spec, records)
    prog.finished = budget.count
    for r in pareto_candidates(records):
        prog.add_point(r.values, r.arch_hash)
    box_stored = prog.hv_box is not None and study.user_attrs.get(BOX_ATTR) == prog.hv_box.to_dict()

    def store_box() -> None:
        """The study's hypervolume box, stored once it is fixed (readers then use the same one)."""
        nonlocal box_stored
        if not box_stored and prog.hv_box is not None:
            study.set_user_attr(BOX_ATTR, prog.hv_box.to_dict())
            box_stored = True

    store_box()
    printer.set_phase("searching")
    known = known_results(records, max_epochs)
    inflight: dict[str, int] = {}

    def on_told(frozen: optuna.trial.FrozenTrial) -> None:
        r = TrialRecord.from_trial(frozen)
        h = r.arch_hash
        log.info("trial %d %s: %s%s", r.number, r.state.name.lower(), r.reason,
                 "".join(f", {n} {v:.4g}" for n, v in zip(names, r.values or ())))
        if h and inflight.get(h) == r.trial_id:
            del inflight[h]
        if r.state not in finished_states:
            prog.failed += 1
            return
        if not budget.add(trial_identity(r)):
            prog.repeats += 1  # a re-sample: known result, no budget, not a second point on the front
            return
        prog.finished = budget.count
        if r.state == TrialState.PRUNED:
            prog.pruned += 1
        elif r.trained:
            prog.add_point(r.values, h)
            store_box()
        if h and h not in known and (r.state == TrialState.PRUNED or r.trained):
            known[h] = cached_result(r, max_epochs)

    concurrency = _concurrency(spec)
    prog.concurrency = concurrency
    trainable = tune.with_resources(tune.with_parameters(run_trial, settings=settings),
                                    {"cpu": spec.resources.cpus_per_trial, "gpu": spec.resources.gpus_per_trial})
    t_search = time.monotonic()  # the time budget counts search, not Ray's start-up or the references
    for round_ in range(MAX_ROUNDS):
        stop.check()
        remaining = budget.total - budget.count
        if remaining <= 0 or budget.stop_reason:
            break
        if time_budget_s is not None and time.monotonic() - t_search >= time_budget_s:
            break
        searcher = StudySearcher(SpaceFunction(spec, constraints, known, inflight), names, directions, max_epochs,
                                 on_told=on_told, sampler=study.sampler, study_name=spec.study.name,
                                 storage=storage, budget=budget)
        scheduler = None
        if spec.study.scheduler.type == "mo_asha" and len(spec.proxy.epochs) > 1:
            from .scheduler import ParetoSuccessiveHalving
            scheduler = ParetoSuccessiveHalving(spec.proxy.epochs, names, directions,
                                                spec.study.scheduler.reduction_factor,
                                                trial_number=searcher.trial_number)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=4 * remaining + 16,
                                        max_concurrent_trials=concurrency, reuse_actors=True,
                                        trial_dirname_creator=_trial_dirname,
                                        time_budget_s=None if time_budget_s is None
                                        else max(1.0, time_budget_s - (time.monotonic() - t_search))),
            run_config=tune.RunConfig(name=f"round-{int(time.time())}-{round_}",
                                      storage_path=str((sdir / "ray").resolve()), verbose=0,
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
        # trials sampled in this round but never run stay RUNNING in Optuna: end them, so no later trial
        # waits on one (a re-sampled architecture waits only for a trial that is really training)
        fail_stale_trials(study, reason="interrupted: not run, its round ended first")
        inflight.clear()
        if budget.count == before and not budget.stop_reason:
            log.warning("a round of %d trial(s) finished none; stopping (see %s)", remaining, sdir / "run.log")
            break
    prog.running = 0
    printer.set_phase("finishing")
    study = optuna.load_study(study_name=spec.study.name, storage=storage)
    # the trials read at the start have ended and cannot change: read only the newer ones
    last = max((r.number for r in read_first), default=None)
    records = list({r.number: r for r in [*read_first, *search_records(study, ended, after_number=last)]}.values())
    front = pareto_front(_records(records, (TrialState.COMPLETE,)), directions)
    box = prog.hv_box  # the study's fixed box: the live line's
    hv = box.hypervolume([t.values for t in front]) if box is not None and front else 0.0
    printer.set_phase("done")
    printer.emit(final=True)
    log.info("run ended: %d distinct architectures finished, front %s, hypervolume %.3f, %.0f s",
             distinct_budget(spec, records).count, [t.number for t in front], hv, time.monotonic() - t0)
    if budget.stop_reason:
        log.info("%s", budget.stop_reason)
    return RunSummary(study_name=spec.study.name, storage=safe_url(storage_url(spec)), study_dir=sdir,
                      finished=distinct_budget(spec, records).count, repeats=prog.repeats, stopped=budget.stop_reason,
                      pruned=len(_records(records, (TrialState.PRUNED,))),
                      failed=len(_records(records, (TrialState.FAIL,))), front=front, references=references,
                      hypervolume=hv, archived_as=archived, seconds=time.monotonic() - t0)


def _shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        try:
            ray.shutdown()
        except Exception as e:  # stopping anyway
            log.warning("ray.shutdown: %s", e)


def _trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


class _QuietFileHandler(logging.FileHandler):
    """The run's log file; a full or read-only disk stops it quietly (the run itself reports that)."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


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
