"""Replay a search against a tabulated design space, in simulated time.

    study, summary = simulate(spec, load_table("benchmarks/tables/predictors"), workers=2)

The spec's sampler (`make_sampler`, seeded by ``study.seed``) samples through the same define-by-run
function the real search uses (`SpaceFunction`: `sample_arch`, constraints, repeats answered from the
known result), and the spec's scheduler decides at each rung with the same code as the Ray scheduler
(`ParetoRungs`). Instead of training, a trial takes one training seed's curve from the table (drawn at
random per trial, seeded) and advances a simulated clock by the curve's recorded epoch times (plus
the architecture's measurement time the first time it is trained), on ``workers`` parallel slots.
Trials are written as the real search writes them (states, values, ``arch``, ``arch_hash``, ``costs``,
``metrics``, ``curve``, ``status_reason``, ``constraints``, ``kind``), with ``simulated`` holding the
table seed and the simulated start and end, and their start/complete datetimes set on the simulated
clock, so `wfsearch show` and `wfsearch report` read the study like any other.

As in a real run, a re-sampled architecture is told the result it already has (completed, or pruned
at the rung where it stopped) without training, a trial that samples an architecture being trained
waits for it and reuses its result (or trains it itself when that one stops early), and the search
stops asking once the sampler has proposed `MAX_REPEATS_IN_A_ROW` known architectures in a row.
Trials are asked only when a slot is free (as Ray does).

Speed: everything stays in memory (an in-memory Optuna study; `save_study` writes it to SQLite once,
in one transaction), nothing imports Ray, and what follows from an architecture alone (hash, costs)
is computed once per architecture; the sampler's own cost per trial (Optuna's TPE, NSGA-II and GP
read every earlier trial) is what is left.
"""
from __future__ import annotations

import datetime
import heapq
import math
import random
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import optuna
from optuna.trial import TrialState

from wfsearch.errors import UserError

from .budget import MAX_REPEATS_IN_A_ROW
from .rungs import ParetoRungs
from .sampler import SpaceFunction, make_sampler, objective_names
from .table import Table

# trials in a row that took no time (repeats, infeasible): the space is exhausted, as `wfsearch run` decides
MAX_INSTANT_TRIALS = MAX_REPEATS_IN_A_ROW
COST_KEYS = {"params": "params", "macs": "macs", "memory": "peak_memory_bytes", "throughput": "throughput",
             "throughput_ratio": "throughput_ratio", "reference_throughput": "reference_throughput"}


@dataclass
class SimSummary:
    trials: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    distinct: int = 0  # architectures trained (to the end or to a rung)
    simulated_seconds: float = 0.0
    seconds: float = 0.0
    stopped_because: str = ""
    # (simulated end time, trial number, values) of every COMPLETE trained trial, in order of completion
    completions: list[tuple[float, int, list[float]]] = field(default_factory=list)


@dataclass
class _Job:
    trial: Any  # optuna.Trial
    arch: dict
    arch_hash: str
    seed: int | None
    start: float
    waits_for: int | None = None  # trial number this one waits for


def _worst(metric: str, direction: str, metrics: dict[str, float]) -> float:
    if direction == "maximize":
        return 0.0
    v = metrics.get(metric)
    return float(v) if v is not None and math.isfinite(v) else 1e30


