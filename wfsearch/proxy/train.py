"""The proxy trainer: a short, seeded training of one model on an in-memory `ProxyData`.

timm's AdamW and per-step cosine schedule with warm-up, label smoothing, gradient clipping, bf16 autocast
on CUDA. After every epoch ``report(epoch, metrics)`` may answer True to stop (pruning). A non-finite loss
ends the run as ``diverged``, out-of-memory as ``oom``; neither raises. On CPU the same seed and thread
count give the same accuracy bit for bit.
"""
from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from wfsearch.space import ProxySpec
from wfsearch.study import Status

from .data import ProxyData, TensorBatches, augment_pad
from .allocator import release_memory, steady_allocations
from .devicelock import device_lock
from .measure import autocast, resolve_device, resolve_dtype

log = logging.getLogger(__name__)

# report(epoch, metrics) -> True to stop now (pruned); None/False to go on
ReportFn = Callable[[int, Any], "bool | None"]


@dataclass
class TrainResult:
    """What a proxy training produced: status, reason, the per-epoch curve and speed."""

    status: Status = Status.OK
    reason: str = "ok"
    curve: list[dict[str, float]] = field(default_factory=list)  # {"epoch", "accuracy", "loss", ...}
    epochs: int = 0
    train_seconds: float = 0.0  # time in training steps (validation excluded)
    train_images: int = 0
    seconds: float = 0.0  # whole run, validation included

    @property
    def images_per_s(self) -> float:
        return self.train_images / self.train_seconds if self.train_seconds > 0 else float("nan")

    @property
    def accuracy(self) -> float:
        return self.curve[-1]["accuracy"] if self.curve else float("nan")

    @property
    def loss(self) -> float:
        return self.curve[-1]["loss"] if self.curve else float("nan")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices): call before building the model."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def is_oom(exc: BaseException) -> bool:
    """An out-of-memory error of CUDA or of the CPU allocator."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    msg = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg
                                              or "not enough memory" in msg)


def param_groups(model: nn.Module, weight_decay: float, predictor_lr_scale: float = 1.0) -> list[dict]:
    """timm's optimizer groups (no weight decay on norms, biases, ``no_weight_decay()``), each split off the
    predictors' parameters (``.predictor.``), whose ``lr_scale`` is ``predictor_lr_scale``."""
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            decay = p.ndim > 1 and not name.endswith(".bias") and name not in skip
            groups.setdefault((decay, ".predictor." in name), []).append(p)
    return [{"params": ps, "weight_decay": weight_decay if decay else 0.0,
             **({"lr_scale": predictor_lr_scale} if pred and predictor_lr_scale != 1.0 else {})}
            for (decay, pred), ps in groups.items()]


def train_dtype(proxy: ProxySpec, device: torch.device) -> torch.dtype:
    if proxy.dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return resolve_dtype(proxy.dtype)


@torch.inference_mode()
def evaluate(model: nn.Module, batches: TensorBatches, device: torch.device, dtype: torch.dtype) -> dict[str, float]:
    """Top-1 accuracy in [0, 1] and mean cross-entropy (no smoothing) over ``batches``."""
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    n = 0
    lock = device_lock(device)
    for x, y in batches:
        with lock.shared(), autocast(device, dtype):
            out = model(x)
        out = out.float()
        loss_sum += F.cross_entropy(out, y, reduction="sum")
        correct += (out.argmax(-1) == y).sum()
        n += len(y)
    return {"accuracy": correct.item() / max(n, 1), "loss": loss_sum.item() / max(n, 1)}


def train_proxy(model: nn.Module, data: ProxyData, proxy: ProxySpec,
                report: ReportFn | None = None) -> TrainResult:
    """Train ``model`` on ``data`` for ``proxy.max_epochs``, reporting after every epoch; divergence and
    out-of-memory come back as the result's status."""
    steady_allocations()
    previous_threads = torch.get_num_threads()
    if proxy.num_threads:
        torch.set_num_threads(proxy.num_threads)
    try:
        return _train(model, data, proxy, report)
    finally:
        torch.set_num_threads(previous_threads)
        release_memory()


