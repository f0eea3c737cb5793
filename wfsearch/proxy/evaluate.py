"""One trial's evaluation, independent of Ray: measure costs first, then the proxy training.

    result = evaluate_arch(arch, spec.proxy, spec.throughput, report=on_epoch, cache_dir="studies/x/cache")
    result.status, result.metrics["accuracy"], result.metrics["throughput_ratio"], result.curve

Costs (params, MACs, peak memory, throughput and its ratio to the reference model) are measured
*before* training, in the throughput section's setting, so cost constraints can reject an
architecture without training it (`measure_arch` alone does only that) and every per-epoch report
already carries them. Divergence and out-of-memory come back as a status, never as an exception.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from wfsearch.errors import UserError
from wfsearch.space import ProxySpec, validate_model

from .data import check_root, load_dataset
from .measure import build_target, measure_arch
from .uncertainty import Interval, accuracy_interval, median_interval
from .train import ReportFn, is_oom, seed_everything, train_proxy

log = logging.getLogger(__name__)

# cost key -> metric name (docs/CONTRACTS.md)
COST_METRICS = {"params": "params", "macs": "macs", "peak_memory_bytes": "memory", "throughput": "throughput",
                "throughput_ratio": "throughput_ratio", "latency_highres_ms": "latency_highres"}


@dataclass
class EvalResult:
    """What one evaluation produced (see docs/CONTRACTS.md for the names)."""

    status: str  # ok | pruned | diverged | oom | infeasible | error
    reason: str  # "ok", "pruned at epoch E", "diverged (...)", "oom: ...", "infeasible: ...", "error: ..."
    metrics: dict[str, Any] = field(default_factory=dict)  # accuracy, loss, throughput, throughput_ratio, params, ...
    curve: list[dict[str, Any]] = field(default_factory=list)  # [{"epoch", "accuracy", "loss"}]
    costs: dict[str, Any] = field(default_factory=dict)  # params, macs, activation_bytes, peak_memory_bytes, ...
    proxy: dict[str, Any] = field(default_factory=dict)
    # 90% intervals of metrics (`Interval.to_dict`): throughput, throughput_raw, throughput_ratio, accuracy
    intervals: dict[str, dict] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # measure, train, total
    train_images_per_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def paired_throughput(costs: dict[str, Any], reference_img_s: float | None = None) -> Interval | None:
    """The speed objective: the median of the per-repeat ratios to the reference measured alongside,
    times ``reference_img_s`` (the study's pooled median reference images/s; None: this measurement's
    own reference median), so the unit stays images/s but a machine that is faster or slower during
    this trial than during another moves both models alike and leaves the value where it was.
    None without a reference (or for costs measured before per-repeat values were kept)."""
    ratios = costs.get("ratio_samples")
    scale = reference_img_s or costs.get("reference_throughput")
    if not ratios or not scale:
        return None
    return median_interval(ratios).scaled(float(scale))


def cost_metrics(costs: dict[str, Any], reference_img_s: float | None = None) -> dict[str, float]:
    """The metrics named in CONTRACTS.md from a costs dict (absent values left out).

    ``throughput`` is the paired speed objective (`paired_throughput`) when the costs have a
    reference, ``throughput_raw`` always the images/s measured in this trial.
    """
    out = {m: costs[k] for k, m in COST_METRICS.items() if costs.get(k) is not None}
    if "throughput" in out:
        out["throughput_raw"] = out["throughput"]
        paired = paired_throughput(costs, reference_img_s)
        if paired is not None:
            out["throughput"] = paired.value
    return out


def cost_intervals(costs: dict[str, Any], reference_img_s: float | None = None) -> dict[str, dict]:
    """90% intervals of the throughput metrics (as `Interval.to_dict`), for those the costs have."""
    out: dict[str, dict] = {}
    raw = costs.get("throughput_interval")
    if raw:
        out["throughput_raw"] = out["throughput"] = raw
    paired = paired_throughput(costs, reference_img_s)
    if paired is not None:
        out["throughput"] = paired.to_dict()
    for key in ("throughput_ratio", "reference_throughput"):
        if costs.get(f"{key}_interval"):
            out[key] = costs[f"{key}_interval"]
    return out


def interval_metrics(intervals: dict[str, dict]) -> dict[str, float]:
    """Intervals as plain metrics, ``<metric>_low`` and ``<metric>_high``: how a study stores them."""
    out = {}
    for metric, iv in intervals.items():
        out[f"{metric}_low"], out[f"{metric}_high"] = float(iv["low"]), float(iv["high"])
    return out


def evaluate_arch(arch: Any, proxy: Any, throughput: Any = None, report: ReportFn | None = None, *,
                  reject: Callable[[dict[str, float]], str | None] | None = None, cache_dir: str | None = None,
                  measure: bool = True, reference_img_s: float | None = None,
                  seed_noise: float | None = None) -> EvalResult:
    """Evaluate an `ArchConfig` (or its dict, or a timm model name): costs, then proxy training.

    ``proxy``/``throughput`` are the spec's sections (`ProxySpec`, `ThroughputSpec`) or their JSON dicts.
    ``report(epoch, metrics)`` is called after every epoch with ``accuracy``, ``loss`` and the cost metrics;
    answering True stops the run (status ``pruned``). ``reject(costs)``
    returning a reason (a violated cost constraint) ends it as ``infeasible`` before training. ``cache_dir``
    holds the measurement cache (and decoded image-folder/CIFAR datasets) shared by processes.
    A user's mistake (a missing dataset folder) raises `UserError`; anything else is a status.
    ``reference_img_s`` scales the paired speed objective (`paired_throughput`); ``seed_noise``
    (the accuracy's standard deviation between training seeds, when known) widens the accuracy's
    interval beyond the Wilson interval of the validation size.
    """
    t0 = time.perf_counter()
    proxy = proxy if isinstance(proxy, ProxySpec) else validate_model(ProxySpec, proxy, "spec", ("proxy",))
    result = EvalResult("ok", "ok", proxy=proxy.model_dump(mode="json"))
    check_root(proxy)  # a missing dataset folder fails before the (long) measurement
    try:
        if measure and throughput is not None:
            try:
                result.costs = measure_arch(arch, throughput, cache=cache_dir)
            except ValueError as e:  # the architecture cannot be built at the target resolution
                if isinstance(e, UserError):
                    raise
                return _finish(result, "infeasible", f"infeasible: {e}", t0)
        result.seconds["measure"] = time.perf_counter() - t0
        costs = cost_metrics(result.costs, reference_img_s)
        result.metrics.update(costs)
        result.intervals.update(cost_intervals(result.costs, reference_img_s))
        result.metrics.update(interval_metrics(result.intervals))
        violated = reject(costs) if reject is not None else None
        if violated:
            return _finish(result, "infeasible", f"infeasible: {violated}", t0)

        data = load_dataset(proxy, cache_dir if proxy.dataset.name not in ("synthetic", "digits") else None)
        seed_everything(proxy.seed)
        try:
            model = build_target(arch, proxy.img_size, num_classes=data.num_classes)[0]
        except ValueError as e:
            if isinstance(e, UserError):
                raise
            return _finish(result, "infeasible", f"infeasible: at the proxy resolution: {e}", t0)

        def on_epoch(epoch: int, metrics: dict[str, float]) -> bool | None:
            if report is None:
                return None
            try:
                return report(epoch, {**costs, **metrics})
            except BaseException as e:  # the caller's own exception (e.g. a scheduler's stop): theirs to see
                raise _ReportRaised() from e

        t_train = time.perf_counter()
        tr = train_proxy(model, data, proxy, on_epoch)
        result.seconds["train"] = time.perf_counter() - t_train
        result.train_images_per_s = tr.images_per_s if math.isfinite(tr.images_per_s) else None
        result.curve = [{"epoch": c["epoch"], "accuracy": c["accuracy"], "loss": c["loss"]} for c in tr.curve]
        if tr.curve:
            result.metrics.update(accuracy=tr.accuracy, loss=tr.loss, epochs=tr.epochs)
            if math.isfinite(tr.accuracy):
                result.intervals["accuracy"] = accuracy_interval(tr.accuracy, len(data.val.labels),
                                                                 seed_noise).to_dict()
                result.metrics.update(interval_metrics({"accuracy": result.intervals["accuracy"]}))
        return _finish(result, tr.status, tr.reason, t0)
    except UserError:
        raise
    except _ReportRaised as e:
        raise e.__cause__ from None
    except Exception as e:
        if is_oom(e):
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return _finish(result, "oom", f"oom: {str(e).splitlines()[0][:200]}", t0)
        log.error("evaluation failed: %s", traceback.format_exc())
        return _finish(result, "error", f"error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", t0)


class _ReportRaised(Exception):
    """Carries an exception raised by the ``report`` callback through the trainer, unchanged."""


def _finish(result: EvalResult, status: str, reason: str, t0: float) -> EvalResult:
    result.status, result.reason = status, reason
    result.seconds["total"] = time.perf_counter() - t0
    if status != "ok":
        log.info("evaluation ended: %s", reason)
    return result
