"""Turning one stored search trial into a full training `Recipe`.

The model becomes the registered WeightFormer size that needs the fewest overrides plus the
`ArchConfig` fields that differ from it, so ``timm.create_model(name, **kwargs)`` rebuilds exactly
the searched architecture (at the recipe's resolution and class count, with the released drop path).
"""
from __future__ import annotations

import datetime as _dt
import logging
import shlex
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

import wfsearch
from wfsearch.errors import UserError
from wfsearch.models import MODEL_SIZES, ArchConfig

from .recipe import DataSection, ModelSection, Recipe, TrainSection, drop_path_for
from .study import OpenStudy, objective_names, trial_metrics

__all__ = ["recipe_from_trial", "timm_model_for", "launch_commands", "find_trial", "recipe_path_for",
           "target_resolution"]

log = logging.getLogger(__name__)

# fields that never pick the base size: they are set per recipe, not searched
_NOT_ARCH = ("num_classes", "drop_path_rate", "drop_rate", "img_size")
# always written into the recipe's kwargs, even when equal to the size's default
_ALWAYS = ("img_size", "num_classes", "drop_path_rate")
SIZE_ORDER = ("weightformer_tiny", "weightformer_small", "weightformer_base", "weightformer_test")


def timm_model_for(arch: ArchConfig) -> tuple[str, dict[str, Any]]:
    """(registered name, kwargs) with the fewest architecture overrides that rebuild ``arch``."""
    target = arch.to_dict()
    best: tuple[tuple[int, int, int], str, dict[str, Any]] | None = None
    for rank, name in enumerate(SIZE_ORDER):
        base = ArchConfig(**MODEL_SIZES[name]).to_dict()
        diff = {k: v for k, v in target.items() if base[k] != v or k in _ALWAYS}
        cost = sum(1 for k in diff if k not in _NOT_ARCH and base[k] != target[k])
        key = (cost, int(base["img_size"] != target["img_size"]), rank)  # then the size trained at this resolution
        if best is None or key < best[0]:
            best = (key, name, diff)
    assert best is not None
    name, diff = best[1], best[2]
    base = ArchConfig(**MODEL_SIZES[name]).to_dict()
    for k in [k for k in diff if k not in _ALWAYS]:  # overrides the network does not need (same hash without)
        trial_diff = {kk: vv for kk, vv in diff.items() if kk != k}
        try:
            same = ArchConfig(**{**base, **trial_diff}).hash == arch.hash
        except ValueError:
            same = False
        if same:
            diff = trial_diff
    return name, diff


def find_trial(opened: OpenStudy, number: int) -> FrozenTrial:
    """The trial numbered ``number``, checked to be an exportable, completed search trial."""
    trials = {t.number: t for t in opened.study.get_trials(deepcopy=False)}
    if number not in trials:
        raise UserError(f"--trial: {number}: no such trial in study {opened.name!r} "
                        f"(trials 0..{max(trials) if trials else -1})")
    return check_exportable(trials[number])


def check_exportable(trial: FrozenTrial) -> FrozenTrial:
    attrs = trial.user_attrs
    if attrs.get("kind") == "reference":
        raise UserError(f"--trial: {trial.number}: is the reference model "
                        f"{attrs.get('reference_name') or attrs.get('timm_model')!r}, not a searched architecture; "
                        f"pick a search trial")
    if trial.state != TrialState.COMPLETE:
        reason = attrs.get("status_reason")
        raise UserError(f"--trial: {trial.number}: is {trial.state.name}" + (f" ({reason})" if reason else "")
                        + "; only completed trials can be exported")
    if str(attrs.get("status_reason", "")).startswith("infeasible"):
        raise UserError(f"--trial: {trial.number}: was never trained ({attrs['status_reason']}), so it has no "
                        f"proxy score; pick a trial of the front")
    if "arch" not in attrs:
        raise UserError(f"--trial: {trial.number}: stores no 'arch' attribute, so it cannot be rebuilt; "
                        f"was the study written by `wfsearch run`?")
    return trial


def recipe_path_for(opened: OpenStudy, trial: FrozenTrial) -> Path:
    return opened.folder / "recipes" / f"trial-{trial.number}.yaml"


