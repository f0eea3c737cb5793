"""The full trainer: runs a `Recipe` on one CPU, one GPU, or many under ``torchrun`` (DDP), from timm's parts.

Learning rates follow the global batch (``lr_base x batch_size x processes / lr_base_batch``). Each epoch
ends with an evaluation, a line in ``OUTPUT/metrics.jsonl`` and ``OUTPUT/last.pth`` (and ``best.pth``).
Randomness is reseeded from (seed, epoch, rank) every epoch, so a resumed run retraces an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

import wfsearch
from wfsearch.errors import UserError

from .data import build_datasets, build_loaders, usable_workers
from .recipe import Recipe, recipe_to_yaml

log = logging.getLogger(__name__)

# progress(iterable, total, description) -> iterable; the CLI passes a tqdm bar on the main process
Progress = Callable[[Iterable, int, str], Iterable]
# on_step({"epoch", "epochs", "step", "epoch_step", "steps_per_epoch", "loss", "lr", "images_per_s"})
StepHook = Callable[[dict[str, Any]], None]
CHECK_EVERY = 20  # optimizer steps between loss checks (each one waits for the device)


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class Distributed:
    """This process's place in the job (world 1 without torchrun)."""
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device: str = "auto") -> Distributed:
    """Join the torchrun job if there is one (NCCL on GPUs, gloo on CPU) and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        dev = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise UserError(f"--device: {device!r}: not a torch device; use auto, cpu or cuda") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"--device: {device!r}: CUDA is not available here; use auto or cpu")
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, device_id=dev if dev.type == "cuda" else None)
        log.info("rank %d/%d on %s (%s)", rank, world, dev, backend)
    return Distributed(rank=rank, world=world, local_rank=local_rank, device=dev)


@dataclass
class TrainResult:
    epochs: int  # epochs completed
    top1: float
    top5: float | None  # None with 5 classes or fewer
    val_loss: float
    train_loss: float | None
    best_top1: float
    output: Path
    history: list[dict[str, Any]] = field(default_factory=list)  # the metrics lines of this run

    @property
    def nothing_left(self) -> bool:  # resumed after its last epoch: no epoch was trained
        return not self.history


def _seed(seed: int, *keys: int) -> None:
    """Seed Python, NumPy (Mixup draws from it) and torch from (seed, *keys)."""
    import random
    s = int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def _autocast(device: torch.device, precision: str):
    bf16 = precision == "bf16"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def _all_sum(values: list[float], d: Distributed) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=d.device)
    if d.enabled:
        dist.all_reduce(t)
    return t.tolist()


def _save(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves a broken checkpoint


CHECKPOINT_KEYS = ("model", "epoch", "num_classes")


def load_checkpoint(path: str | Path, flag: str = "--resume") -> dict[str, Any]:
    """A checkpoint written by `train`, loaded with ``weights_only=True`` (a crafted file cannot run code);
    anything else is one line naming the file."""
    import pickle
    import re
    where = f"{flag}: {str(path)!r}"
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise UserError(f"{where}: the file is empty; not a wfsearch checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # garbage, truncated, not a torch file, or a pickle that would import or call code
        text = str(e)
        code = re.search(r"GLOBAL ([\w.]+)", text, re.IGNORECASE)
        if isinstance(e, pickle.UnpicklingError) and code:
            raise UserError(f"{where}: refused: its pickle would import or call {code.group(1)}; "
                            "a wfsearch checkpoint holds only tensors and plain values") from None
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(e).__name__).split(". ")[0]
        raise UserError(f"{where}: not a readable checkpoint (corrupt or truncated: {first[:160]}); "
                        f"point it at a last.pth or best.pth that `wfsearch train` wrote") from None
    if not isinstance(ckpt, dict) or not all(k in ckpt for k in CHECKPOINT_KEYS) \
            or not isinstance(ckpt["model"], dict):
        got = type(ckpt).__name__ + (f" with keys {sorted(map(str, ckpt))[:8]}" if isinstance(ckpt, dict) else "")
        raise UserError(f"{where}: not a wfsearch checkpoint (a {got}; expected a dict with "
                        f"{', '.join(CHECKPOINT_KEYS)}); point it at a last.pth that `wfsearch train` wrote")
    return ckpt


@torch.no_grad()
def _evaluate(model: nn.Module, loader, d: Distributed, precision: str, num_classes: int,
              progress: Progress | None, desc: str) -> dict[str, float]:
    """Top-1/top-5 (percent; top5 None with 5 classes or fewer) and cross-entropy over the whole validation set."""
    model.eval()
    k = min(5, num_classes)
    sums = [0.0, 0.0, 0.0, 0.0]  # loss, top1 hits, top5 hits, count
    it: Iterable = loader if progress is None else progress(loader, len(loader), desc)
    for x, y in it:
        x, y = x.to(d.device, non_blocking=True), y.to(d.device, non_blocking=True)
        with _autocast(d.device, precision):
            logits = model(x)
        logits = logits.float()
        top = logits.topk(k, dim=1).indices  # (B, k)
        hit = top.eq(y[:, None])
        sums[0] += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        sums[1] += hit[:, :1].sum().item()
        sums[2] += hit.sum().item()
        sums[3] += y.numel()
    loss, top1, top5, n = _all_sum(sums, d)
    n = max(n, 1.0)
    return {"val_loss": loss / n, "top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n if num_classes > 5 else None,
            "val_images": int(n)}


def training_memory(recipe: Recipe, batch: int | None = None) -> float:
    """Bytes one training process needs: the input batches (the workers' prefetched ones too) and, for a
    WeightFormer, weights, gradients, AdamW state and activations from the analytic cost."""
    from wfsearch.arch import MODEL_SIZES, ArchConfig, cost

    t, data, name = recipe.train, recipe.data, recipe.model.name
    batch = batch or t.batch_size
    need = (2 * data.workers + 2) * batch * 3 * data.img_size ** 2 * 4
    if name in MODEL_SIZES:
        try:
            c = cost(ArchConfig.from_dict({**MODEL_SIZES[name], **recipe.model.kwargs, "img_size": data.img_size}))
            need += 16 * c["params"] + c["activation_bytes"] * batch
        except (ValueError, TypeError):  # the model section's own check names it
            pass
    return need


def check_memory(recipe: Recipe, source: str, batch: int | None = None) -> None:
    """Refuse a recipe this machine cannot hold: one line naming the key whose reset shrinks the estimate most."""
    from wfsearch.space.checks import machine_memory
    have, kind = machine_memory()
    need = training_memory(recipe, batch)
    if need <= have:
        return
    kwargs = recipe.model.kwargs
    candidates = [("data.img_size", recipe.data.img_size, {"data__img_size": 224}),
                  ("train.batch_size", recipe.train.batch_size, {"train__batch_size": 1}),
                  ("data.workers", recipe.data.workers, {"data__workers": 0})]
    candidates += [(f"model.kwargs.{k}", kwargs[k], {"model__kwargs": {f: v for f, v in kwargs.items() if f != k}})
                   for k in kwargs]
    best = min(candidates, key=lambda c: _need_or_inf(recipe, c[2], batch))
    raise UserError(f"{source}: {best[0]}: {best[1]!r}: training {recipe.model.name} at {recipe.data.img_size} px, "
                    f"batch {batch or recipe.train.batch_size} per process, needs about {need / 2**30:.3g} GiB, "
                    f"more than this machine's {have / 2**30:.3g} GiB of {kind}; lower it")


def _need_or_inf(recipe: Recipe, changes: dict[str, Any], batch: int | None) -> float:
    try:
        return training_memory(recipe.replace(**changes), batch if "train__batch_size" not in changes else 1)
    except UserError:
        return math.inf


def initial_model(recipe: Recipe, num_classes: int, device: torch.device | str = "cpu") -> nn.Module:
    """The network a run starts from: built right after seeding with ``train.seed`` (same on every process)."""
    _seed(recipe.train.seed)
    return recipe.model.create(num_classes=num_classes).to(device)


def train(recipe: Recipe, output: str | Path, *, resume: bool | str | Path = False, augment: bool = True,
          workers: int | None = None, dist_ctx: Distributed | None = None, source: str = "recipe",
          progress: Progress | None = None, on_epoch: Callable[[dict[str, Any]], None] | None = None,
          on_step: StepHook | None = None, log_every: int = 50, tensorboard: bool = True,
          wandb: bool = False, on_resume: Callable[[int, int, Path], None] | None = None) -> TrainResult:
    """Train ``recipe`` to its last epoch, writing checkpoints and metrics under ``output``.

    ``resume``: True continues from ``output/last.pth``, a path from that checkpoint. ``augment=False`` turns
    random augmentation off. The callbacks (``on_step`` every ``log_every`` steps) run on the main process only.
    """
    from timm.data import Mixup
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2
    from timm.utils import ModelEmaV3

    from wfsearch.tracking import RunTrackers
    d = dist_ctx or init_distributed()
    out = Path(output)
    last = out / "last.pth"
    ckpt_path = (last if resume is True else Path(resume)) if resume else None
    if ckpt_path is not None and not ckpt_path.is_file():
        raise UserError(f"--resume: {str(ckpt_path)!r}: no checkpoint there; drop --resume to start a new run")
    if ckpt_path is None and last.exists():
        raise UserError(f"--output: {str(out)!r}: already holds a run (last.pth); pass --resume to continue it "
                        f"or choose another --output")
    t, o, s = recipe.train, recipe.optimizer, recipe.schedule
    check_memory(recipe, source)
    train_ds, val_ds = build_datasets(recipe, source, augment=augment)
    num_classes = len(train_ds.classes)
    global_batch = t.batch_size * d.world
    if len(train_ds) < global_batch:
        raise UserError(f"{source}: train.batch_size: {t.batch_size}: the global batch {global_batch} "
                        f"({d.world} processes) exceeds the {len(train_ds)} training images; lower --batch-size")
    mixup_on = augment and recipe.augment.mixup_active
    if mixup_on and t.batch_size % 2:
        raise UserError(f"{source}: train.batch_size: {t.batch_size}: Mixup/CutMix need an even batch per process")
    workers = usable_workers(recipe.data.workers if workers is None else workers)
    train_loader, val_loader, sampler = build_loaders(train_ds, val_ds, t.batch_size, t.eval_batch_size or t.batch_size,
                                                      workers, d.rank, d.world, t.seed, d.device.type == "cuda")
    steps_per_epoch = len(train_loader)
    model = initial_model(recipe, num_classes, d.device)  # the same initial weights on every process
    if d.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
    lr = o.scaled(o.lr_base, global_batch)
    optimizer = create_optimizer_v2(model, opt=o.name, lr=lr, weight_decay=o.weight_decay, betas=tuple(o.betas),
                                    eps=o.eps, filter_bias_and_bn=not o.decay_1d)
    scheduler, _ = create_scheduler_v2(
        optimizer, sched=s.name, num_epochs=s.epochs, warmup_epochs=s.warmup_epochs,
        warmup_lr=o.scaled(s.warmup_lr_base, global_batch), min_lr=o.scaled(s.min_lr_base, global_batch),
        warmup_prefix=s.warmup_prefix, step_on_epochs=not s.per_step, updates_per_epoch=steps_per_epoch)
    ema = ModelEmaV3(model, decay=t.ema_decay) if t.ema else None
    start_epoch, global_step, best = 0, 0, -1.0
    if ckpt_path is not None:
        ckpt = load_checkpoint(ckpt_path, "--resume")
        if ckpt.get("num_classes") != num_classes:
            raise UserError(f"--resume: {str(ckpt_path)!r}: trained on {ckpt.get('num_classes')} classes, "
                            f"the data has {num_classes}; point --data at the same data")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ema is not None and ckpt.get("ema") is not None:
            ema.module.load_state_dict(ckpt["ema"])
        start_epoch, global_step, best = ckpt["epoch"], ckpt["global_step"], ckpt.get("best_top1", -1.0)
        if ckpt.get("global_batch") != global_batch:
            log.warning("resuming with global batch %d, checkpoint used %s: the schedule shifts",
                        global_batch, ckpt.get("global_batch"))
        log.info("resumed from %s at epoch %d (step %d)", ckpt_path, start_epoch, global_step)
        if on_resume is not None and d.is_main:
            on_resume(start_epoch, global_step, ckpt_path)
        del ckpt
        # the lr is a function of the step and the recipe, so a longer --epochs on resume extends the cosine
        scheduler.step_update(num_updates=global_step) if s.per_step else scheduler.step(start_epoch)
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=[d.device] if d.device.type == "cuda" else None) \
        if d.enabled else model
    mixup = Mixup(mixup_alpha=recipe.augment.mixup, cutmix_alpha=recipe.augment.cutmix,
                  prob=recipe.augment.mixup_prob, switch_prob=recipe.augment.mixup_switch_prob,
                  mode=recipe.augment.mixup_mode, label_smoothing=t.label_smoothing,
                  num_classes=num_classes) if mixup_on else None
    # with Mixup the smoothing is inside its soft targets
    criterion: nn.Module = SoftTargetCrossEntropy() if mixup is not None else \
        LabelSmoothingCrossEntropy(smoothing=t.label_smoothing) if t.label_smoothing > 0 else nn.CrossEntropyLoss()
    trackers = None
    if d.is_main:
        out.mkdir(parents=True, exist_ok=True)
        # "as run": the classes the data has and the workers actually used
        as_run = recipe.replace(model__kwargs={**recipe.model.kwargs, "num_classes": num_classes},
                                data__workers=workers)
        (out / "recipe.yaml").write_text(recipe_to_yaml(as_run))
        if start_epoch < s.epochs and (tensorboard or wandb):
            trackers = RunTrackers(out, recipe.name, as_run.to_dict(), tensorboard=tensorboard, wandb=wandb,
                                   resume=ckpt_path is not None, first_step=global_step + 1)
        log.info("training %s: %d classes, %d/%d train/val images, %d process(es), global batch %d, lr %.3g",
                 recipe.model.name, num_classes, len(train_ds), len(val_ds), d.world, global_batch, lr)
    meta = {"num_classes": num_classes, "classes": train_ds.classes, "global_batch": global_batch,
            "world_size": d.world, "recipe": recipe.to_dict(), "wfsearch_version": wfsearch.__version__}

    history: list[dict[str, Any]] = []
    evals: dict[str, float] = {}
    train_loss: float | None = None
    try:  # the trackers are closed however the loop ends (Ctrl-C included)
        for epoch in range(start_epoch, s.epochs):
            _seed(t.seed, epoch, d.rank)
            sampler.set_epoch(epoch)
            ddp.train()
            loss_sum = torch.zeros((), dtype=torch.float64, device=d.device)  # on the device: no sync per step
            seen = 0
            tic = mark = time.perf_counter()
            since_mark = 0  # images this process trained since the last logged step
            it: Iterable = train_loader
            if progress is not None and d.is_main:
                it = progress(train_loader, steps_per_epoch, f"epoch {epoch + 1}/{s.epochs}")
            for x, y in it:
                x, y = x.to(d.device, non_blocking=True), y.to(d.device, non_blocking=True)
                if mixup is not None:
                    x, y = mixup(x, y)
                with _autocast(d.device, t.precision):
                    loss = criterion(ddp(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if o.clip_grad is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), o.clip_grad)
                optimizer.step()
                global_step += 1
                if s.per_step:
                    scheduler.step_update(num_updates=global_step)
                if ema is not None:
                    ema.update(model, step=global_step)
                loss_sum += loss.detach() * x.shape[0]
                seen += x.shape[0]
                since_mark += x.shape[0]
                log_now = log_every > 0 and global_step % log_every == 0
                if global_step % CHECK_EVERY == 0 or log_now:  # the same step on every process: all stop together
                    value = loss.item()
                    if not math.isfinite(value):
                        raise Diverged(f"training diverged: loss {value} at epoch {epoch + 1}, step {global_step}; "
                                       f"lower optimizer.lr_base or check the data")
                    now = time.perf_counter()
                    info = {"epoch": epoch + 1, "epochs": s.epochs, "step": global_step,
                            "epoch_step": global_step - epoch * steps_per_epoch, "steps_per_epoch": steps_per_epoch,
                            "loss": value, "lr": optimizer.param_groups[0]["lr"],
                            "images_per_s": since_mark * d.world / max(now - mark, 1e-9)}
                    mark, since_mark = now, 0
                    if hasattr(it, "set_postfix"):
                        it.set_postfix(loss=f"{value:.4f}", lr=f"{info['lr']:.2e}",
                                       img_s=f"{info['images_per_s']:.0f}")
                    if log_now and d.is_main:
                        if on_step is not None:
                            on_step(info)
                        if trackers is not None:
                            trackers.step(info)
            if not s.per_step:
                scheduler.step(epoch + 1)
            total, seen = _all_sum([loss_sum.item(), float(seen)], d)
            train_loss = total / max(seen, 1.0)
            if not math.isfinite(train_loss):
                raise Diverged(f"training diverged: mean loss {train_loss} in epoch {epoch + 1}; lower "
                               f"optimizer.lr_base, or check the data")
            epoch_s = time.perf_counter() - tic
            evals = _evaluate(model, val_loader, d, t.precision, num_classes,
                              progress if d.is_main else None, "eval")
            row: dict[str, Any] = {"epoch": epoch + 1, "step": global_step, "lr": optimizer.param_groups[0]["lr"],
                                   "train_loss": train_loss, **evals}
            if ema is not None:
                e = _evaluate(ema.module, val_loader, d, t.precision, num_classes, None, "eval ema")
                row.update({"ema_top1": e["top1"], "ema_val_loss": e["val_loss"],
                            **({"ema_top5": e["top5"]} if e["top5"] is not None else {})})
            row.update({"epoch_s": round(epoch_s, 3), "train_images_per_s": round(seen / max(epoch_s, 1e-9), 1),
                        "world_size": d.world, "global_batch": global_batch})
            best = max(best, evals["top1"])
            history.append(row)
            if d.is_main:
                ckpt = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "ema": ema.module.state_dict() if ema else None,
                        "epoch": epoch + 1, "global_step": global_step, "best_top1": best, "metrics": row, **meta}
                _save(ckpt, last)
                if evals["top1"] >= best:
                    _save(ckpt, out / "best.pth")
                with open(out / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
                if trackers is not None:
                    trackers.epoch(row)
                if on_epoch is not None:
                    on_epoch(row)
            if d.enabled:
                dist.barrier()
    finally:
        if trackers is not None:
            trackers.close()
    if not evals:  # nothing left to train (resumed a finished run): report the checkpoint's evaluation
        evals = _evaluate(model, val_loader, d, t.precision, num_classes, None, "eval")
    return TrainResult(epochs=max(start_epoch, s.epochs), top1=evals["top1"], top5=evals["top5"],
                       val_loss=evals["val_loss"], train_loss=train_loss, best_top1=max(best, evals["top1"]),
                       output=out, history=history)


def evaluate_checkpoint(recipe: Recipe, checkpoint: str | Path, *, workers: int | None = None,
                        dist_ctx: Distributed | None = None, source: str = "recipe", use_ema: bool = False,
                        progress: Progress | None = None) -> dict[str, float]:
    """Top-1/top-5 and loss of a checkpoint on the recipe's validation folder."""
    d = dist_ctx or init_distributed()
    path = Path(checkpoint)
    if not path.is_file():
        raise UserError(f"--evaluate: {str(path)!r}: no checkpoint there; train first or pass --resume CKPT")
    ckpt = load_checkpoint(path, "--evaluate")
    check_memory(recipe, source, recipe.train.eval_batch_size or recipe.train.batch_size)
    train_ds, val_ds = build_datasets(recipe, source, augment=False)
    num_classes = ckpt.get("num_classes", len(train_ds.classes))
    if num_classes != len(train_ds.classes):
        raise UserError(f"--evaluate: {str(path)!r}: trained on {num_classes} classes, the data has "
                        f"{len(train_ds.classes)}; point --data at the same data")
    model = recipe.model.create(num_classes=num_classes).to(d.device)
    state = ckpt["ema"] if use_ema and ckpt.get("ema") is not None else ckpt["model"]
    model.load_state_dict(state)
    t = recipe.train
    _, val_loader, _ = build_loaders(train_ds, val_ds, t.batch_size, t.eval_batch_size or t.batch_size,
                                     usable_workers(recipe.data.workers if workers is None else workers),
                                     d.rank, d.world, t.seed, pin_memory=d.device.type == "cuda")
    return _evaluate(model, val_loader, d, t.precision, num_classes, progress if d.is_main else None, "eval")



