"""A study read once (`StudySnapshot`): its search trials, Pareto front and references. A running search keeps
writing, so every reader computes everything from one snapshot."""
from __future__ import annotations

import logging
import re
import shlex
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import optuna
from optuna.trial import TrialState

from .front import pareto_front
from .naming import references_study_name
from .optuna_api import storage_of
from .outcome import finite
from .record import STUDY_ATTR_TYPES, Status, TrialRecord, readable_attrs
from .storage import OpenStudy, open_study

log = logging.getLogger(__name__)

# "repeat": a later trial of an architecture already evaluated: one point with that trial, never trained twice
_REUSED = re.compile(r"same architecture as trial (\d+), not trained again")
GROUPS = ("front", "dominated", "repeat", "infeasible", "pruned", "failed", "running")
SPEC_SECTIONS = ("study", "resources", "proxy", "throughput", "base", "space")  # mappings in a stored spec


def chance_of(records) -> float | None:
    """Chance accuracy (1 / classes) of the proxy task the records were trained on, None when unknown."""
    n = next((t.arch.get("num_classes") for t in records if t.arch and t.arch.get("num_classes")), None)
    return 1.0 / n if isinstance(n, int) and n > 1 else None


def at_chance(numbers: dict[str, float], chance: float | None) -> bool:
    """Is a proxy accuracy no better than chance (its 90% interval, else its value, reaches chance)?"""
    acc = numbers.get("accuracy_low", numbers.get("accuracy"))
    return chance is not None and acc is not None and acc <= chance


def study_attrs(study: optuna.Study) -> dict:
    """The study's user attributes as wfsearch wrote them; a damaged one (another type, malformed objectives or
    spec, a speed scale or seed noise not finite and >= 0) is logged and read as absent."""
    origin = f"study {study.study_name!r}"
    attrs = dict(readable_attrs(study.user_attrs, STUDY_ATTR_TYPES, origin))
    objs = attrs.get("objectives")
    wrong = {"objectives": objs is not None and (len(objs) != len(study.directions) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) and o.get("direction") in ("maximize", "minimize")
        for o in objs))}
    spec = attrs.get("spec") or {}
    wrong["spec"] = not (_mappings(spec, SPEC_SECTIONS) and _mappings(spec.get("throughput") or {}, ("arch",))
                         and _mappings(spec.get("proxy") or {}, ("dataset",)))
    for key, value in (("throughput_scale", (attrs.get("throughput_scale") or {}).get("img_s", 1.0)),
                       ("seed_noise", attrs.get("seed_noise", 0.0))):
        wrong[key] = not (finite(value) and value >= 0)
    for key in [k for k, w in wrong.items() if w]:
        log.warning("%s: stored %r is not what wfsearch writes (%.80r); read as absent", origin, key, attrs.pop(key))
    return attrs


def _mappings(d: dict, keys: tuple[str, ...]) -> bool:
    return all(isinstance(d.get(k) or {}, dict) for k in keys)


def objective_names(study: optuna.Study) -> list[str]:
    """Objective names in value order: the ``objectives`` attr, else Optuna's metric names."""
    objs = study_attrs(study).get("objectives")
    if objs:
        return [o["name"] for o in objs]
    return list(study.metric_names or (f"objective{i}" for i in range(len(study.directions))))


def directions_of(study: optuna.Study) -> tuple[str, ...]:
    return tuple(d.name.lower() for d in study.directions)


def read_records(study: optuna.Study, states: tuple | None = None, after_number: int | None = None) -> list[TrialRecord]:
    """Every trial of ``study`` (of ``states``; numbered above ``after_number``) as a record, by number."""
    from .rows import read_trials

    return [TrialRecord.from_trial(t)
            for t in read_trials(study, states, system_attrs=("constraints",), after_number=after_number)]


