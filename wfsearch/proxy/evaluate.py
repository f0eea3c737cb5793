"""One trial's evaluation, independent of Ray: measure costs first, then the proxy training.

Costs of the deployed network are measured *before* training, so cost constraints can reject an
architecture untrained and every per-epoch report carries them. Divergence and out-of-memory come back
as a status. The result is the `wfsearch.study.Outcome` a study stores.
"""
from __future__ import annotations

import logging
import math
import time
import traceback
from typing import Any, Callable

import torch

from wfsearch.arch import ArchConfig
from wfsearch.errors import UserError
from wfsearch.space import ProxySpec, ThroughputSpec, validate_model
from wfsearch.study import Outcome, Status
from wfsearch.study.outcome import accuracy_metrics, measured_metrics

from .data import check_root, load_dataset
from .measure import build_target, measure_arch
from .train import ReportFn, is_oom, seed_everything, train_proxy

log = logging.getLogger(__name__)


def evaluate_arch(arch: Any, proxy: Any, throughput: Any = None, report: ReportFn | None = None, *,
                  reject: Callable[[dict[str, float]], str | None] | None = None, cache_dir: str | None = None,
                  measure: bool = True, reference_img_s: float | None = None, seed_noise: float | None = None,
                  deployed: Any = None) -> Outcome:
    """Evaluate an `ArchConfig` (or its dict, or a timm model name): costs, then proxy training.

    ``proxy``/``throughput``: the spec's sections or their JSON dicts. ``deployed``: the network measured
    (default ``throughput.deployed(arch)``). ``report(epoch, partial)`` gets the `Outcome` the trial would
    have if pruned there; True stops the run (``pruned``). ``reject(costs)`` returning a reason ends it as
    ``infeasible`` before training. ``cache_dir`` holds the measurement and dataset caches. A user's mistake
    raises `UserError`; anything else is a status. ``reference_img_s`` scales the paired speed objective;
    ``seed_noise`` (the accuracy's std between seeds) widens the accuracy's interval.
    """
    t0 = time.perf_counter()
    proxy = proxy if isinstance(proxy, ProxySpec) else validate_model(ProxySpec, proxy, "spec", ("proxy",))
    check_root(proxy)  # a missing dataset folder fails before the (long) measurement
    seconds: dict[str, float] = {}
    costs: dict[str, Any] = {}
    metrics: dict[str, Any] = {}

    def finish(status: Status, reason: str, curve: tuple = ()) -> Outcome:
        seconds["total"] = time.perf_counter() - t0
        if status is not Status.OK:
            log.info("evaluation ended: %s", reason)
        return Outcome(status, reason, metrics=metrics, costs=costs, curve=curve, seconds=seconds)

    try:
        if measure and throughput is not None:
            try:
                if deployed is None and not isinstance(arch, str):
                    s = throughput if isinstance(throughput, ThroughputSpec) else \
                        validate_model(ThroughputSpec, throughput, "spec", ("throughput",))
                    deployed = s.deployed(ArchConfig.from_dict(arch) if isinstance(arch, dict) else arch)
                costs.update(measure_arch(arch if deployed is None else deployed, throughput, cache=cache_dir))
            except ValueError as e:  # the architecture cannot be built at the target resolution
                if isinstance(e, UserError):
                    raise
                return finish(Status.INFEASIBLE, f"infeasible: {e}")
        seconds["measure"] = time.perf_counter() - t0
        metrics.update(measured_metrics(costs, reference_img_s))
        violated = reject(metrics) if reject is not None else None
        if violated:
            return finish(Status.INFEASIBLE, f"infeasible: {violated}")

        data = load_dataset(proxy, cache_dir if proxy.dataset.name not in ("synthetic", "digits") else None)
        seed_everything(proxy.seed)
        try:
            model = build_target(arch, proxy.img_size, num_classes=data.num_classes)[0]
        except ValueError as e:
            if isinstance(e, UserError):
                raise
            return finish(Status.INFEASIBLE, f"infeasible: at the proxy resolution: {e}")
        curve: list[dict[str, Any]] = []

        def on_epoch(epoch: int, epoch_metrics: dict[str, float]) -> bool | None:
            curve.append({"epoch": epoch, "accuracy": epoch_metrics["accuracy"], "loss": epoch_metrics["loss"]})
            if report is None:
                return None
            partial = Outcome(Status.PRUNED, f"pruned at epoch {epoch}", metrics={**metrics, **epoch_metrics},
                              costs=costs, curve=curve)
            try:
                return report(epoch, partial)
            except BaseException as e:  # the caller's own exception (e.g. a scheduler's stop): theirs to see
                raise _ReportRaised() from e

        t_train = time.perf_counter()
        tr = train_proxy(model, data, proxy, on_epoch)
        seconds["train"] = time.perf_counter() - t_train
        if math.isfinite(tr.images_per_s):
            seconds["train_images_per_s"] = tr.images_per_s
        if tr.curve:
            metrics.update(accuracy_metrics(tr.accuracy, tr.loss, tr.epochs, len(data.val.labels), seed_noise))
        return finish(tr.status, tr.reason, tuple(curve))
    except UserError:
        raise
    except _ReportRaised as e:
        raise e.__cause__ from None
    except Exception as e:
        if is_oom(e):
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return finish(Status.OOM, f"oom: {str(e).splitlines()[0][:200]}")
        log.error("evaluation failed: %s", traceback.format_exc())
        return finish(Status.ERROR, f"error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")


class _ReportRaised(Exception):
    """Carries an exception raised by the ``report`` callback through the trainer, unchanged."""
