"""Sampling a spec into architectures (Optuna define-by-run): knobs whose ``when`` does not hold keep their
default; an architecture that cannot be built is an *infeasible* `Sample` with the reason, never an exception."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from wfsearch.arch import ArchConfig, cost
from wfsearch.errors import UserError
from wfsearch.suggest import did_you_mean

from .loader import parse_yaml
from .spec import ProxySpec, SpaceSpec, encode_choice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """One sampled point: the knob values, the architecture (None when infeasible) and why not."""

    params: dict[str, Any]
    arch: Optional[ArchConfig]
    infeasible: Optional[str] = None
    proxy: Optional[ProxySpec] = field(default=None, repr=False)

    @property
    def feasible(self) -> bool:
        return self.arch is not None


def sample_arch(spec: SpaceSpec, trial: Any) -> Sample:
    """Sample an architecture with ``trial.suggest_*``; ``Sample.params`` holds the decoded knob values (a
    placement as a list, where the trial stores JSON text). Equal params give equal ``arch.hash``."""
    values = spec.arch_defaults()
    params: dict[str, Any] = {}
    for name in spec.knobs:
        knob = spec.space[name]
        if knob.active(values):
            params[name] = values[name] = knob.suggest(trial, name)
    try:
        return Sample(params, ArchConfig(**values), None, spec.proxy)
    except ValueError as e:
        log.debug("infeasible sample %s: %s", params, e)
        return Sample(params, None, str(e), spec.proxy)


def arch_from_params(spec: SpaceSpec, params: dict[str, Any]) -> Sample:
    """Rebuild a sample from stored knob values (a trial's ``params``, decoded or as Optuna stores them)."""
    import optuna
    return sample_arch(spec, optuna.trial.FixedTrial({k: encode_choice(v) for k, v in params.items()}))


def load_designs(spec: SpaceSpec, path: str) -> list[dict[str, Any]]:
    """Known designs to evaluate first (Optuna's ``enqueue_trial``): a YAML list of knob mappings, each checked
    against the space; returned as Optuna stores the params. A mistake is one `UserError` line."""
    try:
        doc = parse_yaml(Path(path).read_text(), path)
    except OSError as e:
        raise UserError(f"--enqueue: {path}: cannot read it ({e.strerror or e})") from None
    if not isinstance(doc, list) or not all(isinstance(d, dict) for d in doc):
        raise UserError(f"{path}: a list of designs, each a mapping of knobs (- {{fc1_predictor: bilateral, ...}})")
    out = []
    for i, design in enumerate(doc):
        for k, v in design.items():
            if k not in spec.knobs:
                raise UserError(f"{path}: [{i}].{k}: not a knob of the space{did_you_mean(k, list(spec.knobs)) or ';'}"
                                f" its knobs are {list(spec.knobs)}")
            choices = spec.space[k].choice
            if choices is not None and encode_choice(v) not in [encode_choice(c) for c in choices]:
                raise UserError(f"{path}: [{i}].{k}: {v!r}: not one of the space's choices {choices}")
        try:
            sample = arch_from_params(spec, design)
        except ValueError as e:
            raise UserError(f"{path}: [{i}]: {str(e).splitlines()[0]}") from None
        if sample.arch is None:
            raise UserError(f"{path}: [{i}]: cannot be built: {sample.infeasible}")
        out.append({k: encode_choice(v) for k, v in sample.params.items()})
    return out


def random_samples(spec: SpaceSpec, n: int, seed: int = 0) -> list[Sample]:
    """``n`` samples drawn with Optuna's RandomSampler on an in-memory study."""
    import optuna
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" line for a scratch study
    try:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    finally:
        optuna.logging.set_verbosity(verbosity)
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(sample_arch(spec, trial))
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return out


def design_costs(spec: SpaceSpec, arch: ArchConfig) -> dict[str, float]:
    """The costs known before training, of the deployed network: params, MACs, and the memory of a training
    step (activations of a batch plus fp32 weights, gradients and AdamW state). ValueError if it cannot build."""
    c = cost(spec.throughput.deployed(arch))
    return {"params": c["params"], "macs": c["macs"],
            "memory": c["activation_bytes"] * spec.throughput.batch_size + 16 * c["params"]}