def launch_commands(recipe_path: str, data: str, batch_size: int, lr_base: float, lr_base_batch: int) -> dict[str, str]:
    """Commands for one GPU, one node with 8 GPUs, and 4 nodes x 8 GPUs (torchrun, c10d rendezvous)."""
    r, d = shlex.quote(str(recipe_path)), shlex.quote(data)

    def lr(gpus: int) -> str:
        return f"{lr_base * batch_size * gpus / lr_base_batch:.3g}"

    return {
        "single_gpu": f"wfsearch train {r} --data {d}  # global batch {batch_size}, lr {lr(1)}",
        "one_node_8_gpus": f"torchrun --standalone --nproc_per_node=8 -m wfsearch train {r} --data {d}"
                           f"  # global batch {8 * batch_size}, lr {lr(8)}",
        "multi_node": f"torchrun --nnodes=4 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=$MASTER_ADDR:29500"
                      f" --rdzv_id=$JOB_ID -m wfsearch train {r} --data {d}"
                      f"  # run on every node; global batch {32 * batch_size}, lr {lr(32)}",
    }


def target_resolution(study) -> int | None:
    """The deployment resolution the study measured throughput at (spec ``throughput.img_size``), if known.

    Proxies train small images (e.g. 32 px), but the architecture was chosen for its speed at this size.
    """
    spec = study.user_attrs.get("spec") or {}
    size = (spec.get("throughput") or {}).get("img_size") if isinstance(spec, dict) else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


def recipe_from_trial(opened: OpenStudy, trial: FrozenTrial, *, img_size: int | None = None,
                      num_classes: int = 1000, data: str = "/data/imagenet", batch_size: int = 256,
                      seed: int = 0, recipe_path: str | Path | None = None) -> Recipe:
    """The released full-training recipe for ``trial``'s architecture, with its provenance.

    ``img_size`` defaults to the study's throughput resolution (the deployment setting the search
    measured speed at), else to the trial's own; ``data`` is the
    ImageFolder root holding ``train/`` and ``val/`` (a placeholder the user fills or overrides).
    """
    check_exportable(trial)
    study = opened.study
    try:
        arch = ArchConfig.from_dict(trial.user_attrs["arch"])
    except (ValueError, TypeError) as e:
        raise UserError(f"--trial: {trial.number}: its stored architecture is invalid here ({e}); "
                        f"was it written by another wfsearch version?") from None
    img_size = img_size or target_resolution(study)
    if img_size is None and arch.img_hw[0] != arch.img_hw[1]:
        raise UserError(f"--trial: {trial.number}: its architecture is non-square {arch.img_hw}; pass --img-size N")
    res = img_size or arch.img_hw[0]
    try:
        arch = arch.replace(img_size=res, num_classes=num_classes,
                            drop_path_rate=drop_path_for(arch.embed_dim))
    except ValueError as e:
        raise UserError(f"--img-size: {res}: the architecture does not fit this resolution ({e})") from None
    name, kwargs = timm_model_for(arch)
    objectives = objective_names(study)
    path = str(recipe_path) if recipe_path is not None else str(recipe_path_for(opened, trial))
    train = TrainSection(batch_size=batch_size, seed=seed)
    recipe = Recipe(
        name=f"{study.study_name}-trial-{trial.number}",
        model=ModelSection(name=name, kwargs=kwargs),
        data=DataSection(train=f"{data.rstrip('/')}/train", val=f"{data.rstrip('/')}/val", img_size=res),
        train=train,
        provenance={
            "study": study.study_name,
            "storage": opened.storage_url,
            "trial": trial.number,
            "arch_hash": trial.user_attrs.get("arch_hash") or ArchConfig.from_dict(trial.user_attrs["arch"]).hash,
            "arch": trial.user_attrs["arch"],
            "objectives": {n: v for n, v in zip(objectives, trial.values or [])},
            "metrics": trial.user_attrs.get("metrics", {}),
            "costs": trial.user_attrs.get("costs", {}),
            "proxy": trial.user_attrs.get("proxy", {}),
            "spec_hash": study.user_attrs.get("spec_hash"),
            "spec_path": study.user_attrs.get("spec_path"),
            "study_wfsearch_version": study.user_attrs.get("wfsearch_version"),
            "hardware": study.user_attrs.get("hardware"),
            "wfsearch_version": wfsearch.__version__,
            "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        },
    )
    recipe.launch = launch_commands(path, data, batch_size, recipe.optimizer.lr_base, recipe.optimizer.lr_base_batch)
    log.info("trial %d -> %s %s (metrics %s)", trial.number, name, kwargs, trial_metrics(trial, objectives))
    return recipe
