"""Replay a search against a tabulated design space, in simulated time:
``study, summary = simulate(spec, load_table("benchmarks/tables/predictors"), workers=2)``.

The same `SearchLoop` as ``wfsearch run`` with another evaluator: `TableEvaluator` takes each trial's recorded run
(of its ``proxy.seed``) from the table and advances a simulated clock by its epoch times (plus the architecture's
measurement the first time) on ``workers`` slots. A trial stores what ``run`` would, plus ``simulated``;
`save_study` writes the in-memory study to SQLite for `show` and `report`. Nothing imports Ray or torch.
"""
from __future__ import annotations

import datetime
import heapq
import itertools
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import optuna
from optuna.trial import TrialState

from wfsearch.errors import UserError
from wfsearch.study import Outcome, Proposal, Status, TrialRecord, set_study_attrs, write_header
from wfsearch.study.optuna_api import insert_trials, study_id, trial_id

from .driver import FINISHED, SearchLoop, search_loop
from .rungs import ParetoRungs
from .sampler import SAMPLER_ATTR, make_sampler, resolve_sampler
from .table import Table

MISSING_LIMIT = 20  # sampled architectures in a row that are not in the table: the wrong table


@dataclass
class SimSummary:
    trials: int = 0  # distinct architectures finished (what ``study.trials`` counts)
    repeats: int = 0  # re-sampled architectures told their known result
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
    proposal: Proposal
    start: float
    seed: int | None = None  # the table seed it trains with (None: told a result without training)


class TableEvaluator:
    """Evaluates a `SearchLoop`'s trials from a `Table` on a simulated clock with ``workers`` slots; nothing more
    is asked once the clock passes ``time_budget_s`` or ``stop()`` is True; ``on_complete(t, frozen)`` is called
    for every trained trial that completes."""

    def __init__(self, table: Table, settings: dict, workers: int, time_budget_s: float | None = None,
                 on_complete: Callable[[float, optuna.trial.FrozenTrial], None] | None = None,
                 stop: Callable[[], bool] | None = None):
        self.table, self.settings, self.workers = table, settings, workers
        self.time_budget_s, self.on_complete, self.stop = time_budget_s, on_complete, stop
        self.clock = 0.0
        self.jobs: dict[int, _Job] = {}  # trial number -> job holding a slot
        self.waiting: dict[int, list[_Job]] = {}  # trial number trained -> jobs waiting for it
        self.numbers: dict[int, int] = {}  # Optuna trial id -> number
        self.events: list[tuple[float, int, int, int | None]] = []  # (time, order, number, rung epoch or None: end)
        self.order = itertools.count()
        self.measured: set[str] = set()
        self.completions: list[tuple[float, int, list[float]]] = []
        self.stopped = False
        self.missing = 0

    def evaluate(self, proposals: Sequence[Proposal]) -> list[Outcome]:
        return [self.table.replay(p, self.settings) for p in proposals]

    def run(self, loop: SearchLoop) -> None:
        loop.stamp = lambda trial: {"simulated": {"table": str(self.table.path), "seed": None,
                                                  "start_s": self.clock, "end_s": self.clock}}
        while True:
            while len(self.jobs) < self.workers and not self.stopped and \
                    (self.time_budget_s is None or self.clock < self.time_budget_s):
                if self.stop is not None and self.stop():
                    self.stopped = True
                    break
                asked = loop.ask()
                if asked is None or asked == FINISHED:
                    break
                self._start(loop, *asked)
            if not self.events:
                break
            t, _, number, epoch = heapq.heappop(self.events)
            job = self.jobs.get(number)
            if job is None:  # an epoch of a trial stopped at an earlier rung
                continue
            self.clock = t
            outcome = self.table.outcome(job.proposal, epoch, self.settings)
            if epoch is None or not loop.go_on(number, epoch, outcome):
                self._finish(loop, job, outcome)
        assert not self.jobs and not self.waiting, (sorted(self.jobs), sorted(self.waiting))  # every trial told

    def _start(self, loop: SearchLoop, trial: Any, p: Proposal) -> None:
        self.numbers[trial_id(trial)] = trial.number
        job = self.jobs[trial.number] = _Job(trial, p, self.clock)
        if p.wait_for is not None:  # the same architecture is being trained by another trial: wait for it
            self.waiting.setdefault(self.numbers[p.wait_for], []).append(job)
        else:
            self._train(loop, job)

    def _train(self, loop: SearchLoop, job: _Job) -> None:
        p, number = job.proposal, job.trial.number
        why = self.table.missing(p.arch_hash, p.proxy["seed"])
        if why:
            self.missing += 1
            if self.missing >= MISSING_LIMIT and not self.measured:
                raise UserError(f"{self.table.path}: --table: none of the first {self.missing} sampled architectures "
                                f"is in the table; simulate the spec the table was made from "
                                f"({self.table.meta.get('spec', 'see its table.json')})")
            return self._finish(loop, job, Outcome(Status.ERROR, why))
        job.seed, job.start = p.proxy["seed"], self.clock
        t = self.clock + (self.table.archs[p.arch_hash].measure_seconds if p.arch_hash not in self.measured else 0.0)
        self.measured.add(p.arch_hash)
        curve = self.table.curve(p)
        rungs = set(p.proxy["epochs"][:-1])
        for e in curve[:-1]:
            t += e.seconds
            if e.epoch in rungs:
                heapq.heappush(self.events, (t, next(self.order), number, e.epoch))
        t += curve[-1].seconds if curve else 0.0
        heapq.heappush(self.events, (t, next(self.order), number, None))

    def _finish(self, loop: SearchLoop, job: _Job, outcome: Outcome) -> None:
        number = job.trial.number
        del self.jobs[number]
        simulated = {"table": str(self.table.path), "seed": job.seed, "start_s": job.start, "end_s": self.clock}
        frozen = loop.tell(job.trial, replace(outcome, extra={"simulated": simulated}))
        if frozen.state == TrialState.COMPLETE and job.seed is not None and frozen.values is not None:
            self.completions.append((self.clock, number, list(frozen.values)))
            if self.on_complete is not None:
                self.on_complete(self.clock, frozen)
        record = TrialRecord.from_trial(frozen)
        for w in self.waiting.pop(number, []):
            if record.trained:
                self._finish(loop, w, record.outcome.reused(number))
            else:  # the one it waited for stopped early: this trial trains the architecture itself
                self._train(loop, w)


