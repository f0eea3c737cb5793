"""``wfsearch train``: run an exported recipe on a CPU, a GPU, or many GPUs under torchrun."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from wfsearch.errors import UserError

from . import check_min

EPILOG = """\
examples:
  wfsearch train studies/predictors/recipes/trial-7.yaml --data /data/imagenet
  torchrun --standalone --nproc_per_node=8 -m wfsearch train studies/predictors/recipes/trial-7.yaml --data /data/imagenet
  wfsearch train RECIPE --resume                  # continue from OUTPUT/last.pth
  wfsearch train RECIPE --evaluate                # top-1/top-5 of OUTPUT/last.pth on the val folder
outputs (OUTPUT defaults to STUDY/runs/<recipe name> next to STUDY/recipes/):
  last.pth, best.pth (checkpoints), metrics.jsonl (one JSON line per epoch), recipe.yaml (as run),
  tensorboard/ (loss, lr, images/s per logged step and every epoch's metrics: tensorboard --logdir OUTPUT)
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train an exported recipe (one process, or DDP under torchrun)",
        description="Train the architecture of a recipe with its full recipe: timm transforms, Mixup/CutMix, "
                    "AdamW, per-step cosine; a checkpoint and a metrics line every epoch.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", metavar="RECIPE", help="recipe YAML written by `wfsearch export`")
    p.add_argument("--data", metavar="DIR", help="ImageFolder root holding train/ and val/ (overrides the recipe)")
    p.add_argument("--epochs", type=int, metavar="N",
                   help="train N epochs; the warm-up shrinks in proportion unless --warmup-epochs is given")
    p.add_argument("--warmup-epochs", type=int, metavar="N", help="warm-up epochs (default: the recipe's)")
    p.add_argument("--output", metavar="DIR", help="run folder (default: STUDY/runs/<recipe name>)")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CKPT",
                   help="continue from OUTPUT/last.pth (or from CKPT)")
    p.add_argument("--evaluate", action="store_true", help="only evaluate OUTPUT/last.pth (or --resume CKPT)")
    p.add_argument("--batch-size", type=int, metavar="N", help="batch per process (default: the recipe's)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto; torchrun: cuda:LOCAL_RANK)")
    p.add_argument("--workers", type=int, metavar="N", help="data-loading workers per process (default: the recipe's)")
    p.add_argument("--precision", choices=["bf16", "fp32"], help="autocast precision (default: the recipe's)")
    p.add_argument("--seed", type=int, help="seed (default: the recipe's)")
    p.add_argument("--ema", action="store_true", help="also keep and evaluate an EMA of the weights")
    p.add_argument("--no-augment", action="store_true",
                   help="no random augmentation at all (no crop/flip/RandAugment/erasing/Mixup/CutMix)")
    p.add_argument("--log-every", type=int, default=50, metavar="N",
                   help="log loss, lr and images/s every N steps: a line when not on a terminal (a progress bar "
                        "is shown on one) and a TensorBoard point (default: 50; 0: only per epoch)")
    p.add_argument("--no-tensorboard", action="store_true", help="do not write OUTPUT/tensorboard/")
    p.add_argument("--wandb", action="store_true",
                   help="also log to Weights & Biases (project wfsearch; needs pip install wandb)")
    p.set_defaults(func=run)


def default_output(recipe_path: Path) -> Path:
    """``studies/<name>/recipes/trial-7.yaml`` -> ``studies/<name>/runs/trial-7``; else ``runs/<stem>``."""
    if recipe_path.parent.name == "recipes":
        return recipe_path.parent.parent / "runs" / recipe_path.stem
    return Path("runs") / recipe_path.stem


def apply_overrides(recipe, args: argparse.Namespace, source: str):
    """The recipe with the command-line overrides applied (validated like the file itself)."""
    changes: dict[str, object] = {}
    if args.data:
        root = Path(args.data)
        if not root.is_dir():
            raise UserError(f"--data: {args.data!r}: no such folder; give the ImageFolder root holding train/ and val/")
        changes.update(data__train=str(root / "train"), data__val=str(root / "val"))
    check_min(args, 1, "epochs")
    if args.epochs is not None:
        s = recipe.schedule
        changes["schedule__epochs"] = args.epochs
        if args.warmup_epochs is None:
            changes["schedule__warmup_epochs"] = min(round(s.warmup_epochs * args.epochs / s.epochs), args.epochs - 1)
    if args.warmup_epochs is not None:
        changes["schedule__warmup_epochs"] = args.warmup_epochs
    changes.update({f"train__{k}": getattr(args, k) for k in ("batch_size", "precision", "seed")
                    if getattr(args, k) is not None})
    changes.update({k: v for k, v, given in (("train__ema", True, args.ema),
                                               ("augment__enabled", False, args.no_augment)) if given})
    return recipe.replace(source=f"{source} with the command-line overrides", **changes)


