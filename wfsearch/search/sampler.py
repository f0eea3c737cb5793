"""The sampler and the define-by-run function of a search (Optuna only): `make_sampler` builds the spec's seeded
sampler (``auto`` resolved once per study and kept with it), `SpaceFunction` turns an Optuna trial into a `Proposal`.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import optuna

from wfsearch.study import Outcome, Proposal, constraint_values, write_proposal
from wfsearch.study.optuna_api import trial_id

SAMPLER_ATTR = "sampler"  # the study attribute holding the resolved sampler


def objective_names(spec: Any) -> tuple[list[str], list[str]]:
    objs = spec.study.objectives
    return [o.name for o in objs], [o.direction for o in objs]


def resolve_sampler(spec: Any, stored: dict | None = None) -> dict[str, Any]:
    """The sampler ``stored`` with a study, else the spec's (``auto``: TPE below 100 trials, NSGA-II from 100)."""
    name, trials = spec.study.sampler, spec.study.trials
    if stored and stored.get("name") and spec.study.sampler in ("auto", stored["name"]):
        return dict(stored)
    if name == "auto":
        name = "tpe" if trials < 100 else "nsga2"
    if name == "nsga2":
        return {"name": name, "population_size": max(4, min(50, trials // 3))}
    if name == "tpe":
        return {"name": name, "n_startup_trials": max(4, min(10, trials // 3))}
    return {"name": name}


def make_sampler(spec: Any, resolved: dict | None = None, resumed_at: int = 0) -> optuna.samplers.BaseSampler:
    """The seeded Optuna sampler of `resolve_sampler` (``resolved`` as stored). The seed moves on by ``resumed_at``
    (the trials the study holds), so a resumed study draws new designs instead of replaying the first run's."""
    options = dict(resolved or resolve_sampler(spec))
    name, seed = options.pop("name"), (spec.study.seed + resumed_at) % 2**32
    if name == "grid":
        return optuna.samplers.GridSampler(spec.grid(), seed=seed)
    if name == "tpe":
        options["multivariate"] = True
    samplers = {"nsga2": optuna.samplers.NSGAIISampler, "tpe": optuna.samplers.TPESampler,
                "gp": optuna.samplers.GPSampler, "random": optuna.samplers.RandomSampler}
    return samplers[name](seed=seed, **options)  # the spec validates names


class SpaceFunction:
    """The define-by-run function: an asked trial -> the `Proposal` it evaluates (also written to it). ``known``:
    outcomes by arch hash for re-samples; ``inflight``: arch hash -> the trial id training it, to wait for."""

    def __init__(self, spec: Any, constraints: list[dict], known: dict[str, Outcome],
                 inflight: dict[str, int] | None = None):
        self.spec, self.constraints, self.known = spec, constraints, known
        self.inflight = inflight if inflight is not None else {}
        self.proxy = spec.proxy.model_dump(mode="json")
        self.names = [f"{c['metric']} {c['op']} {c['value']:g}" for c in constraints] + ["buildable"]
        # the deployed network and its costs: once per architecture (a search re-samples the same ones many times)
        self._derived: dict[Any, tuple] = {}

    def _derive(self, arch: Any) -> tuple:
        from wfsearch.space import design_costs

        if arch not in self._derived:
            try:  # costs are those of the deployed model: the throughput section's scale and resolution
                self._derived[arch] = (self.spec.throughput.deployed(arch), design_costs(self.spec, arch), None)
            except ValueError as e:
                self._derived[arch] = (None, None, str(e))
        return self._derived[arch]

    def __call__(self, trial: Any) -> Proposal:
        from wfsearch.space import sample_arch

        sample = sample_arch(self.spec, trial)
        unbuildable = dict(zip(self.names, [1.0] * len(self.names)))
        if sample.arch is None:
            p = Proposal(proxy=self.proxy, constraints=unbuildable, infeasible=f"infeasible: {sample.infeasible}")
        elif (derived := self._derive(sample.arch))[2] is not None:
            p = Proposal(arch=sample.arch, proxy=self.proxy, constraints=unbuildable,
                         infeasible=f"infeasible: at the deployment scale: {derived[2]}")
        else:
            deployed, metrics, _ = derived
            values, violated = constraint_values(self.constraints, metrics)
            p = Proposal(arch=sample.arch, deployed=deployed, proxy=self.proxy,
                         constraints=dict(zip(self.names, [*values, 0.0])))
            h = p.arch_hash
            if violated:
                p = replace(p, infeasible=f"infeasible: {violated}", cost_metrics=dict(metrics))
            elif h in self.known:
                p = replace(p, known=self.known[h])
            elif h in self.inflight:  # sampled again while a trial trains it: wait for that one
                p = replace(p, wait_for=self.inflight[h])
            elif trial_id(trial) is not None:  # an asked trial (a FixedTrial has no id)
                self.inflight[h] = trial_id(trial)
        write_proposal(trial, p)
        return p
