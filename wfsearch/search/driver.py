"""The one ask/tell loop of a search (`SearchLoop`: what to evaluate next, whether a trial goes on past a rung,
what is stored when it ends) and the `Evaluator` protocol of what runs its trials: Ray Tune trainings
(`wfsearch.search.tune`) or a table replay on a simulated clock (`wfsearch.search.simulate`). Ray-free.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Protocol, Sequence

import optuna
from optuna.trial import TrialState

from wfsearch.study import (Outcome, Proposal, Status, TrialRecord, as_dicts, known_results, read_records,
                            set_study_attrs, tell, write_header, write_proposal)
from wfsearch.study.front import one_per_arch
from wfsearch.study.hypervolume import BOX_ATTR
from wfsearch.study.optuna_api import trial_id

from .budget import DistinctBudget
from .progress import SearchProgress
from .rungs import ParetoRungs
from .sampler import SpaceFunction, objective_names

log = logging.getLogger(__name__)

FINISHED = "FINISHED"  # `SearchLoop.ask`: the budget is spent or the space exhausted, nothing runs


class Evaluator(Protocol):
    """What runs the trials of a `SearchLoop`."""

    def run(self, loop: "SearchLoop") -> None:
        """Evaluate what ``loop.ask()`` proposes until `FINISHED` (``loop.go_on`` at each rung, then ``loop.tell``)."""

    def evaluate(self, proposals: Sequence[Proposal]) -> list[Outcome]:
        """The outcomes of fixed proposals (the references), evaluated to the end."""


@dataclass
class SearchLoop:
    study: optuna.Study
    space: Callable[[Any], Proposal]  # the define-by-run function (`SpaceFunction`)
    objectives: list[str]
    directions: list[str]
    budget: DistinctBudget
    progress: SearchProgress
    known: dict[str, Outcome] = field(default_factory=dict)  # arch hash -> a re-sample's outcome
    inflight: dict[str, int] = field(default_factory=dict)  # arch hash -> the trial id training it
    rungs: ParetoRungs | None = None
    stamp: Callable[[Any], dict] | None = None  # further attributes an evaluator stores with every trial
    live: dict[int, str | None] = field(default_factory=dict)  # trial number -> the new architecture it evaluates
    box_stored: bool = False  # the progress's hypervolume box is in the study
    on_told: Callable[[TrialRecord], None] | None = None  # called with every told trial (a tracker)

    def ask(self) -> tuple[optuna.Trial, Proposal] | str | None:
        """The next trial and its proposal; None while the rest of the budget is running; `FINISHED` once it is
        spent or the space is exhausted. A known outcome (a re-sample, an infeasible design) is told at once."""
        b = self.budget
        while True:
            if b.reached() or b.stop_reason:
                return None if self.live else FINISHED
            if b.count + len({i for i in self.live.values() if i is not None and i not in b.finished}) >= b.total:
                return None
            trial = self.study.ask()
            p = self.space(trial)
            identity = b.identity(p.arch_hash, trial.params)
            known = p.known or (Outcome(Status.INFEASIBLE, p.infeasible, metrics=p.cost_metrics)
                                if p.infeasible else None)
            if known is None:
                b.sampled_new()
                self.live[trial.number] = identity if p.wait_for is None else None
                return trial, p
            repeat = identity in b.finished
            self.tell(trial, known)
            b.sampled_repeat() if repeat else b.sampled_new()

    def go_on(self, key: Any, epoch: int, partial: Outcome) -> bool:
        """Whether a trial (``key``: how the evaluator names it) continues past ``epoch``."""
        if self.rungs is None:
            return True
        return self.rungs.decide(key, epoch, [float(partial.metrics[m]) for m in self.objectives])

    def tell(self, trial: optuna.Trial, outcome: Outcome) -> optuna.trial.FrozenTrial:
        """Store a trial's outcome (the one `wfsearch.study.tell`) and count it."""
        if self.stamp is not None:
            outcome = replace(outcome, extra={**self.stamp(trial), **outcome.extra})
        frozen = tell(self.study, trial, outcome.scored(self.objectives, self.directions))
        self.live.pop(frozen.number, None)
        r = TrialRecord.from_trial(frozen)
        log.info("trial %d %s: %s%s", r.number, r.state.name.lower(), r.reason,
                 "".join(f", {n} {v:.4g}" for n, v in zip(self.objectives, r.values or ())))
        if r.arch_hash and self.inflight.get(r.arch_hash) == trial_id(frozen):
            del self.inflight[r.arch_hash]
        prog = self.progress
        if r.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            prog.failed += 1
        elif not self.budget.add(DistinctBudget.identity(r.arch_hash, r.params)):
            prog.repeats += 1  # a re-sample: known result, no budget, not a second point on the front
        else:
            prog.finished = self.budget.count
            if r.state == TrialState.PRUNED:
                prog.pruned += 1
            elif r.trained:
                prog.add_point(r.values, r.arch_hash)
                self.store_box()
            if r.arch_hash and r.arch_hash not in self.known and (r.state == TrialState.PRUNED or r.trained):
                self.known[r.arch_hash] = r.outcome.reused(r.number)
        if self.on_told is not None:
            self.on_told(r)
        return frozen

    def store_box(self) -> None:
        """Store the study's hypervolume box once the progress has fixed it (readers then use the same)."""
        box = self.progress.hv_box
        if box is not None and not self.box_stored:
            if self.study.user_attrs.get(BOX_ATTR) != box.to_dict():
                set_study_attrs(self.study, **{BOX_ATTR: box.to_dict()})
            self.box_stored = True

    def round_ended(self) -> None:
        """Forget the trials that will not be told (their round ended before they ran)."""
        self.live.clear()
        self.inflight.clear()