def run(args: argparse.Namespace) -> int:
    import torch.distributed as dist

    from wfsearch.export import load_recipe
    from wfsearch.export.train import Diverged, evaluate_checkpoint, init_distributed, train

    check_min(args, 0, "workers", "log_every")
    path = Path(args.recipe)
    recipe = apply_overrides(load_recipe(path), args, str(path))
    output = Path(args.output) if args.output else default_output(path)
    is_main = int(os.environ.get("RANK", "0")) == 0
    d = init_distributed(args.device)
    tty = sys.stderr.isatty()
    progress = _tqdm if is_main and tty else None
    try:
        if args.evaluate:
            ckpt = Path(args.resume) if isinstance(args.resume, str) else output / "last.pth"
            m = evaluate_checkpoint(recipe, ckpt, workers=args.workers, dist_ctx=d, source=str(path), progress=progress)
            if is_main:
                print(f"{ckpt}: top1 {m['top1']:.2f}{_top5(m)}  loss {m['val_loss']:.4f}  ({m['val_images']} images)")
            return 0
        if is_main:
            s, t = recipe.schedule, recipe.train
            print(f"# {recipe.name}: {recipe.model.name} at {recipe.data.img_size}px, {_n(s.epochs, 'epoch')} "
                  f"({s.warmup_epochs} warm-up), {d.world} process(es) x batch {t.batch_size} on {d.device}, "
                  f"{t.precision} -> {output}")
        try:
            result = train(recipe, output, resume=args.resume, augment=not args.no_augment, workers=args.workers,
                           dist_ctx=d, source=str(path), progress=progress, on_epoch=_print_epoch if is_main else None,
                           on_step=None if tty else _print_step, log_every=args.log_every,
                           tensorboard=not args.no_tensorboard, wandb=args.wandb,
                           on_resume=_print_resume if is_main else None)
        except Diverged as e:
            print(f"wfsearch: error: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            if is_main:
                again = f"continue from the last finished epoch with:\n  {resume_command(args, output)}"
                print("\ninterrupted; " + (again if (output / "last.pth").is_file() else "no epoch had finished, "
                                           "so nothing was saved: run the same command again to start over"),
                      file=sys.stderr)
            return 130
        if is_main and result.nothing_left:
            print(f"nothing left to do: {result.output} has finished all {_n(result.epochs, 'epoch')} of the recipe; "
                  f"its last checkpoint scores top1 {result.top1:.2f}{_top5(result.__dict__, ',')}. To train longer, "
                  f"pass --resume --epochs N with N > {result.epochs}")
        elif is_main:
            print(f"done: {_n(result.epochs, 'epoch')}, top1 {result.top1:.2f} (best {result.best_top1:.2f})"
                  f"{_top5(result.__dict__, ',')}; checkpoints, metrics.jsonl and tensorboard/ in {result.output}")
        return 0
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def resume_command(args: argparse.Namespace, output: Path) -> str:
    """The command that continues this run: the same recipe and overrides, ``--resume`` and the run folder."""
    import shlex

    words = ["wfsearch", "train", args.recipe]
    defaults = dict(device="auto", log_every=50)  # not repeated when they are the defaults
    for flag in ("data", "epochs", "warmup_epochs", "batch_size", "device", "workers", "precision", "seed",
                 "log_every"):
        value = getattr(args, flag)
        if value is not None and value != defaults.get(flag):
            words += [f"--{flag.replace('_', '-')}", str(value)]
    words += [f"--{f.replace('_', '-')}" for f in ("ema", "no_augment", "no_tensorboard", "wandb") if getattr(args, f)]
    words += ["--output", str(output), "--resume"]
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return "torchrun ... -m " + shlex.join(words)  # the same torchrun options as this run
    return shlex.join(words)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _print_step(info: dict) -> None:
    """A progress line off a terminal (logs, nohup, CI), every ``--log-every`` steps."""
    print(f"epoch {info['epoch']}/{info['epochs']}  step {info['epoch_step']}/{info['steps_per_epoch']}  "
          f"loss {info['loss']:.4f}  lr {info['lr']:.3g}  {info['images_per_s']:.0f} img/s", flush=True)


def _top5(m: dict, sep: str = " ") -> str:
    """`` top5 92.31`` (after ``sep``), or "" where every label is in the top 5 (5 classes or fewer)."""
    return f"{sep} top5 {m['top5']:.2f}" if m.get("top5") is not None else ""


def _print_resume(epoch: int, step: int, checkpoint: Path) -> None:
    print(f"resumed from epoch {epoch} (step {step}) of {checkpoint}", flush=True)


def _print_epoch(row: dict) -> None:
    ema = f"  ema top1 {row['ema_top1']:.2f}" if "ema_top1" in row else ""
    print(f"epoch {row['epoch']:>4}  train loss {row['train_loss']:.4f}  val loss {row['val_loss']:.4f}  top1 "
          f"{row['top1']:.2f}{_top5(row)}{ema}  lr {row['lr']:.3g}  {row['train_images_per_s']:.0f} img/s", flush=True)


def _tqdm(iterable, total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr)
