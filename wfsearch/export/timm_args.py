"""``--format timm``: the recipe as an args file for timm's own ``train.py --config FILE``.

timm's ``train.py`` reads YAML keyed by its argparse destinations. It does not import ``wfsearch``, so the
``weightformer_*`` names exist only when it is started through `wfsearch.export.run_timm`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .recipe import Recipe

# create_model() in timm's train.py passes these itself, so they must not repeat in --model-kwargs
_TOP_LEVEL = {"num_classes": "num_classes", "drop_path_rate": "drop_path", "drop_rate": "drop", "in_chans": "in_chans"}


def timm_train_args(recipe: Recipe, gpus: int = 8) -> dict[str, Any]:
    """timm ``train.py`` arguments equivalent to ``recipe`` on ``gpus`` processes."""
    d, t, o, s, a = recipe.data, recipe.train, recipe.optimizer, recipe.schedule, recipe.augment
    global_batch = t.batch_size * gpus
    kwargs = dict(recipe.model.kwargs)
    top = {dest: kwargs.pop(k) for k, dest in _TOP_LEVEL.items() if k in kwargs}
    train_dir, val_dir = Path(d.train), Path(d.val)
    args: dict[str, Any] = {
        "data_dir": str(train_dir.parent), "train_split": train_dir.name, "val_split": val_dir.name,
        "model": recipe.model.name, "model_kwargs": kwargs, **top,
        "img_size": d.img_size, "interpolation": d.interpolation, "train_interpolation": d.interpolation,
        "crop_pct": d.crop_pct, "crop_mode": d.crop_mode, "mean": list(d.mean), "std": list(d.std),
        "batch_size": t.batch_size, "validation_batch_size": t.eval_batch_size or t.batch_size,
        "opt": o.name, "opt_eps": o.eps, "opt_betas": list(o.betas), "weight_decay": o.weight_decay,
        "clip_grad": o.clip_grad, "clip_mode": "norm",
        "sched": s.name, "sched_on_updates": s.per_step, "epochs": s.epochs, "warmup_epochs": s.warmup_epochs,
        "warmup_prefix": s.warmup_prefix, "cooldown_epochs": 0,
        "lr_base": o.lr_base, "lr_base_size": o.lr_base_batch, "lr_base_scale": "linear",
        "warmup_lr": o.scaled(s.warmup_lr_base, global_batch), "min_lr": o.scaled(s.min_lr_base, global_batch),
        "smoothing": t.label_smoothing, "seed": t.seed, "workers": d.workers, "pin_mem": True,
        "amp": t.precision == "bf16", "amp_dtype": "bfloat16", "model_ema": t.ema, "model_ema_decay": t.ema_decay,
    }
    if a.enabled:
        args.update({
            "aa": a.auto_augment, "color_jitter": a.color_jitter, "hflip": a.hflip, "scale": list(a.scale),
            "reprob": a.re_prob, "remode": a.re_mode, "recount": a.re_count, "mixup": a.mixup, "cutmix": a.cutmix,
            "mixup_prob": a.mixup_prob, "mixup_switch_prob": a.mixup_switch_prob, "mixup_mode": a.mixup_mode,
        })
    else:
        args["no_aug"] = True
    return args


def timm_args_to_yaml(recipe: Recipe, path: str | Path = "ARGS.yaml", gpus: int = 8) -> str:
    """The args file's text: a usage header, then `timm_train_args`."""
    g = recipe.train.batch_size * gpus
    header = (
        f"# timm train.py arguments for the wfsearch recipe {recipe.name}.\n"
        f"# `wfsearch` must be imported for the weightformer_* model names to exist in timm; timm's train.py\n"
        f"# does not import it, so start it through wfsearch's runner, which does:\n"
        f"#   python -m wfsearch.export.run_timm /path/to/pytorch-image-models/train.py --config {path}\n"
        f"#   torchrun --nproc_per_node={gpus} -m wfsearch.export.run_timm /path/to/train.py --config {path}\n"
        f"# Computed for {gpus} processes x batch {recipe.train.batch_size} = global batch {g}: lr follows the\n"
        f"# global batch by itself (lr_base x global / lr_base_size), but warmup_lr and min_lr are absolute,\n"
        f"# so scale them by G'/{g} for another global batch G'. Add --data-dir DIR to point at your data.\n"
    )
    args = timm_train_args(recipe, gpus)
    return header + yaml.safe_dump(args, sort_keys=False, default_flow_style=None, width=10_000)
