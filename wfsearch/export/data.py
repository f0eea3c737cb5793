"""Data for the full trainer: ImageFolder train/val sets with timm's transforms, sharded per process."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from wfsearch.errors import UserError

from .recipe import Recipe

log = logging.getLogger(__name__)


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
    return Image.new(img.mode, img.size) if bits_to_keep <= 0 else ImageOps.posterize(img, bits_to_keep)


def patch_posterize(transform):
    """Make RandAugment's posterize safe on Pillow >= 12: at magnitude >= 10 (``rand-m9-mstd0.5`` reaches it
    through the noise) timm asks to keep 0 bits, which Pillow now refuses, stopping a run at a random step."""
    from timm.data import auto_augment

    for t in getattr(transform, "transforms", []):
        for op in getattr(t, "ops", []) if isinstance(t, auto_augment.RandAugment) else []:
            if op.aug_fn is auto_augment.posterize:
                op.aug_fn = _posterize
    return transform


class ImageFiles(Dataset):
    """An ImageFolder over a safely scanned file list (see `wfsearch.proxy.imagefolder`). A file that fails to
    decode is replaced by the next one (batches stay full) with one warning; `MAX_BAD_IN_A_ROW` stop the run."""
    MAX_BAD_IN_A_ROW = 16

    def __init__(self, folder: Path, samples: list[tuple[str, int]], classes: list[str], transform=None):
        from wfsearch.proxy.imagefolder import quiet_pillow

        quiet_pillow()  # also in the loader's worker processes, which inherit the filter
        self.root, self.samples, self.classes, self.transform = str(folder), samples, classes, transform
        self.class_to_idx = {c: i for i, c in enumerate(classes)}
        self.targets = [y for _, y in samples]
        self._warned: set[str] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        from PIL import Image

        from wfsearch.proxy.imagefolder import why_unreadable

        for k in range(self.MAX_BAD_IN_A_ROW):
            path, target = self.samples[(index + k) % len(self.samples)]
            try:
                with Image.open(path) as im:
                    img = im.convert("RGB")
            except Exception as e:  # any decoding failure: skip this file
                if path not in self._warned:
                    self._warned.add(path)
                    log.warning("%s: skipped while training: %s", path, why_unreadable(path, e))
                continue
            return (self.transform(img) if self.transform is not None else img), target
        raise UserError(f"{self.root}: {self.MAX_BAD_IN_A_ROW} images in a row from index {index} cannot be read; "
                        "check the copy of the data")


def build_datasets(recipe: Recipe, source: str, augment: bool = True) -> tuple[Dataset, Dataset]:
    """Train and val image folders, scanned safely; their class folders must agree."""
    import os

    from wfsearch.proxy import imagefolder as IF

    train_dir = check_image_folder(recipe.data.train, "data.train", source)
    val_dir = check_image_folder(recipe.data.val, "data.val", source)
    train_tf, eval_tf = build_transforms(recipe, augment)
    classes = IF.class_names(train_dir)

    def error(key: str, value, rule: str) -> UserError:
        return UserError(f"{source}: {key}: {value!r}: {rule}")

    IF.check_class_sets(train_dir, val_dir, classes, IF.class_names(val_dir), classes, False, error,
                        "data.val", recipe.data.val)
    root = Path(os.path.commonpath([os.path.realpath(train_dir), os.path.realpath(val_dir)]))
    # two folders given on their own: links may lead anywhere, but never twice or into another class/split
    scans = IF.scan_splits(root, {"train": train_dir, "val": val_dir}, classes, follow_links=True)
    out = []
    for split, tf in (("train", train_tf), ("val", eval_tf)):
        scan = scans[split]
        have = {y for _, y in scan.samples}
        empty = [c for i, c in enumerate(classes) if i not in have]
        if empty:
            raise error(f"data.{split}", str(scan.folder), f"class folder {empty[0]!r} holds no images "
                                                            f"({', '.join(IF.IMAGE_SUFFIXES)}); every class needs some")
        unreadable = [(p, "empty file") for p, _ in scan.samples if os.path.getsize(p) == 0]
        if unreadable:
            bad = {p for p, _ in unreadable}
            scan.samples = [(p, y) for p, y in scan.samples if p not in bad]
        IF.report_skipped(split, scan, unreadable, len(scan.samples) + len(unreadable), scan.folder, error,
                          f"data.{split}", str(scan.folder))
        out.append(ImageFiles(scan.folder, scan.samples, classes, tf))
    return out[0], out[1]


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...``: every sample evaluated exactly once across processes."""
    def __init__(self, n: int, rank: int, world: int):
        self.indices = list(range(rank, n, world))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def usable_workers(requested: int) -> int:
    """``requested`` data-loading workers, at most this process's share of the CPUs it may run on."""
    import os
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    share = max(1, cpus // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    if requested > share:
        log.info("data.workers %d -> %d: %d CPUs here for %s process(es)", requested,
                 share, cpus, os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return min(requested, share)


def build_loaders(train_ds: Dataset, val_ds: Dataset, batch_size: int, eval_batch_size: int, workers: int,
                  rank: int, world: int, seed: int, pin_memory: bool) -> tuple[DataLoader, DataLoader, DistributedSampler]:
    """Train loader (a seeded `DistributedSampler`, full batches only: the global batch at each step holds the
    same images whatever the number of processes) and val loader."""
    sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
    train = DataLoader(train_ds, batch_size=batch_size, sampler=sampler, num_workers=workers,
                       pin_memory=pin_memory, drop_last=True)
    val = DataLoader(val_ds, batch_size=eval_batch_size, sampler=ShardSampler(len(val_ds), rank, world),
                     num_workers=workers, pin_memory=pin_memory)
    return train, val, sampler