def simulate(spec: Any, table: Table, *, workers: int | None = None, seed: int | None = None,
             max_trials: int | None = None, time_budget_s: float | None = None, sampler: Any = None,
             on_complete: Callable[[float, optuna.trial.FrozenTrial], None] | None = None,
             stop: Callable[[], bool] | None = None) -> tuple[optuna.Study, SimSummary]:
    """Run ``spec``'s search against ``table``; the in-memory study and a summary.

    ``max_trials`` defaults to ``spec.study.trials``; ``time_budget_s`` stops asking for new trials
    once the simulated clock passes it (running ones finish). ``seed`` (default ``study.seed``) seeds
    the sampler and the draw of table seeds. ``workers`` defaults to ``resources.max_concurrent`` or
    the number of workers the table was made with. ``on_complete(t, frozen)`` is called for every
    trained trial that completes; once ``stop()`` returns True no new trial is asked (the search ends
    with what is running: for a caller whose measure cannot change any more).
    """
    from wfsearch.study import as_dicts

    t_wall = time.perf_counter()
    seed = spec.study.seed if seed is None else seed
    spec = spec.model_copy(update={"study": spec.study.model_copy(update={"seed": seed})})
    names, directions = objective_names(spec)
    constraints = as_dicts(spec.study.constraints)
    workers = int(workers or spec.resources.max_concurrent or table.meta.get("machine", {}).get("workers") or 2)
    max_trials = spec.study.trials if max_trials is None else max_trials
    rungs = list(spec.proxy.epochs)
    max_epochs = rungs[-1]
    table_epochs = max((len(c) for per in table.runs.values() for c in per.values()), default=0)
    if table_epochs < max_epochs:
        raise UserError(f"{spec.path}: proxy.epochs: {rungs}: the table {table.path} has curves of "
                        f"{table_epochs} epoch(s); use rungs within them")
    decider = None
    if spec.study.scheduler.type == "mo_asha" and len(rungs) > 1:
        decider = ParetoRungs(rungs, names, directions, spec.study.scheduler.reduction_factor)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = sampler or make_sampler(spec, len(constraints) + 1)
    study = optuna.create_study(directions=directions, sampler=sampler, study_name=spec.study.name)
    _set_metric_names(study, names)
    known: dict[str, dict] = {}
    inflight: dict[str, int] = {}
    space_fn = SpaceFunction(spec, constraints, known, inflight)
    rng = random.Random(seed)
    measured: set[str] = set()
    proxy_attr = spec.proxy.model_dump(mode="json")
    seeds_of = {h: sorted(per) for h, per in table.runs.items()}
    summary = SimSummary()
    events: list[tuple[float, int, int, int]] = []  # (time, order, trial number, epoch index)
    jobs: dict[int, _Job] = {}
    waiting: dict[int, list[_Job]] = {}  # trial number trained -> jobs waiting for it
    by_id: dict[int, int] = {}  # optuna trial id -> number
    timing: dict[int, tuple[float, float]] = {}
    order = 0
    clock = 0.0
    instant = 0
    missing = 0

    def tell(job: _Job, state: TrialState, values: list[float] | None, attrs: dict, end: float) -> None:
        for k, v in attrs.items():
            job.trial.set_user_attr(k, v)
        job.trial.set_user_attr("kind", "search")
        job.trial.set_user_attr("simulated", {"table": str(table.path), "seed": job.seed, "start_s": job.start,
                                              "end_s": end})
        frozen = study.tell(job.trial, values, state=state)
        timing[frozen.number] = (job.start, end)
        summary.trials += 1
        if state == TrialState.COMPLETE:
            summary.complete += 1
        elif state == TrialState.PRUNED:
            summary.pruned += 1
        else:
            summary.failed += 1
        if inflight.get(job.arch_hash) == job.trial._trial_id:
            del inflight[job.arch_hash]
        if state == TrialState.COMPLETE and job.seed is not None:
            summary.completions.append((end, frozen.number, list(values)))
            if on_complete is not None:
                on_complete(end, frozen)

    def result_attrs(job: _Job, epoch: int) -> tuple[dict, dict]:
        m = table.metrics_at(job.arch_hash, job.seed, epoch)
        costs = {COST_KEYS[k]: v for k, v in table.archs[job.arch_hash].metrics.items() if k in COST_KEYS}
        curve = [{"epoch": e.epoch, "accuracy": e.accuracy, "loss": e.loss}
                 for e in table.runs[job.arch_hash][job.seed] if e.epoch <= epoch]
        return m, {"arch": job.arch, "arch_hash": job.arch_hash, "costs": costs, "metrics": m, "curve": curve,
                   "proxy": proxy_attr}

    def start_training(job: _Job, now: float) -> None:
        nonlocal order
        job.seed = rng.choice(seeds_of[job.arch_hash])
        job.start = now
        inflight[job.arch_hash] = job.trial._trial_id
        t = now + (table.archs[job.arch_hash].measure_seconds if job.arch_hash not in measured else 0.0)
        measured.add(job.arch_hash)
        curve = table.runs[job.arch_hash][job.seed]
        if not curve:  # the table's run failed before its first epoch
            jobs[job.trial.number] = job
            order += 1
            heapq.heappush(events, (t, order, job.trial.number, -1))
            return
        for i, e in enumerate(curve):
            if e.epoch > max_epochs:
                break
            t += e.seconds
            if e.epoch in rungs:
                order += 1
                heapq.heappush(events, (t, order, job.trial.number, i))
        jobs[job.trial.number] = job

    def finish_waiters(number: int, now: float, state: TrialState, values: list[float] | None,
                       attrs: dict) -> None:
        for w in waiting.pop(number, []):
            if state == TrialState.COMPLETE:
                del jobs[w.trial.number]  # frees its slot
                reused = {**attrs, "status_reason": f"ok (same architecture as trial {number}, not trained again)"}
                tell(w, TrialState.COMPLETE, values, reused, now)
            else:  # the one it waited for stopped early: this trial trains the architecture itself
                start_training(w, now)

    def ask_one(now: float) -> bool:
        """Ask and start one trial; True when it finished at once (no simulated time spent)."""
        nonlocal missing
        trial = study.ask()
        by_id[trial._trial_id] = trial.number
        cfg = space_fn(trial)
        h = cfg.get("arch_hash")
        job = _Job(trial, cfg.get("arch"), h, None, now)
        if cfg.get("infeasible"):
            metrics = cfg.get("cost_metrics") or {}
            values = [_worst(m, d, metrics) for m, d in zip(names, directions)]
            tell(job, TrialState.COMPLETE, values, {"status_reason": cfg["infeasible"], "arch": cfg.get("arch"),
                                                    "arch_hash": h, "metrics": metrics}, now)
            return True
        if h not in table.archs or h not in table.runs:
            missing += 1
            tell(job, TrialState.FAIL, None, {"arch": cfg.get("arch"), "arch_hash": h,
                                              "status_reason": f"error: architecture {h} is not in the table"}, now)
            if missing >= 20 and summary.trials == missing:
                raise UserError(f"{table.path}: --table: none of the first {missing} sampled architectures is in "
                                f"the table; simulate the spec the table was made from "
                                f"({table.meta.get('spec', 'see its table.json')})")
            return True
        if "cached_result" in cfg:  # a re-sample: told the result it has (completed or pruned), not trained
            r = cfg["cached_result"]
            attrs = {k: r[k] for k in ("metrics", "costs", "curve") if r.get(k)} | {
                "arch": cfg["arch"], "arch_hash": h, "status_reason": r["status_reason"]}
            if r.get("status") == "pruned":
                tell(job, TrialState.PRUNED, None, attrs, now)
            else:
                tell(job, TrialState.COMPLETE, [float(r["metrics"][m]) for m in names], attrs, now)
            return True
        if "wait_for_trial_id" in cfg:
            other = by_id[cfg["wait_for_trial_id"]]
            job.waits_for = other
            waiting.setdefault(other, []).append(job)
            jobs[trial.number] = job
            return False
        start_training(job, now)
        return False

    def running() -> int:
        return len(jobs)

    stopped = False
    while True:
        while (running() < workers and summary.trials + running() < max_trials
               and (time_budget_s is None or clock < time_budget_s) and instant < MAX_INSTANT_TRIALS):
            if stop is not None and stop():
                stopped = True
                break
            if ask_one(clock):
                instant += 1
            else:
                instant = 0
        if not events:
            break
        t, _, number, idx = heapq.heappop(events)
        job = jobs.get(number)
        if job is None:  # an epoch of a trial stopped at an earlier rung
            continue
        clock = t
        if idx < 0:  # the table's run failed before its first epoch
            del jobs[number]
            reason = f"{table.status[job.arch_hash][job.seed]} (table seed {job.seed})"
            tell(job, TrialState.FAIL, None, {"arch": job.arch, "arch_hash": job.arch_hash,
                                              "status_reason": reason}, t)
            finish_waiters(number, t, TrialState.FAIL, None, {})
            continue
        e = table.runs[job.arch_hash][job.seed][idx]
        metrics, attrs = result_attrs(job, e.epoch)
        values = [float(metrics[m]) for m in names]
        if e.epoch >= max_epochs:
            del jobs[number]
            status = table.status[job.arch_hash][job.seed]
            if status != "ok":
                tell(job, TrialState.FAIL, None, {**attrs, "status_reason": status}, t)
                finish_waiters(number, t, TrialState.FAIL, None, attrs)
                continue
            attrs["status_reason"] = "ok"
            tell(job, TrialState.COMPLETE, values, attrs, t)
            known.setdefault(job.arch_hash, {"status": "ok", "metrics": metrics, "costs": attrs["costs"],
                                             "curve": attrs["curve"], "epoch": max_epochs,
                                             "status_reason": f"ok (same architecture as trial {number}, "
                                                              "not trained again)"})
            finish_waiters(number, t, TrialState.COMPLETE, values, attrs)
        elif decider is not None and not decider.decide(number, e.epoch, values):
            del jobs[number]  # its later epoch events are skipped when they come up
            reason = f"pruned at epoch {e.epoch}"
            tell(job, TrialState.PRUNED, None, {**attrs, "status_reason": reason}, t)
            known.setdefault(job.arch_hash, {"status": "pruned", "metrics": metrics, "costs": attrs["costs"],
                                             "curve": attrs["curve"], "status_reason": f"{reason} (same "
                                             f"architecture as trial {number}, not trained again)"})
            finish_waiters(number, t, TrialState.PRUNED, None, attrs)

    assert not jobs and not waiting, (sorted(jobs), sorted(waiting))  # every trial asked was told
    summary.simulated_seconds = clock
    summary.stopped_because = ("stopped by the caller" if stopped
                               else "time budget" if time_budget_s is not None and clock >= time_budget_s
                               else "space exhausted" if instant >= MAX_INSTANT_TRIALS else "trials")
    summary.distinct = len(measured)
    summary.seconds = time.perf_counter() - t_wall
    study.set_user_attr("simulated_timing", {str(k): v for k, v in timing.items()})
    return study, summary


