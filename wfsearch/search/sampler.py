"""The sampler and the define-by-run function that `wfsearch run` and `wfsearch simulate` share.

Ray-free (Optuna only), so that the table simulator replays the real sampling without importing Ray:
`make_sampler` builds the spec's seeded Optuna sampler, `SpaceFunction` turns one Optuna trial into
an architecture (knobs, deployed costs, constraints, a repeat's known result).
"""
from __future__ import annotations

from typing import Any

import optuna

from wfsearch.study import CONSTRAINTS_ATTR, constraint_values

NATIVE_CONSTRAINTS = hasattr(optuna.trial.Trial, "set_constraint")


def objective_names(spec: Any) -> tuple[list[str], list[str]]:
    objs = spec.study.objectives
    return [o.name for o in objs], [o.direction for o in objs]


def make_sampler(spec: Any, n_constraints: int) -> optuna.samplers.BaseSampler:
    name, seed, trials = spec.study.sampler, spec.study.seed, spec.study.trials

    def constraints_func(trial: optuna.trial.FrozenTrial) -> list[float]:
        return list(trial.user_attrs.get(CONSTRAINTS_ATTR) or [0.0] * n_constraints)

    if NATIVE_CONSTRAINTS:  # Optuna >= 5: samplers read the constraints each trial sets itself
        constraints_func = None  # noqa: F811

    if name == "auto":
        name = "tpe" if trials < 100 else "nsga2"
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, constraints_func=constraints_func,
                                             population_size=max(4, min(50, trials // 3)))
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constraints_func=constraints_func, multivariate=True,
                                          n_startup_trials=max(4, min(10, trials // 3)))
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, constraints_func=constraints_func)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(spec.grid(), seed=seed)
    raise AssertionError(f"unknown sampler {name!r}")  # the spec validates names


class SpaceFunction:
    """The define-by-run function Ray's `OptunaSearch` (or the simulator) calls for every new trial."""

    def __init__(self, spec: Any, constraints: list[dict], known: dict[str, dict],
                 inflight: dict[str, int] | None = None):
        self.spec, self.constraints, self.known = spec, constraints, known
        # architectures being trained right now: arch hash -> the Optuna trial id training it
        self.inflight = inflight if inflight is not None else {}
        # what follows from an architecture alone (its dict, hash, deployed costs): computed once per
        # architecture, since a search re-samples the same ones many times
        self._derived: dict[Any, tuple] = {}

    def _derive(self, arch: Any) -> tuple:
        from wfsearch.space import design_costs

        if arch not in self._derived:
            try:  # costs are those of the deployed model: the throughput section's scale and resolution
                deployed = self.spec.throughput.deployed(arch)
                self._derived[arch] = (arch.to_dict(), arch.hash, deployed.to_dict(),
                                       design_costs(self.spec, arch), None)
            except ValueError as e:
                self._derived[arch] = (arch.to_dict(), None, None, None, str(e))
        return self._derived[arch]

    def __call__(self, trial: Any) -> dict[str, Any]:
        from wfsearch.space import sample_arch

        sample = sample_arch(self.spec, trial)
        if sample.arch is None:
            self._constrain(trial, [1.0] * len(self.constraints), buildable=False)
            return {"infeasible": f"infeasible: {sample.infeasible}", "arch": None}
        arch_dict, arch_hash, deployed, metrics, error = self._derive(sample.arch)
        if error is not None:
            self._constrain(trial, [1.0] * len(self.constraints), buildable=False)
            return {"infeasible": f"infeasible: at the deployment scale: {error}", "arch": dict(arch_dict)}
        values, violated = constraint_values(self.constraints, metrics)
        self._constrain(trial, values, buildable=True)
        out = {"arch": dict(arch_dict), "arch_hash": arch_hash, "deployed_arch": dict(deployed)}
        trial.set_user_attr("arch_hash", arch_hash)
        if violated:
            return {**out, "infeasible": f"infeasible: {violated}", "cost_metrics": dict(metrics)}
        if arch_hash in self.known:
            out["cached_result"] = self.known[arch_hash]
        elif arch_hash in self.inflight:  # sampled again while a trial trains it: wait for that one
            out["wait_for_trial_id"] = self.inflight[arch_hash]
        elif getattr(trial, "_trial_id", None) is not None:
            self.inflight[arch_hash] = trial._trial_id
        return out

    def _constrain(self, trial: Any, values: list[float], buildable: bool) -> None:
        """Constraint values (<= 0 feasible) for the sampler: the spec's, then whether it builds."""
        values = [*values, 0.0 if buildable else 1.0]
        trial.set_user_attr(CONSTRAINTS_ATTR, values)
        if NATIVE_CONSTRAINTS:
            for c, v in zip([*self.constraints, None], values):
                trial.set_constraint("buildable" if c is None else f"{c['metric']} {c['op']} {c['value']:g}", v)
