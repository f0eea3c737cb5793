"""Turning one stored search trial into a full training `Recipe` of its *deployed* network.

A trial is one design at two scales: the proxy network (trained for accuracy) and the deployed network
(``throughput.arch`` on the design, measured for speed and costs). The recipe builds the deployed network as
the registered WeightFormer size needing the fewest overrides plus those overrides.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import shlex
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

import wfsearch
from wfsearch.errors import UserError
from wfsearch.arch import MODEL_SIZES, ArchConfig, cost
from wfsearch.study import Status, StudySnapshot, TrialRecord

from .recipe import DataSection, ModelSection, Recipe, TrainSection, drop_path_for

log = logging.getLogger(__name__)

# fields that never pick the base size: they are set per recipe, not searched
_NOT_ARCH = ("num_classes", "drop_path_rate", "drop_rate", "img_size")
# always written into the recipe's kwargs, even when equal to the size's default
_ALWAYS = ("img_size", "num_classes", "drop_path_rate")
SIZE_ORDER = ("weightformer_tiny", "weightformer_small", "weightformer_base", "weightformer_test")


def timm_model_for(arch: ArchConfig) -> tuple[str, dict[str, Any]]:
    """(registered name, kwargs) with the fewest architecture overrides that rebuild ``arch``."""
    target = arch.to_dict()
    bases = {name: ArchConfig(**MODEL_SIZES[name]).to_dict() for name in SIZE_ORDER}

    def key(rank: int, name: str) -> tuple[int, int, int]:  # then the size trained at this resolution
        base = bases[name]
        overrides = sum(1 for k, v in target.items() if k not in _NOT_ARCH and base[k] != v)
        return overrides, int(base["img_size"] != target["img_size"]), rank

    name = min(enumerate(SIZE_ORDER), key=lambda rn: key(*rn))[1]
    base = bases[name]
    diff = {k: v for k, v in target.items() if base[k] != v or k in _ALWAYS}
    for k in [k for k in diff if k not in _ALWAYS]:  # overrides the network does not need (same hash without)
        trial_diff = {kk: vv for kk, vv in diff.items() if kk != k}
        with contextlib.suppress(ValueError):
            if ArchConfig(**{**base, **trial_diff}).hash == arch.hash:
                diff = trial_diff
    return name, diff


def find_trial(snap: StudySnapshot, number: int) -> TrialRecord:
    """The search trial numbered ``number``, checked to be exportable."""
    record = snap.trial(number) or next((r for r in snap.references if r.number == number), None)
    if record is None:
        numbers = [t.number for t in snap.trials]
        raise UserError(f"--trial: {number}: no such trial in study {snap.name!r} "
                        f"(trials {min(numbers, default=0)}..{max(numbers, default=-1)})")
    return check_exportable(record)


def check_exportable(t: TrialRecord) -> TrialRecord:
    if t.kind == "reference":
        raise UserError(f"--trial: {t.number}: is the reference model {t.name or t.timm_model!r}, not a searched "
                        f"architecture; pick a search trial")
    if t.state != TrialState.COMPLETE:
        raise UserError(f"--trial: {t.number}: is {t.state.name}" + (f" ({t.reason})" if t.reason else "")
                        + "; only completed trials can be exported")
    if t.status is Status.INFEASIBLE:
        raise UserError(f"--trial: {t.number}: was never trained ({t.reason}), so it has no "
                        f"proxy score; pick a trial of the front")
    if not t.arch:
        raise UserError(f"--trial: {t.number}: stores no 'arch' attribute, so it cannot be rebuilt; "
                        f"was the study written by `wfsearch run`?")
    return t


def recipe_path_for(snap: StudySnapshot, trial: TrialRecord) -> Path:
    return snap.folder / "recipes" / f"trial-{trial.number}.yaml"


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


def recipe_from_trial(snap: StudySnapshot, trial: TrialRecord, *, img_size: int | None = None,
                      num_classes: int | None = None, data: str = "/data/imagenet", batch_size: int = 256,
                      seed: int = 0, recipe_path: str | Path | None = None) -> Recipe:
    """The released full-training recipe for ``trial``'s deployed network, with its provenance.

    ``img_size`` and ``num_classes`` default to the deployed network's; ``data`` is the ImageFolder root
    holding ``train/`` and ``val/``.
    """
    check_exportable(trial)
    try:
        deployed = ArchConfig.from_dict(snap.deployed_arch(trial))
    except (ValueError, TypeError) as e:
        raise UserError(f"--trial: {trial.number}: its stored architecture is invalid here ({e}); "
                        f"was it written by another wfsearch version?") from None
    if img_size is None and deployed.img_hw[0] != deployed.img_hw[1]:
        raise UserError(f"--trial: {trial.number}: its deployed network is non-square {deployed.img_hw}; "
                        f"pass --img-size N")
    res = img_size or deployed.img_hw[0]
    try:
        arch = deployed.replace(img_size=res, num_classes=num_classes or deployed.num_classes,
                                drop_path_rate=drop_path_for(deployed.embed_dim))
    except ValueError as e:
        raise UserError(f"--img-size: {res}: the architecture does not fit this resolution ({e})") from None
    name, kwargs = timm_model_for(arch)
    path = str(recipe_path) if recipe_path is not None else str(recipe_path_for(snap, trial))
    # the search's measurements when the recipe builds the deployed network unchanged (but for drop path),
    # else the analytic params and MACs
    same = bool(trial.deployed_arch) and arch.replace(drop_path_rate=deployed.drop_path_rate) == deployed
    built = cost(arch)
    costs = {**(trial.costs if same else {})}
    costs.update({k: built[k] for k in ("params", "macs") if k not in costs})
    su = snap.user_attrs
    recipe = Recipe(
        name=f"{snap.name}-trial-{trial.number}",
        model=ModelSection(name=name, kwargs=kwargs),
        data=DataSection(train=f"{data.rstrip('/')}/train", val=f"{data.rstrip('/')}/val", img_size=res),
        train=TrainSection(batch_size=batch_size, seed=seed),
        provenance={
            "study": snap.name,
            "storage": snap.storage_url,
            "trial": trial.number,
            **({"repeat_of_trial": snap.repeat_of[trial.number]} if trial.number in snap.repeat_of else {}),
            "arch_hash": trial.arch_hash or ArchConfig.from_dict(trial.arch).hash,
            "proxy_arch": trial.arch,
            "deployed_arch": deployed.to_dict(),
            "objectives": {n: v for n, v in zip(snap.objectives, trial.values or [])},
            "metrics": trial.metrics,
            "costs": costs,
            "costs_scale": "deployed" if same else "recipe (differs from the deployed network the search measured)",
            "proxy": trial.proxy,
            "spec_hash": su.get("spec_hash"),
            "spec_path": su.get("spec_path"),
            "study_wfsearch_version": su.get("wfsearch_version"),
            "hardware": su.get("hardware"),
            "wfsearch_version": wfsearch.__version__,
            "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        },
    )
    recipe.launch = launch_commands(path, data, batch_size, recipe.optimizer.lr_base, recipe.optimizer.lr_base_batch)
    log.info("trial %d -> %s %s (metrics %s)", trial.number, name, kwargs, snap.metrics(trial))
    return recipe
