"""The Ray Tune function trainable: one proxy evaluation of one sampled architecture.

Runs in a Ray worker. Reports one result per epoch (``epoch``, ``accuracy``, ``loss`` and every
objective, so the scheduler can rank trials at a rung) and a last result with ``final=True``,
``status`` and everything the searcher stores in the study.
"""
from __future__ import annotations

import logging
import traceback
from typing import Any

log = logging.getLogger(__name__)


def run_trial(config: dict, settings: dict) -> None:
    """Ray function trainable. ``settings``: proxy, throughput, constraints, objectives, cache_dir."""
    from ray import tune

    objectives = settings["objectives"]
    base = {"arch": config.get("arch"), "arch_hash": config.get("arch_hash"),
            "deployed_arch": config.get("deployed_arch"), "timm_model": config.get("timm_model"),
            "proxy": settings["proxy"]}
    if config.get("infeasible"):
        tune.report({**base, "final": True, "status": "infeasible", "status_reason": config["infeasible"],
                     "metrics": config.get("cost_metrics", {}), **_flat(objectives, config.get("cost_metrics", {}))})
        return
    if config.get("cached_result"):
        cached = dict(config["cached_result"])
        tune.report({**cached, **base, "final": True})
        return
    if config.get("wait_for_trial_id") is not None:  # the same architecture is being trained by another trial
        reused = wait_for_trial(settings, config["wait_for_trial_id"])
        if reused is not None:
            tune.report({**reused, **base, "final": True})
            return
    if settings.get("noop"):  # orchestration-overhead benchmark: no evaluation at all
        metrics = {m: 1.0 for m in objectives}
        tune.report({**base, "final": True, "status": "ok", "status_reason": "ok", "metrics": metrics,
                     "epoch": 1, **metrics})
        return
    try:
        from wfsearch.models import ArchConfig
        from wfsearch.proxy.evaluate import evaluate_arch
        from wfsearch.study import first_violation

        target = ArchConfig.from_dict(config["arch"]) if config.get("arch") else config["timm_model"]
        curve: list[dict] = []

        def report(epoch: int, metrics: dict[str, Any]) -> bool:
            curve.append({"epoch": epoch, "accuracy": metrics.get("accuracy"), "loss": metrics.get("loss")})
            tune.report({**base, "final": False, "status": "running", "epoch": epoch, "curve": list(curve),
                         "metrics": dict(metrics), **_flat(objectives, metrics)})
            return False

        constraints = settings.get("constraints", [])
        result = evaluate_arch(target, settings["proxy"], settings["throughput"], report=report,
                               reject=lambda costs: first_violation(constraints, costs),
                               cache_dir=settings.get("cache_dir"), reference_img_s=settings.get("reference_img_s"),
                               seed_noise=settings.get("seed_noise"))
        tune.report({**base, "final": True, "status": result.status, "status_reason": result.reason,
                     "metrics": result.metrics, "costs": result.costs, "curve": result.curve,
                     "epoch": result.curve[-1]["epoch"] if result.curve else 0,
                     **_flat(objectives, result.metrics)})
    except Exception as e:  # a broken trial is recorded, never takes the search down
        if type(e).__name__ in ("StopTrial", "TuneError"):
            raise
        log.error("trial failed: %s", traceback.format_exc())
        tune.report({**base, "final": True, "status": "error", "status_reason": f"error: {type(e).__name__}: {e}"})


WAIT_FOR_TRIAL_S = 1800.0


def wait_for_trial(settings: dict, trial_id: int, poll_s: float = 0.02, max_poll_s: float = 1.0,
                   timeout_s: float | None = None) -> dict | None:
    """Wait (at most ``timeout_s``, default ``settings["wait_for_trial_s"]`` or 30 min) until the Optuna
    trial ``trial_id`` has finished; its result to reuse when it completed a feasible evaluation, else
    None (it was pruned, failed or is still running at the deadline: this trial then evaluates the
    architecture itself, as a later re-sample of it would)."""
    import time

    from wfsearch.study import TrialRecord, cached_result, open_storage

    timeout_s = float(settings.get("wait_for_trial_s", WAIT_FOR_TRIAL_S)) if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s
    storage = open_storage(settings["storage"], create=False)
    while True:
        frozen = storage.get_trial(trial_id)
        if frozen.state.is_finished():
            break
        if time.monotonic() >= deadline:
            log.warning("trial %s still runs after %.0f s: evaluating the same architecture here", frozen.number,
                        timeout_s)
            return None
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
        poll_s = min(max_poll_s, poll_s * 1.5)  # quick for short trials, one read a second for long ones
    record = TrialRecord.from_trial(frozen)
    if not record.trained:
        log.info("trial %s ended %s (%s): evaluating the architecture here", record.number, record.state.name,
                 record.reason)
        return None
    return cached_result(record, settings.get("max_epochs", 1))


def _flat(objectives: list[str], metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for m in objectives:
        v = metrics.get(m)
        if isinstance(v, (int, float)):
            out[m] = float(v)
    return out
