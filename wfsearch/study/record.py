"""The stored-trial contract (docs/CONTRACTS.md) read back as a type: `TrialRecord.from_trial` reads a trial's
user attributes (written by `wfsearch.study.write`) into typed fields; older studies without ``status`` are read
from their ``status_reason`` text."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from .optuna_api import trial_id
from .outcome import Outcome, Status, finite

log = logging.getLogger(__name__)

CONSTRAINTS_ATTR = "constraints"  # constraint values (<= 0 feasible) the search stores for the sampler

# the type of each stored attribute (docs/CONTRACTS.md); a damaged one of another type is read as absent
TRIAL_ATTR_TYPES: dict[str, type] = {
    "kind": str, "reference_name": str, "arch": dict, "arch_hash": str, "deployed_arch": dict, "timm_model": str,
    "metrics": dict, "costs": dict, "curve": list, "proxy": dict, "status": str, "status_reason": str,
    CONSTRAINTS_ATTR: list}
STUDY_ATTR_TYPES: dict[str, type | tuple[type, ...]] = {
    "spec": dict, "spec_hash": str, "spec_path": str, "wfsearch_version": str, "hardware": dict, "objectives": list,
    "throughput_scale": dict, "hypervolume_box": dict, "seed_noise": (int, float),
    "sampler": dict, "proxy_verdict": dict, "simulated": dict}


@dataclass(frozen=True)
class TrialRecord:
    """One stored trial, typed: ``arch`` at proxy scale (trained), ``deployed_arch`` as measured (and exported)."""

    number: int
    state: TrialState
    status: Status | None  # None while running
    reason: str  # the human-readable status_reason ("ok", "pruned at epoch 2", "infeasible: ...")
    values: tuple[float, ...] | None = None
    kind: str = "search"  # "search" | "reference"
    name: str | None = None  # a reference's name
    arch: dict | None = None
    arch_hash: str | None = None
    deployed_arch: dict | None = None
    timm_model: str | None = None
    metrics: dict = field(default_factory=dict)
    costs: dict = field(default_factory=dict)
    curve: tuple = ()
    proxy: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)  # the sampled knobs (the design)
    constraints: tuple[float, ...] = ()
    datetime_start: Any = None
    datetime_complete: Any = None
    trial_id: int | None = None
    trial: FrozenTrial | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_trial(cls, t: FrozenTrial) -> "TrialRecord":
        a = _current_names(readable_attrs(t.user_attrs, TRIAL_ATTR_TYPES, f"trial {t.number}"))
        reason = str(a.get("status_reason") or "")
        status = Status.of(a.get("status") or reason, t.state) if t.state.is_finished() else None
        if status is Status.OK and not _constraints_hold(t, a):
            status = Status.INFEASIBLE  # a native Optuna constraint says so (studies of other tools)
        return cls(
            number=t.number, state=t.state, status=status, reason=reason or (status.value if status else ""),
            values=tuple(t.values) if t.values is not None else None, kind=str(a.get("kind", "search")),
            name=a.get("reference_name"), arch=a.get("arch"), arch_hash=a.get("arch_hash"),
            deployed_arch=a.get("deployed_arch"), timm_model=a.get("timm_model"),
            metrics=dict(a.get("metrics") or {}), costs=dict(a.get("costs") or {}), curve=_curve(a.get("curve"), t.number),
            proxy=dict(a.get("proxy") or {}), params=dict(t.params),
            constraints=tuple(c if finite(c) else math.nan for c in a.get(CONSTRAINTS_ATTR) or ()),
            datetime_start=t.datetime_start, datetime_complete=t.datetime_complete,
            trial_id=trial_id(t), trial=t)

    @property
    def is_search(self) -> bool:
        return self.kind == "search"

    @cached_property
    def trained(self) -> bool:
        """Completed with real scores: what the front is chosen from (infeasible trials hold the worst values)."""
        return (self.state == TrialState.COMPLETE and self.status is Status.OK and self.values is not None
                and all(finite(v) for v in self.values))

    @property
    def label(self) -> str:
        return self.name or (f"timm:{self.timm_model}" if self.timm_model and not self.arch else str(self.number))

    def numbers(self, objectives: list[str] | tuple[str, ...] = ()) -> dict[str, float]:
        """Every finite number known for the trial by name: costs, then metrics, then the objective values."""
        out: dict[str, float] = {}
        for source in (self.costs, self.metrics):
            for k, v in source.items():
                if type(v) is float:  # most of them: finite unless inf or nan (then v - v is nan)
                    if v - v == 0.0:
                        out[k] = v
                elif finite(v):
                    out[k] = float(v)
        for name, v in zip(objectives, self.values or ()):
            if finite(v):
                out[name] = float(v)
        return out

    @property
    def outcome(self) -> Outcome:
        return Outcome(self.status or Status.ERROR, self.reason, self.values, self.metrics, self.costs, self.curve)


# older studies named the measured images/s ``throughput`` in costs, ``throughput_raw`` in metrics
LEGACY_NAMES = {"costs": {"throughput": "throughput_img_s", "throughput_samples": "throughput_img_s_samples",
                          "throughput_interval": "throughput_img_s_interval"},
                "metrics": {"throughput_raw": "throughput_img_s", "throughput_raw_low": "throughput_img_s_low",
                            "throughput_raw_high": "throughput_img_s_high"}}


def _current_names(attrs: dict[str, Any]) -> dict[str, Any]:
    """A trial's attributes with the measured images/s under its current name, ``throughput_img_s``."""
    costs = attrs.get("costs")
    if not isinstance(costs, dict) or "throughput_img_s" in costs or "throughput" not in costs:
        return attrs
    out = dict(attrs)
    for section, names in LEGACY_NAMES.items():
        if isinstance(out.get(section), dict):
            out[section] = {names.get(k, k): v for k, v in out[section].items()}
    return out