@dataclass(frozen=True, eq=False)
class StudySnapshot:
    """The search study read once: search trials of every state, its front and its references."""

    name: str
    folder: Path
    storage_url: str  # password hidden
    by_storage: bool  # opened with --storage (commands then need --storage/--study, not the folder)
    objectives: tuple[str, ...]
    directions: tuple[str, ...]  # "maximize" | "minimize", in objective order
    trials: tuple[TrialRecord, ...]  # search trials, every state, by number
    references: tuple[TrialRecord, ...]  # COMPLETE trials of "<name>:references" (and any kind=reference here)
    user_attrs: dict

    @cached_property
    def front(self) -> tuple[TrialRecord, ...]:
        """`pareto_front` of the trained search trials, by number."""
        return tuple(pareto_front(self.trials, self.directions))

    @property
    def spec(self) -> dict:
        return self.user_attrs.get("spec") or {}

    @cached_property
    def front_numbers(self) -> frozenset[int]:
        return frozenset(t.number for t in self.front)

    def trial(self, number: int) -> TrialRecord | None:
        return next((t for t in self.trials if t.number == number), None)

    @cached_property
    def repeat_of(self) -> dict[int, int]:
        """Trial number -> the earlier trial whose result it reused ("same architecture as trial N ...")."""
        out = {}
        for t in self.trials:
            m = _REUSED.search(t.reason)
            if m and int(m.group(1)) != t.number:
                out[t.number] = int(m.group(1))
        return out

    @cached_property
    def chance(self) -> float | None:
        """Chance accuracy of the proxy task (1 / its classes), None when unknown."""
        n = ((self.spec.get("proxy") or {}).get("dataset") or {}).get("num_classes")
        return chance_of(self.trials) or (1.0 / n if isinstance(n, int) and n > 1 else None)

    def at_chance(self, t: TrialRecord) -> bool:
        return at_chance(self.metrics(t), self.chance)

    def group(self, t: TrialRecord) -> str:
        """Which of `GROUPS` a search trial belongs to."""
        if t.number in self.repeat_of:
            return "repeat"
        if t.state == TrialState.COMPLETE:
            if not t.trained:
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
        """Architectures, not trials: a repeat is counted apart, never as trained again."""
        c = self.counts()
        runs = c["front"] + c["dominated"]
        archs = len({t.arch_hash or t.number for t in self._finished if t.number not in self.repeat_of})
        return (f"{archs} architectures trained" + (f" ({runs} runs)" if runs != archs else "")
                + f", {c['pruned']} pruned, {c['failed']} failed, {c['infeasible']} infeasible, {c['running']} running"
                + (f"; {c['repeat']} repeat{'s' if c['repeat'] != 1 else ''} of an architecture already evaluated "
                   "(not trained again)" if c['repeat'] else ""))

    @cached_property
    def _finished(self) -> tuple[TrialRecord, ...]:
        return tuple(t for t in self.trials if t.trained)

    def finished(self) -> list[TrialRecord]:
        """COMPLETE search trials that were trained (what the front is chosen from)."""
        return list(self._finished)

    def failure_reasons(self) -> dict[str, int]:
        """Failed trials per status (``oom``, ``diverged``, ``error``, ``interrupted``)."""
        reasons = Counter((t.status or Status.ERROR).value for t in self.trials if t.state == TrialState.FAIL)
        return dict(reasons.most_common())

    @cached_property
    def _numbers(self) -> dict[int, tuple[TrialRecord, dict[str, float]]]:
        return {}

    def metrics(self, t: TrialRecord) -> dict[str, float]:
        """`TrialRecord.numbers`, computed once per trial (a copy)."""
        cached = self._numbers.get(id(t))
        if cached is None or cached[0] is not t:  # the record is held, so its id is not reused
            cached = self._numbers[id(t)] = (t, t.numbers(self.objectives))
        return dict(cached[1])

    @property
    def throughput(self) -> dict:
        return self.spec.get("throughput") or {}

    def deployed_arch(self, t: TrialRecord) -> dict | None:
        """A trial's stored ``deployed_arch``, else (older studies) the design with the spec's ``throughput.arch``
        overrides at ``throughput.img_size``."""
        if t.deployed_arch:
            return dict(t.deployed_arch)
        if not t.arch:
            return None
        tp = self.throughput
        out = {**t.arch, "num_classes": 1000, **(tp.get("arch") or {})}  # as `ThroughputSpec.deployed`
        if tp.get("img_size"):
            out["img_size"] = tp["img_size"]
        return out

    def export_command(self, number: int) -> str:
        return f"{self.study_command('export')} --trial {number}"

    def study_command(self, sub: str) -> str:
        """``wfsearch <sub>`` on this study, e.g. ``study_command("report")``."""
        if self.by_storage:
            return f"wfsearch {sub} --storage {shlex.quote(self.storage_url)} --study {shlex.quote(self.name)}"
        return f"wfsearch {sub} {shlex.quote(str(self.folder))}"


def snapshot(opened: OpenStudy) -> StudySnapshot:
    """Read an open study once, with the trials of its references study."""
    study = opened.study
    records = read_records(study)
    trials = [t for t in records if t.is_search]
    references = [t for t in records if t.kind == "reference" and t.state == TrialState.COMPLETE]
    ref_name = references_study_name(study.study_name)
    try:
        refs = optuna.load_study(study_name=ref_name, storage=storage_of(study))
        references += [r for r in read_records(refs, states=(TrialState.COMPLETE,)) if r.trained]
    except KeyError:  # no references study: the spec listed none
        log.info("study %s: no %r study", study.study_name, ref_name)
    return StudySnapshot(name=study.study_name, folder=opened.folder, storage_url=opened.storage_url,
                         by_storage=opened.by_storage, objectives=tuple(objective_names(study)),
                         directions=directions_of(study), trials=tuple(trials), references=tuple(references),
                         user_attrs=study_attrs(study))


def read_study(path: str | Path | None = None, storage: str | None = None,
               study_name: str | None = None) -> StudySnapshot:
    """Open ``studies/<name>`` (or ``storage`` + ``study_name``) and read it once."""
    return snapshot(open_study(path, storage=storage, study_name=study_name))