def _train(model: nn.Module, data: ProxyData, s: ProxySpec, report: ReportFn | None) -> TrainResult:
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2

    t_start = time.perf_counter()
    result = TrainResult()
    device = resolve_device(s.device)
    dtype = train_dtype(s, device)
    torch.manual_seed(s.seed)  # dropout / drop path; the data order has its own generator
    try:
        model.to(device)
        n_train = len(data.train)
        train_batches = TensorBatches(data.train, data.mean, data.std, s.batch_size, device, shuffle=True,
                                      augment=data.augment, pad=augment_pad(data), seed=s.seed,
                                      drop_last=n_train >= s.batch_size)
        val_batches = TensorBatches(data.val, data.mean, data.std, s.eval_batch_size or 2 * s.batch_size, device)
        steps_per_epoch = len(train_batches)
        optimizer = create_optimizer_v2(param_groups(model, s.weight_decay, s.predictor_lr_scale), opt=s.optimizer,
                                        lr=s.lr, weight_decay=s.weight_decay)
        scheduler, _ = create_scheduler_v2(optimizer, sched="cosine", num_epochs=s.max_epochs, min_lr=s.min_lr,
                                           warmup_lr=min(1e-6, s.lr), warmup_epochs=s.warmup_epochs,
                                           step_on_epochs=False, updates_per_epoch=steps_per_epoch)
        criterion = nn.CrossEntropyLoss(label_smoothing=s.label_smoothing)
        params = [p for p in model.parameters() if p.requires_grad]
        check_every = 1 if device.type == "cpu" else 25  # a finiteness check syncs a GPU; batch them there
        step = 0
        lock = device_lock(device)  # a measurement on this device pauses the steps (see devicelock)
        for epoch in range(1, s.max_epochs + 1):
            model.train()
            t0 = time.perf_counter()
            loss_sum = torch.zeros((), device=device)
            nonfinite = torch.zeros((), dtype=torch.bool, device=device)
            for i, (x, y) in enumerate(train_batches, 1):
                with lock.shared():
                    with autocast(device, dtype):
                        loss = criterion(model(x), y)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if s.grad_clip:
                        nn.utils.clip_grad_norm_(params, s.grad_clip)
                    optimizer.step()
                step += 1
                scheduler.step_update(num_updates=step)
                loss = loss.detach().float()
                loss_sum += loss
                nonfinite |= ~torch.isfinite(loss)
                if i % check_every == 0 and nonfinite.item():
                    return _stop(result, Status.DIVERGED, f"diverged (non-finite loss at epoch {epoch}, step {i})",
                                 t_start)
            train_loss = loss_sum.item() / max(steps_per_epoch, 1)  # syncs the device
            if nonfinite.item():
                return _stop(result, Status.DIVERGED, f"diverged (non-finite loss at epoch {epoch})", t_start)
            dt = time.perf_counter() - t0
            result.train_seconds += dt
            result.train_images += steps_per_epoch * s.batch_size if train_batches.drop_last else n_train
            metrics = evaluate(model, val_batches, device, dtype)
            if not math.isfinite(metrics["loss"]):
                return _stop(result, Status.DIVERGED, f"diverged (non-finite validation loss at epoch {epoch})", t_start)
            metrics.update(train_loss=train_loss, lr=optimizer.param_groups[0]["lr"], epoch_seconds=dt)
            result.curve.append({"epoch": epoch, **metrics})
            result.epochs = epoch
            log.debug("epoch %d: %s", epoch, metrics)
            if report is not None and report(epoch, dict(metrics)):
                return _stop(result, Status.PRUNED, f"pruned at epoch {epoch}", t_start)
    except Exception as e:
        if not is_oom(e):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return _stop(result, Status.OOM, f"oom: {str(e).splitlines()[0][:200]}", t_start)
    return _stop(result, None, "", t_start)


def _stop(result: TrainResult, status: Status | None, reason: str, t_start: float) -> TrainResult:
    if status is not None:
        log.info("proxy training stopped: %s", reason)
        result.status, result.reason = status, reason
    result.seconds = time.perf_counter() - t_start
    return result