def simulate(spec: Any, table: Table, *, workers: int | None = None, seed: int | None = None,
             max_trials: int | None = None, time_budget_s: float | None = None, sampler: Any = None,
             resolved: dict | None = None,
             on_complete: Callable[[float, optuna.trial.FrozenTrial], None] | None = None,
             stop: Callable[[], bool] | None = None) -> tuple[optuna.Study, SimSummary]:
    """Run ``spec``'s search against ``table``: the in-memory study and a summary. ``max_trials`` (default
    ``study.trials``), ``seed`` (default ``study.seed``), ``workers`` (default ``resources.max_concurrent`` or the
    table's). ``resolved``: the sampler settings to use and store (default: resolved for ``max_trials``)."""
    t_wall = time.perf_counter()
    seed = spec.study.seed if seed is None else seed
    study_spec = spec.study.model_copy(update={"seed": seed, "trials": spec.study.trials if max_trials is None
                                               else max_trials})
    spec = spec.model_copy(update={"study": study_spec})
    workers = int(workers or spec.resources.max_concurrent or table.meta.get("machine", {}).get("workers") or 2)
    rungs = list(spec.proxy.epochs)
    table_epochs = max((len(c) for per in table.runs.values() for c in per.values()), default=0)
    if table_epochs < rungs[-1]:
        raise UserError(f"{spec.path}: proxy.epochs: {rungs}: the table {table.path} has curves of "
                        f"{table_epochs} epoch(s); use rungs within them")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    resolved = resolved or resolve_sampler(spec)  # given: the sampler of another budget than max_trials
    study = optuna.create_study(directions=[o.direction for o in spec.study.objectives],
                                sampler=sampler or make_sampler(spec, resolved), study_name=spec.study.name)
    write_header(study, spec, table_machine(table))
    scale = {"reference": spec.throughput.reference, "img_s": table.reference_img_s,
             "how": "median images/s of the reference model over the table's measurements"}
    set_study_attrs(study, **{SAMPLER_ATTR: resolved, "simulated": {"table": str(table.path), "seed": seed}},
                    **({"throughput_scale": scale} if table.reference_img_s else {}))
    decider = None
    if spec.study.scheduler.type == "mo_asha" and len(rungs) > 1:
        decider = ParetoRungs(rungs, [o.name for o in spec.study.objectives],
                              [o.direction for o in spec.study.objectives], spec.study.scheduler.reduction_factor)
    loop = search_loop(spec, study, [], decider)
    evaluator = TableEvaluator(table, {"seed_noise": None}, workers, time_budget_s, on_complete, stop)
    evaluator.run(loop)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    b = loop.budget
    summary = SimSummary(trials=b.count, repeats=loop.progress.repeats, complete=states.count(TrialState.COMPLETE),
                         pruned=states.count(TrialState.PRUNED), failed=states.count(TrialState.FAIL),
                         distinct=len(evaluator.measured), simulated_seconds=evaluator.clock,
                         seconds=time.perf_counter() - t_wall, completions=evaluator.completions,
                         stopped_because="stopped by the caller" if evaluator.stopped
                         else "space exhausted" if b.stop_reason and not b.reached()
                         else "trials" if b.reached() else "time budget")
    return study, summary


def table_machine(table: Table) -> dict[str, Any]:
    """The hardware record of a simulated study: the machine the table was measured on."""
    machine = table.meta.get("machine") or {}
    device = next((a.device for a in table.archs.values() if a.device), None)
    return {"simulated": True, "table": str(table.path), "device": device, "cpu_count": machine.get("cpus"),
            "torch": table.meta.get("torch"), **machine}


def save_study(study: optuna.Study, spec: Any, table: Table, storage_url: str, study_name: str,
               t0: datetime.datetime | None = None) -> optuna.Study:
    """Copy a simulated study into ``storage_url`` as ``study_name`` (replacing one), times on the simulated clock
    from ``t0``, in one transaction (`insert_trials`: ``add_trials`` took longer than the whole replay)."""
    from wfsearch.study import open_storage

    storage = open_storage(storage_url)
    if study_name in {s.study_name for s in storage.get_all_studies()}:
        optuna.delete_study(study_name=study_name, storage=storage)
    out = optuna.create_study(study_name=study_name, storage=storage, directions=study.directions)
    t0 = t0 or datetime.datetime.now().replace(microsecond=0)
    at = [(t, t.user_attrs.get("simulated") or {}) for t in study.get_trials(deepcopy=False)]
    insert_trials(storage, study_id(out), [(t, *(t0 + datetime.timedelta(seconds=sim.get(k) or 0.0)
                                                  for k in ("start_s", "end_s"))) for t, sim in at])
    write_header(out, spec, table_machine(table))
    written = out.user_attrs
    set_study_attrs(out, **{k: v for k, v in study.user_attrs.items() if k not in written})
    return optuna.load_study(study_name=study_name, storage=storage)
