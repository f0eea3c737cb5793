"""Data for the full trainer: ImageFolder train/val sets with timm's transforms, sharded per process."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from wfsearch.errors import UserError

from .recipe import Recipe

__all__ = ["check_image_folder", "build_transforms", "build_datasets", "build_loaders", "ShardSampler",
           "patch_posterize"]

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}


def check_image_folder(path: str, key: str, source: str) -> Path:
    """``path`` must be an ImageFolder root (one sub-folder per class); else one `UserError` line."""
    p = Path(path)
    fix = "pass --data DIR with DIR/train and DIR/val, each holding one sub-folder of images per class"
    if not p.is_dir():
        raise UserError(f"{source}: {key}: {path!r}: no such folder; {fix}")
    classes = [c for c in p.iterdir() if c.is_dir() and not c.name.startswith(".")]
    if not classes:
        raise UserError(f"{source}: {key}: {path!r}: holds no class sub-folders; {fix}")
    return p


def build_transforms(recipe: Recipe, augment: bool):
    """(train, eval) transforms from timm's ``create_transform``; no augmentation = eval transform."""
    from timm.data import create_transform

    d, a = recipe.data, recipe.augment
    common = dict(input_size=d.img_size, interpolation=d.interpolation, mean=tuple(d.mean), std=tuple(d.std))
    eval_tf = create_transform(is_training=False, crop_pct=d.crop_pct, crop_mode=d.crop_mode, **common)
    if not (augment and a.enabled):
        return eval_tf, eval_tf
    train_tf = create_transform(
        is_training=True, scale=tuple(a.scale), hflip=a.hflip, color_jitter=a.color_jitter,
        auto_augment=a.auto_augment, re_prob=a.re_prob, re_mode=a.re_mode, re_count=a.re_count, **common)
    return patch_posterize(train_tf), eval_tf


def _posterize(img, bits_to_keep, **_):
    """timm's posterize, with 0 bits kept giving a black image as older Pillow did."""
    from PIL import Image, ImageOps

    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return Image.new(img.mode, img.size)
    return ImageOps.posterize(img, bits_to_keep)


def patch_posterize(transform):
    """Make RandAugment's ``PosterizeIncreasing`` safe on Pillow >= 12.

    At magnitude >= 10 (``rand-m9-mstd0.5`` reaches it through the magnitude noise) timm asks
    ``ImageOps.posterize`` to keep 0 bits; Pillow used to return a black image and now raises
    ``bits must be between or equal to 1 and 8``, which would stop a long run at a random step.
    """
    from timm.data import auto_augment

    for t in getattr(transform, "transforms", []):
        for op in getattr(t, "ops", []) if isinstance(t, auto_augment.RandAugment) else []:
            if op.aug_fn is auto_augment.posterize:
                op.aug_fn = _posterize
    return transform


def build_datasets(recipe: Recipe, source: str, augment: bool = True) -> tuple[Dataset, Dataset]:
    """Train and val ImageFolders; their class folders must agree."""
    from torchvision.datasets import ImageFolder

    train_dir = check_image_folder(recipe.data.train, "data.train", source)
    val_dir = check_image_folder(recipe.data.val, "data.val", source)
    train_tf, eval_tf = build_transforms(recipe, augment)
    try:
        train_ds, val_ds = ImageFolder(str(train_dir), train_tf), ImageFolder(str(val_dir), eval_tf)
    except (FileNotFoundError, RuntimeError) as e:  # a class folder without images
        raise UserError(f"{source}: data: {str(e).splitlines()[0]}; every class folder needs images "
                        f"({', '.join(sorted(IMAGE_SUFFIXES))})") from None
    extra = sorted(set(val_ds.classes) - set(train_ds.classes))
    if extra:
        raise UserError(f"{source}: data.val: {str(val_dir)!r}: classes {extra[:5]} are not in data.train; "
                        f"train and val need the same class folders")
    if val_ds.classes != train_ds.classes:  # val lacks some classes: map its labels onto train's indices
        remap = [train_ds.class_to_idx[c] for c in val_ds.classes]
        val_ds.samples = [(p, remap[y]) for p, y in val_ds.samples]
        val_ds.targets = [y for _, y in val_ds.samples]
        val_ds.class_to_idx, val_ds.classes = train_ds.class_to_idx, train_ds.classes
    return train_ds, val_ds


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...``: every sample evaluated exactly once across processes."""

    def __init__(self, n: int, rank: int, world: int):
        self.indices = list(range(rank, n, world))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def build_loaders(train_ds: Dataset, val_ds: Dataset, batch_size: int, eval_batch_size: int, workers: int,
                  rank: int, world: int, seed: int, pin_memory: bool) -> tuple[DataLoader, DataLoader, DistributedSampler]:
    """Train loader (shuffled by a seeded `DistributedSampler`, full batches only) and val loader.

    The shuffle depends on (seed, epoch) only, so the global batch at each step holds the same
    images whatever the number of processes.
    """
    sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
    train = DataLoader(train_ds, batch_size=batch_size, sampler=sampler, num_workers=workers,
                       pin_memory=pin_memory, drop_last=True)
    val = DataLoader(val_ds, batch_size=eval_batch_size, sampler=ShardSampler(len(val_ds), rank, world),
                     num_workers=workers, pin_memory=pin_memory)
    return train, val, sampler