def readable_attrs(attrs: dict[str, Any], types: dict[str, Any], origin: str) -> dict[str, Any]:
    """``attrs`` without those stored with another type than ``types`` says (logged once, naming ``origin``)."""
    bad = [k for k, v in attrs.items() if v is not None and k in types and not _is_a(v, types[k])]
    if not bad:
        return attrs
    log.warning("%s: stored %s of another type than wfsearch writes; read as absent", origin,
                ", ".join(f"{k!r} ({type(attrs[k]).__name__})" for k in bad))
    return {k: v for k, v in attrs.items() if k not in bad}


def _is_a(value: Any, kind: Any) -> bool:
    return isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)


def _curve(points: Any, number: int) -> tuple:
    """The stored curve's points that have a finite epoch (a damaged point is left out, and logged)."""
    kept = tuple(p for p in points or () if isinstance(p, dict) and finite(p.get("epoch")))
    if len(kept) < len(points or ()):
        log.warning("trial %d: stored 'curve' holds %d point(s) that are not {epoch, accuracy, loss} mappings; "
                    "left out", number, len(points) - len(kept))
    return kept


def _constraints_hold(t: FrozenTrial, attrs: dict[str, Any]) -> bool:
    """No constraint violated: Optuna's own (``system_attrs``) nor the engine's user attribute."""
    for cons in (t.system_attrs.get("constraints"), attrs.get(CONSTRAINTS_ATTR)):
        values = cons.values() if isinstance(cons, dict) else cons if isinstance(cons, (list, tuple)) else []
        if any(finite(c) and c > 0.0 for c in values):
            return False
    return True


def known_results(records: list[TrialRecord]) -> dict[str, Outcome]:
    """The outcome a re-sample of an architecture trained or stopped at a rung is told, by arch hash."""
    known: dict[str, Outcome] = {}
    for r in records:
        if r.is_search and (r.trained or r.state == TrialState.PRUNED) and r.arch_hash and r.arch_hash not in known:
            known[r.arch_hash] = r.outcome.reused(r.number)
    return known