def _set_metric_names(study: optuna.Study, names: list[str]) -> None:
    with warnings.catch_warnings():  # experimental in Optuna, and what `wfsearch run` stores too
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(names)


def save_study(study: optuna.Study, spec: Any, table: Table, storage_url: str, study_name: str,
               t0: datetime.datetime | None = None) -> optuna.Study:
    """Copy a simulated in-memory study into ``storage_url`` as ``study_name`` (replacing one of that
    name), each trial's start and completion on the simulated clock from ``t0``. The trials go in one
    transaction (`_insert_trials`): Optuna's ``add_trials`` commits each trial and its attributes
    row by row, which took longer than the whole replay."""
    from wfsearch.study import open_storage

    storage = open_storage(storage_url)
    if study_name in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        optuna.delete_study(study_name=study_name, storage=storage)
    names, directions = objective_names(spec)
    out = optuna.create_study(study_name=study_name, storage=storage, directions=directions)
    _set_metric_names(out, names)
    t0 = t0 or datetime.datetime.now().replace(microsecond=0)
    timing = study.user_attrs.get("simulated_timing", {})
    trials = []
    for t in study.get_trials(deepcopy=False):
        start, end = timing.get(str(t.number), (0.0, 0.0))
        trials.append((t, t0 + datetime.timedelta(seconds=start), t0 + datetime.timedelta(seconds=end)))
    _insert_trials(storage, out._study_id, trials)
    out.set_user_attr("spec", spec.to_dict())
    out.set_user_attr("spec_hash", spec.hash)
    out.set_user_attr("spec_path", str(getattr(spec, "path", "") or ""))
    import wfsearch

    out.set_user_attr("wfsearch_version", wfsearch.__version__)
    out.set_user_attr("hardware", {"simulated": True, "table": str(table.path),
                                   **(table.meta.get("machine") or {})})
    out.set_user_attr("objectives", [{"name": n, "direction": d} for n, d in zip(names, directions)])
    out.set_user_attr("simulated", {"table": str(table.path), "seed": spec.study.seed})
    return optuna.load_study(study_name=study_name, storage=storage)


