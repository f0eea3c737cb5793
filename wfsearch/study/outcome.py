"""What an evaluation is asked (`Proposal`) and what it produced (`Outcome`), typed and frozen, with their JSON
forms; the metrics an outcome stores, derived once (`measured_metrics`, `accuracy_metrics`); directions as loss
signs (`loss_sign`)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Mapping, Sequence

from optuna.trial import TrialState

from wfsearch.arch import ArchConfig

from .interval import Interval, accuracy_interval, median_interval

WORST_COST = 1e30  # the value of a minimized objective no real trial loses to, for a trial not trained


class Status(StrEnum):
    """How a trial ended; ``str`` so that it is stored and compared as its value."""

    OK = "ok"
    PRUNED = "pruned"
    DIVERGED = "diverged"
    OOM = "oom"
    INFEASIBLE = "infeasible"
    ERROR = "error"
    INTERRUPTED = "interrupted"

    @classmethod
    def of(cls, reason: str | None, state: TrialState | None = None) -> "Status | None":
        """The status a ``status_reason`` text starts with; else the one ``state`` implies (None: running)."""
        head = str(reason or "").split(":")[0].split("(")[0].split()
        if head:
            try:
                return cls(head[0].lower())
            except ValueError:
                pass
        return {TrialState.COMPLETE: cls.OK, TrialState.PRUNED: cls.PRUNED,
                TrialState.FAIL: cls.ERROR}.get(state)  # type: ignore[arg-type]

    @property
    def state(self) -> TrialState:
        """The Optuna state of a trial with this status (infeasible: COMPLETE, with the worst values)."""
        if self in (Status.OK, Status.INFEASIBLE):
            return TrialState.COMPLETE
        return TrialState.PRUNED if self is Status.PRUNED else TrialState.FAIL


def loss_sign(direction: Any) -> float:
    """-1 for a maximized objective, +1 for a minimized one: ``value * sign`` is a loss."""
    return -1.0 if str(direction).lower().endswith("maximize") else 1.0


def loss_signs(directions: Sequence[Any]) -> tuple[float, ...]:
    return tuple(loss_sign(d) for d in directions)


def finite(v: Any) -> bool:
    if type(v) is float:  # the common case first: called for every number of every trial
        return math.isfinite(v)
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Outcome:
    """What one evaluation produced: ``values`` as stored (set by `scored`); ``seconds`` is not stored; ``extra``
    holds further user attributes (the simulator's ``simulated``)."""

    status: Status
    reason: str = ""  # the human-readable status_reason ("ok", "pruned at epoch 2", "infeasible: ...")
    values: tuple[float, ...] | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    costs: Mapping[str, Any] = field(default_factory=dict)
    curve: tuple[Mapping[str, Any], ...] = ()  # [{"epoch", "accuracy", "loss"}]
    seconds: Mapping[str, float] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))
        object.__setattr__(self, "reason", self.reason or self.status.value)
        object.__setattr__(self, "curve", tuple(self.curve))
        if self.values is not None:
            object.__setattr__(self, "values", tuple(float(v) for v in self.values))

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status.value, "reason": self.reason,
                "values": None if self.values is None else list(self.values), "metrics": dict(self.metrics),
                "costs": dict(self.costs), "curve": [dict(c) for c in self.curve], "seconds": dict(self.seconds),
                "extra": dict(self.extra)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Outcome":
        return cls(**d)

    def attrs(self) -> dict[str, Any]:
        """The user attributes this outcome is stored as (docs/CONTRACTS.md)."""
        out = {k: v for k, v in (("metrics", dict(self.metrics)), ("costs", dict(self.costs)),
                                 ("curve", [dict(c) for c in self.curve])) if v}
        return {**out, **self.extra, "status": self.status.value, "status_reason": self.reason}

    @property
    def intervals(self) -> dict[str, dict[str, float]]:
        """The 90% interval of every metric stored with one (``<metric>_low`` and ``<metric>_high``)."""
        m = self.metrics
        return {k[:-4]: {"value": m[k[:-4]], "low": m[k], "high": m[k[:-4] + "_high"]} for k in m
                if k.endswith("_low") and k[:-4] in m and k[:-4] + "_high" in m}

    def scored(self, objectives: Sequence[str], directions: Sequence[str]) -> "Outcome":
        """With the values Optuna stores: the objectives when finished, the worst values when infeasible (so the
        sampler learns where the feasible region is), none otherwise."""
        if self.status is Status.INFEASIBLE:
            values = [0.0 if loss_sign(d) < 0 else float(self.metrics[m]) if finite(self.metrics.get(m))
                      else WORST_COST for m, d in zip(objectives, directions)]
            return replace(self, values=tuple(values))
        if self.status is not Status.OK:
            return replace(self, values=None)
        values = [self.metrics.get(m) for m in objectives]
        if all(finite(v) for v in values):
            return replace(self, values=tuple(float(v) for v in values))
        return replace(self, status=Status.ERROR, reason="error: non-finite objective values", values=None)

    def reused(self, number: int) -> "Outcome":
        """This outcome told to a later trial of the same architecture, which is not trained again."""
        head = self.reason if self.status is Status.PRUNED else "ok"
        return Outcome(self.status, f"{head} (same architecture as trial {number}, not trained again)",
                       metrics=self.metrics, costs=self.costs, curve=self.curve)


