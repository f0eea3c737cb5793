"""One consistent reading of a study for the report: its trials, the front, its references.

A running search keeps writing while a report is built, so the trials are read once (a
`StudyView`) and every table and plot of one report is computed from that same snapshot.
"""
from __future__ import annotations

import logging
import math
import shlex
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from wfsearch.export.study import objective_names, open_study, trial_metrics
from wfsearch.search.engine import pareto_front, references_study_name

log = logging.getLogger(__name__)

GROUPS = ("front", "dominated", "infeasible", "pruned", "failed", "running")


class _Snapshot:
    """The study's trials read once; quacks like the `optuna.Study` that `pareto_front` expects."""

    def __init__(self, study: optuna.Study) -> None:
        self.directions = study.directions
        self._trials = study.get_trials(deepcopy=False)

    def get_trials(self, deepcopy: bool = False, states: tuple | None = None) -> list[FrozenTrial]:
        return [t for t in self._trials if states is None or t.state in states]


def is_infeasible(t: FrozenTrial) -> bool:
    return str(t.user_attrs.get("status_reason", "ok")).startswith("infeasible")


@dataclass(frozen=True)
class StudyView:
    """The search study read once: search trials of every state, its Pareto front and its references."""

    name: str
    folder: Path
    storage_url: str  # password hidden
    by_storage: bool  # opened with --storage (exports then need --storage/--study, not the folder)
    objectives: tuple[str, ...]
    directions: tuple[str, ...]  # "maximize" | "minimize", in objective order
    trials: tuple[FrozenTrial, ...]  # search trials (kind "search"), every state, by number
    front: tuple[FrozenTrial, ...]  # `engine.pareto_front` of the snapshot, by number
    references: tuple[FrozenTrial, ...]  # COMPLETE trials of "<name>:references" (and any kind=reference here)
    user_attrs: dict

    @property
    def spec(self) -> dict:
        return self.user_attrs.get("spec") or {}

    @property
    def front_numbers(self) -> frozenset[int]:
        return frozenset(t.number for t in self.front)

    def group(self, t: FrozenTrial) -> str:
        """Which of `GROUPS` a search trial belongs to."""
        if t.state == TrialState.COMPLETE:
            if is_infeasible(t):
                return "infeasible"
            return "front" if t.number in self.front_numbers else "dominated"
        if t.state == TrialState.PRUNED:
            return "pruned"
        if t.state == TrialState.FAIL:
            return "failed"
        return "running"  # RUNNING or WAITING

    def counts(self) -> dict[str, int]:
        c = Counter(self.group(t) for t in self.trials)
        return {g: c.get(g, 0) for g in GROUPS}

    def counts_text(self) -> str:
        c = self.counts()
        return (f"{c['front'] + c['dominated']} trained, {c['pruned']} pruned, {c['failed']} failed, "
                f"{c['infeasible']} infeasible, {c['running']} running")

    def finished(self) -> list[FrozenTrial]:
        """COMPLETE search trials that were trained (what the front is chosen from)."""
        return [t for t in self.trials if self.group(t) in ("front", "dominated")]

    def failure_reasons(self) -> dict[str, int]:
        """``status_reason`` of the failed trials, shortened to its kind (``oom``, ``diverged``, ``error``...)."""
        reasons = Counter(str(t.user_attrs.get("status_reason") or "unknown").split(":")[0].strip()
                          for t in self.trials if t.state == TrialState.FAIL)
        return dict(reasons.most_common())

    def metrics(self, t: FrozenTrial) -> dict[str, float]:
        """Every finite number known for a trial by name (costs, metrics, then objective values)."""
        return trial_metrics(t, list(self.objectives))

    def export_command(self, number: int) -> str:
        if self.by_storage:
            return (f"wfsearch export --storage {shlex.quote(self.storage_url)} --study {shlex.quote(self.name)} "
                    f"--trial {number}")
        return f"wfsearch export {shlex.quote(str(self.folder))} --trial {number}"

    def study_command(self, sub: str) -> str:
        """``wfsearch <sub>`` on this study, e.g. ``study_command("report")``."""
        if self.by_storage:
            return f"wfsearch {sub} --storage {shlex.quote(self.storage_url)} --study {shlex.quote(self.name)}"
        return f"wfsearch {sub} {shlex.quote(str(self.folder))}"


def load_view(path: str | Path | None = None, storage: str | None = None,
              study_name: str | None = None) -> StudyView:
    """Open ``studies/<name>`` (or ``storage`` + ``study_name``) and read it once."""
    from wfsearch.errors import UserError

    if path is None and storage is None:
        raise UserError("give a study folder (studies/<name>) or --storage URL [--study NAME]")
    opened = open_study(path, storage=storage, study_name=study_name)
    study = opened.study
    snap = _Snapshot(study)
    front = sorted(pareto_front(snap), key=lambda t: t.number)
    everything = snap.get_trials()
    trials = [t for t in everything if t.user_attrs.get("kind", "search") == "search"]
    references = [t for t in everything if t.user_attrs.get("kind") == "reference" and t.state == TrialState.COMPLETE]
    ref_name = references_study_name(study.study_name)
    try:
        refs = optuna.load_study(study_name=ref_name, storage=study._storage)
        references += refs.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    except KeyError:  # no references study: the spec listed none
        log.info("study %s: no %r study", study.study_name, ref_name)
    return StudyView(
        name=study.study_name, folder=opened.folder, storage_url=opened.storage_url, by_storage=storage is not None,
        objectives=tuple(objective_names(study)),
        directions=tuple(d.name.lower() for d in study.directions),
        trials=tuple(sorted(trials, key=lambda t: t.number)), front=tuple(front),
        references=tuple(references), user_attrs=dict(study.user_attrs))


def finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