def _insert_trials(storage: optuna.storages.RDBStorage, study_id: int,
                   trials: list[tuple[optuna.trial.FrozenTrial, datetime.datetime, datetime.datetime]]) -> None:
    """Insert finished trials (numbered 0, 1, ... in order) into an empty study, in one transaction,
    through Optuna's own table models and value encodings (what ``add_trial`` writes, row by row)."""
    import json

    from optuna.distributions import distribution_to_json
    from optuna.storages._rdb import models
    from sqlalchemy import insert

    session = storage.scoped_session()
    try:
        rows = []
        for number, (t, start, end) in enumerate(trials):
            row = models.TrialModel(study_id=study_id, number=number, state=t.state)
            row.datetime_start, row.datetime_complete = start, end  # stored as naive UTC, as Optuna does
            rows.append(row)
        session.add_all(rows)
        session.flush()  # trial ids
        values, params, user, system, steps = [], [], [], [], []
        for row, (t, _, _) in zip(rows, trials):
            tid = row.trial_id
            for i, v in enumerate(t.values or []):
                stored, kind = models.TrialValueModel.value_to_stored_repr(v)
                values.append({"trial_id": tid, "objective": i, "value": stored, "value_type": kind})
            for name, v in t.params.items():
                dist = t.distributions[name]
                params.append({"trial_id": tid, "param_name": name, "param_value": dist.to_internal_repr(v),
                               "distribution_json": distribution_to_json(dist)})
            user += [{"trial_id": tid, "key": k, "value_json": json.dumps(v)} for k, v in t.user_attrs.items()]
            system += [{"trial_id": tid, "key": k, "value_json": json.dumps(v)} for k, v in t.system_attrs.items()]
            for step, v in t.intermediate_values.items():
                stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(v)
                steps.append({"trial_id": tid, "step": step, "intermediate_value": stored,
                              "intermediate_value_type": kind})
        for model, data in ((models.TrialValueModel, values), (models.TrialParamModel, params),
                            (models.TrialUserAttributeModel, user), (models.TrialSystemAttributeModel, system),
                            (models.TrialIntermediateValueModel, steps)):
            if data:
                session.execute(insert(model), data)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