@dataclass(frozen=True)
class Proposal:
    """One design to evaluate: the proxy network ``arch`` (trained) and the ``deployed`` one (measured), or a timm
    model; with what is known before training: constraint values, why it is infeasible (with its deployed
    ``cost_metrics``), a ``known`` result, or the Optuna trial id of a running trial of it to ``wait_for``."""

    kind: str = "search"  # "search" | "reference"
    name: str | None = None  # a reference's name
    arch: ArchConfig | None = None
    deployed: ArchConfig | None = None
    timm_model: str | None = None
    proxy: Mapping[str, Any] = field(default_factory=dict)  # the spec's proxy section, as JSON
    constraints: Mapping[str, float] = field(default_factory=dict)  # the spec's, then "buildable" (<= 0 holds)
    infeasible: str | None = None
    cost_metrics: Mapping[str, Any] = field(default_factory=dict)
    known: Outcome | None = None
    wait_for: int | None = None

    @property
    def arch_hash(self) -> str | None:
        return self.arch.hash if self.arch is not None else None

    @property
    def target(self) -> ArchConfig | str:
        """What is trained: the proxy network, or the timm model's name."""
        return self.arch if self.arch is not None else str(self.timm_model)

    def attrs(self) -> dict[str, Any]:
        """The user attributes a trial of this proposal is stored with."""
        out: dict[str, Any] = {"kind": self.kind, "reference_name": self.name, "timm_model": self.timm_model,
                               "arch": self.arch.to_dict() if self.arch else None, "arch_hash": self.arch_hash,
                               "deployed_arch": self.deployed.to_dict() if self.deployed else None,
                               "proxy": dict(self.proxy) or None, "constraints": list(self.constraints.values()) or None}
        return {k: v for k, v in out.items() if v is not None}

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "timm_model": self.timm_model,
                "arch": self.arch.to_dict() if self.arch else None,
                "deployed": self.deployed.to_dict() if self.deployed else None, "proxy": dict(self.proxy),
                "constraints": dict(self.constraints), "infeasible": self.infeasible,
                "cost_metrics": dict(self.cost_metrics), "known": self.known.to_json() if self.known else None,
                "wait_for": self.wait_for}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Proposal":
        d = dict(d)
        for key in ("arch", "deployed"):
            d[key] = ArchConfig.from_dict(d[key]) if d.get(key) else None
        d["known"] = Outcome.from_json(d["known"]) if d.get("known") else None
        return cls(**d)


# cost key -> metric name (docs/CONTRACTS.md)
COST_METRICS = {"params": "params", "macs": "macs", "peak_memory_bytes": "memory",
                "throughput_img_s": "throughput_img_s", "throughput_ratio": "throughput_ratio",
                "latency_highres_ms": "latency_highres"}


def paired_throughput(costs: Mapping[str, Any], reference_img_s: float | None = None) -> Interval | None:
    """The speed objective: median per-repeat ratio to the reference measured alongside x ``reference_img_s`` (the
    study's scale, else this measurement's reference median): drift moves both alike. None without ratios."""
    ratios = costs.get("ratio_samples")
    scale = reference_img_s or costs.get("reference_throughput")
    if not ratios or not scale:
        return None
    return median_interval(ratios).scaled(float(scale))


def cost_metrics(costs: Mapping[str, Any], reference_img_s: float | None = None) -> dict[str, float]:
    """The metrics named in CONTRACTS.md from a costs dict (absent values left out); ``throughput`` is paired
    (`paired_throughput`) when the costs have a reference, else the images/s measured."""
    out = {m: costs[k] for k, m in COST_METRICS.items() if costs.get(k) is not None}
    if "throughput_img_s" in out:
        paired = paired_throughput(costs, reference_img_s)
        out["throughput"] = paired.value if paired is not None else out["throughput_img_s"]
    return out


def cost_intervals(costs: Mapping[str, Any], reference_img_s: float | None = None) -> dict[str, dict]:
    """90% intervals of the throughput metrics (as `Interval.to_dict`), for those the costs have."""
    out: dict[str, dict] = {}
    raw = costs.get("throughput_img_s_interval")
    if raw:
        out["throughput_img_s"] = out["throughput"] = raw
    paired = paired_throughput(costs, reference_img_s)
    if paired is not None:
        out["throughput"] = paired.to_dict()
    for key in ("throughput_ratio", "reference_throughput"):
        if costs.get(f"{key}_interval"):
            out[key] = costs[f"{key}_interval"]
    return out


def interval_metrics(intervals: Mapping[str, Mapping]) -> dict[str, float]:
    """Intervals as plain metrics, ``<metric>_low`` and ``<metric>_high``: how a study stores them."""
    return {f"{m}_{end}": float(iv[end]) for m, iv in intervals.items() for end in ("low", "high")}


def measured_metrics(costs: Mapping[str, Any], reference_img_s: float | None = None) -> dict[str, float]:
    """The cost metrics of a measurement with the interval of each (`cost_metrics`, `cost_intervals`)."""
    return {**cost_metrics(costs, reference_img_s), **interval_metrics(cost_intervals(costs, reference_img_s))}


def accuracy_metrics(accuracy: float, loss: float, epochs: int, n_val: int,
                     seed_noise: float | None = None) -> dict[str, float]:
    """Accuracy, loss and epochs after a training, with the accuracy's interval (`accuracy_interval`)."""
    out = {"accuracy": accuracy, "loss": loss, "epochs": epochs}
    if math.isfinite(accuracy):
        out.update(interval_metrics({"accuracy": accuracy_interval(accuracy, n_val, seed_noise).to_dict()}))
    return out