def search_records(study: optuna.Study, states: tuple = (TrialState.COMPLETE,),
                   after_number: int | None = None) -> list[TrialRecord]:
    return [r for r in read_records(study, states, after_number) if r.is_search]


def distinct_budget(spec: Any, source: optuna.Study | list[TrialRecord]) -> DistinctBudget:
    """The budget of ``spec.study.trials`` distinct architectures, with those the study has finished."""
    size = spec.size
    budget = DistinctBudget(total=spec.study.trials,
                            space_size=None if size.continuous or size.combinations is None else size.combinations)
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    records = search_records(source, finished) if isinstance(source, optuna.Study) else source
    for r in records:
        if r.state in finished:
            budget.add(DistinctBudget.identity(r.arch_hash, r.params))
    return budget


def pareto_candidates(records: list[TrialRecord]) -> list[TrialRecord]:
    """The trained trials, one per architecture (a repeat that reused an earlier result is not a second point)."""
    return one_per_arch([r for r in records if r.state == TrialState.COMPLETE and r.trained])


def search_loop(spec: Any, study: optuna.Study, records: list[TrialRecord], rungs: ParetoRungs | None = None,
                progress: SearchProgress | None = None) -> SearchLoop:
    """The loop of ``spec``'s search on ``study``, continuing from its finished search ``records``."""
    names, directions = objective_names(spec)
    finished = [r for r in records if r.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    budget = distinct_budget(spec, finished)
    prog = progress or SearchProgress(total=spec.study.trials, objectives=names, directions=directions)
    prog.finished = budget.count
    for r in pareto_candidates(finished):
        prog.add_point(r.values, r.arch_hash)
    known = known_results(finished)
    inflight: dict[str, int] = {}
    loop = SearchLoop(study, SpaceFunction(spec, as_dicts(spec.study.constraints), known, inflight), names,
                      directions, budget, prog, known, inflight, rungs)
    loop.store_box()
    return loop


def reference_proposals(spec: Any) -> list[Proposal]:
    """The spec's references as proposals (an architecture at the spec's two scales, or a timm model)."""
    proxy = spec.proxy.model_dump(mode="json")
    return [Proposal(kind="reference", name=r.name, arch=r.arch, proxy=proxy, timm_model=r.model,
                     deployed=spec.throughput.deployed(r.arch) if r.arch is not None else None)
            for r in spec.reference_archs()]


def evaluate_references(spec: Any, study: optuna.Study, evaluator: Evaluator, machine: dict) -> list[TrialRecord]:
    """Evaluate the spec's references not yet in ``study`` (``<name>:references``); its trained references."""
    names, directions = objective_names(spec)
    write_header(study, spec, machine)
    done = {r.name for r in read_records(study, (TrialState.COMPLETE,))}
    todo = [p for p in reference_proposals(spec) if p.name not in done]
    trials = [study.ask() for _ in todo]
    for trial, p in zip(trials, todo):
        write_proposal(trial, p)
    for trial, p, outcome in zip(trials, todo, evaluator.evaluate(todo) if todo else []):
        if outcome.status is not Status.OK:
            log.warning("reference %s: %s", p.name, outcome.reason)
        tell(study, trial, outcome.scored(names, directions))
    return [r for r in read_records(study, (TrialState.COMPLETE,)) if r.trained]
