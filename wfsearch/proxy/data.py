"""Proxy datasets as uint8 tensors in memory: the embedded `synthetic` task, digits, CIFAR-10/100, image folders.

Every source is decoded (or generated) once into ``(N, 3, H, W)`` uint8 images at the proxy resolution
plus int64 labels, cached in memory and, with a cache folder, on disk. `TensorBatches` cuts, augments
(random translation, horizontal flip) and normalizes batches on tensors: much faster than a `DataLoader`.

**synthetic** (default, no download): two objects (colour, shape, fill pattern, size) on a noisy grey
background; the label says which attributes they share (one bit per attribute, ``num_classes <= 16``);
the others stay fixed (`NUISANCE` = True varies them). In the default ``ends`` layout the objects are bars
at the two ends of a random axis, at least `synthetic_gap` pixels apart: farther than a static network of
the quick start's depth can see (`needs_reach`, docs/TASK.md), so only a dynamic layer relates them (a
static one's linear read-out of one-object features stays at chance). ``quadrants`` (two different
quadrants) stays available. Same seed, same bytes. Normalized with the first 1,000 training images' stats.

**digits**: scikit-learn's 1,797 8x8 handwritten digits (shipped in its wheel, no download), upsampled.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from wfsearch.errors import UserError
from wfsearch.space import DatasetSpec, ProxySpec
from wfsearch.space.spec import SYNTHETIC_CLASSES, SYNTHETIC_SIZES

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # bump when a source's bytes change

# channel statistics of the data scaled to [0, 1]
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

ErrorFn = Callable[[str, Any, str], UserError]


def dataset_error(origin: str = "") -> ErrorFn:
    """``error(key, value, rule)``: a `UserError` line naming ``proxy.dataset.<key>`` (and the spec file)."""
    prefix = f"{origin}: " if origin else ""
    return lambda key, value, rule: UserError(f"{prefix}proxy.dataset.{key}: {value!r}: {rule}")


def check_root(proxy: ProxySpec, origin: str = "") -> None:
    """Fail early, with the path, when a dataset that cannot be downloaded has no folder."""
    d = proxy.dataset
    if d.root is None or d.name in ("synthetic", "digits"):
        return
    if not Path(d.root).expanduser().is_dir() and not (d.name.startswith("cifar") and d.download):
        hint = ("set proxy.dataset.download: true to fetch it" if d.name.startswith("cifar")
                else "it must hold train/ and val/ folders with one subfolder of images per class")
        raise dataset_error(origin)("root", d.root, f"no such folder; {hint}")


def data_key(proxy: ProxySpec) -> str:
    """Identity of the data ``proxy`` loads (for the in-memory and disk caches)."""
    d = proxy.dataset.model_dump(mode="json", exclude={"num_workers", "augment", "download"})
    if d["root"] is not None:
        d["root"] = str(Path(d["root"]).expanduser().resolve())
    blob = json.dumps({"v": CACHE_VERSION, "img_size": proxy.img_size, **d}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


@dataclass
class ImageTensors:
    """Images ``(N, 3, H, W)`` uint8 and labels ``(N,)`` int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        assert self.images.dtype == torch.uint8 and self.images.ndim == 4, self.images.shape
        assert self.labels.dtype == torch.int64 and len(self.labels) == len(self.images)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class ProxyData:
    """A proxy dataset held in memory: train and validation splits, class names and normalization."""

    name: str
    train: ImageTensors
    val: ImageTensors
    classes: list[str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    augment: bool = True
    translate: int | None = None  # training translation in pixels (None: 1/8 of the side)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def img_size(self) -> int:
        return self.train.images.shape[-1]


ATTRIBUTES = ("color", "shape", "pattern", "size")
SYNTHETIC_DEFAULTS = {"num_classes": SYNTHETIC_CLASSES[2], "train_size": SYNTHETIC_SIZES[0],
                      "val_size": SYNTHETIC_SIZES[1]}
PALETTE = np.array([(230, 40, 40), (40, 200, 60), (50, 90, 240), (235, 220, 40)], np.float32)  # RGB
OBJECT_FRACTION = {"ends": 0.125, "quadrants": 0.3}  # object box side / image side
ELONGATION = 8  # ends layout: object length across the separating axis / its width (at most; the image caps it)
NOISE_STD = 8.0  # background pixel noise (uint8 scale)
NUISANCE = False  # vary the attributes that are not label bits (harder, slower to learn)
SHAPES = ("square", "disc", "plus", "ring", "cross", "triangle")
PATTERNS = ("solid", "hstripes", "vstripes", "checker")


def _masks(o: int) -> tuple[np.ndarray, np.ndarray]:
    """Shape masks ``(len(SHAPES), o, o)`` and fill patterns ``(len(PATTERNS), o, o)`` (1 full, 0.35 dimmed)."""
    y, x = np.mgrid[0:o, 0:o].astype(np.float32)
    c, r, t = (o - 1) / 2.0, o / 2.0, max(1, o // 4)  # t: stroke width
    shapes = [np.ones((o, o), bool), (x - c) ** 2 + (y - c) ** 2 <= r * r,  # square, disc
              (np.abs(x - c) < t / 2 + 0.5) | (np.abs(y - c) < t / 2 + 0.5),  # plus
              (np.minimum.reduce([x, y, o - 1 - x, o - 1 - y]) < t),  # ring (hollow square)
              (np.abs(x - y) < t) | (np.abs(x + y - (o - 1)) < t),  # cross (diagonal)
              (y >= np.abs(x - c) * 2 - 0.5) & (y <= o - 1)]  # triangle (apex up)
    yi, xi = y.astype(int), x.astype(int)
    pats = [np.ones((o, o)), np.where(yi % 2 == 0, 1.0, 0.35), np.where(xi % 2 == 0, 1.0, 0.35),
            np.where((xi + yi) % 2 == 0, 1.0, 0.35)]
    return np.stack(shapes).astype(np.float32), np.stack(pats).astype(np.float32)


def object_side(img_size: int, layout: str = "ends") -> int:
    """Side of an object's box in pixels (`OBJECT_FRACTION` of the image)."""
    return max(5, round(img_size * OBJECT_FRACTION[layout]))


def _glyph_bank(img_size: int, layout: str = "ends") -> tuple[np.ndarray, int]:
    """Alpha masks ``(size, shape, pattern, o, o)`` of every object, and the box side ``o``."""
    o = object_side(img_size, layout)
    small = o - 2 * max(1, o // 6)
    bank = np.zeros((2, len(SHAPES), len(PATTERNS), o, o), np.float32)
    for si, side in enumerate((o, small)):
        off = (o - side) // 2
        shapes, pats = _masks(side)
        bank[si, :, :, off:off + side, off:off + side] = shapes[:, None] * pats[None]  # (shape, pattern, side, side)
    return bank, o


def synthetic_images(n: int, img_size: int = 32, num_classes: int = 4, seed: int = 0,
                     layout: str = "ends") -> ImageTensors:
    """``n`` images of the relational two-object task (see the module docstring), from ``seed``."""
    assert 2 <= num_classes <= 2 ** len(ATTRIBUTES)
    rng = np.random.default_rng(seed)
    S = img_size
    bank, o = _glyph_bank(S, layout)
    n_bits = max(1, math.ceil(math.log2(num_classes)))
    labels = rng.integers(0, num_classes, n)
    n_values = {"color": len(PALETTE), "shape": len(SHAPES), "pattern": len(PATTERNS), "size": 2}
    objects: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] = ({}, {})
    for bit, attr in enumerate(ATTRIBUTES):
        k = n_values[attr]
        if bit < n_bits:  # shared when the label's bit is set, otherwise a different value
            a = rng.integers(0, k, n)
            same = (labels >> bit) & 1 == 1
            b = np.where(same, a, (a + rng.integers(1, k, n)) % k)
        elif NUISANCE:  # attributes beyond the label's bits vary independently
            a, b = rng.integers(0, k, n), rng.integers(0, k, n)
        else:  # or stay fixed (solid, large): the task is then only the relation
            a = b = np.zeros(n, np.int64)
        objects[0][attr], objects[1][attr] = a, b

    # background: a grey level per image plus pixel noise
    grey = rng.uniform(60, 110, (n, 1, 1, 1)).astype(np.float32)
    img = grey + rng.normal(0, NOISE_STD, (n, S, S, 3)).astype(np.float32)

    e = elongation(S, layout)
    tops, lefts, across = _place(rng, n, S, o, layout)
    for (top, left), obj in zip(zip(tops, lefts), objects):
        alpha = bank[obj["size"], obj["shape"], obj["pattern"]]  # (n, o, o)
        colour = PALETTE[obj["color"]] * rng.uniform(0.8, 1.0, (n, 1)).astype(np.float32)  # (n, 3)
        for axis in (0, 1):  # objects stretched e-fold across the axis that separates them
            sel = np.flatnonzero(across == axis)
            a = np.repeat(alpha[sel], e, axis=1 + axis)[..., None]  # (m, h, w, 1)
            rows = top[sel, None] + np.arange(a.shape[1])  # (m, h)
            cols = left[sel, None] + np.arange(a.shape[2])  # (m, w)
            idx = (sel[:, None, None], rows[:, :, None], cols[:, None, :])
            img[idx] = img[idx] * (1 - a) + a * colour[sel, None, None, :]
    images = torch.from_numpy(np.clip(img, 0, 255).round().astype(np.uint8)).permute(0, 3, 1, 2).contiguous()
    return ImageTensors(images, torch.from_numpy(labels.astype(np.int64)))


def _place(rng: np.random.Generator, n: int, S: int, o: int, layout: str
           ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Top-left corners ``((top_a, top_b), (left_a, left_b))`` of the two objects of ``n`` images, and per
    image the axis (0: rows, 1: columns) across which they are stretched `elongation`-fold. ``ends``: at the two
    ends of a random axis, each within `synthetic_jitter` of its border; ``quadrants``: two different quadrants,
    each object near its quadrant's outer corner."""
    margin = synthetic_margin(S, layout)  # = the training translation, so augmentation never cuts an object
    if layout == "ends":
        length = elongation(S, layout) * o       # the object's extent across the separating axis
        span = S - 2 * margin - length + 1       # free positions across it
        jitter = synthetic_jitter(S)
        along_a = margin + rng.integers(0, jitter + 1, n)
        along_b = S - margin - o - rng.integers(0, jitter + 1, n)
        swap = rng.random(n) < 0.5              # which object takes which end
        first, second = np.where(swap, along_b, along_a), np.where(swap, along_a, along_b)
        cross_a, cross_b = margin + rng.integers(0, span, n), margin + rng.integers(0, span, n)
        vertical = rng.random(n) < 0.5          # the axis: top/bottom (objects stretched across x) or left/right
        tops = (np.where(vertical, first, cross_a), np.where(vertical, second, cross_b))
        lefts = (np.where(vertical, cross_a, first), np.where(vertical, cross_b, second))
        return tops, lefts, np.where(vertical, 1, 0)
    half = S // 2
    qa = rng.integers(0, 4, n)
    qb = (qa + rng.integers(1, 4, n)) % 4
    span = max(1, (half - o - margin) // 2 + 1)  # offsets from the quadrant's outer corner
    tops, lefts = [], []
    for q in (qa, qb):
        jy, jx = rng.integers(0, span, n), rng.integers(0, span, n)
        tops.append(np.where(q // 2 == 0, margin + jy, S - margin - o - jy))
        lefts.append(np.where(q % 2 == 0, margin + jx, S - margin - o - jx))
    return (tops[0], tops[1]), (lefts[0], lefts[1]), np.zeros(n, np.int64)


def synthetic_margin(img_size: int, layout: str = "ends") -> int:
    """Free border around the objects, in pixels; also the synthetic task's translation augmentation."""
    return max(1, img_size // (48 if layout == "ends" else 16))


def elongation(img_size: int, layout: str = "ends") -> int:
    """How many times longer than wide an object is across the separating axis (``ends``: nearly the image's
    side, up to `ELONGATION`; a larger object fills more of a global summary, so a dynamic layer learns faster)."""
    if layout != "ends":
        return 1
    o, m = object_side(img_size, layout), synthetic_margin(img_size, layout)
    return max(1, min(ELONGATION, (img_size - 2 * m) // o))


def synthetic_jitter(img_size: int) -> int:
    """How far (pixels) an object of the ``ends`` layout may sit from its end of the axis."""
    return max(0, img_size // 24 - 1)


def synthetic_gap(img_size: int, layout: str = "ends") -> int:
    """Smallest gap in pixels between the two objects along their axis (``ends``), after any translation."""
    if layout != "ends":
        return 0
    o, m = object_side(img_size, layout), synthetic_margin(img_size, layout)
    return img_size - 2 * m - 2 * o - 2 * synthetic_jitter(img_size) + 1


def static_rf_span(arch: Any) -> int:
    """Width in pixels of a static network's theoretical receptive field (`static_rf_box`, unclipped)."""
    from wfsearch.models.erf import static_rf_box

    top, bottom, _, _ = static_rf_box(arch, (1 << 20, 1 << 20))
    return bottom - top


def needs_reach(arch: Any, img_size: int, layout: str = "ends") -> bool:
    """True when the synthetic task's objects are always farther apart than ``arch``'s static receptive field."""
    return synthetic_gap(img_size, layout) >= static_rf_span(arch)


def synthetic_class_names(num_classes: int) -> list[str]:
    """Class ``i`` names the attributes the two objects share: bit b of i set = attribute b shared."""
    n_bits = max(1, math.ceil(math.log2(num_classes)))
    shared = [[ATTRIBUTES[b] for b in range(n_bits) if (i >> b) & 1] for i in range(num_classes)]
    return ["same_" + "_".join(s) if s else "none_shared" for s in shared]


def _stats(images: torch.Tensor) -> tuple[tuple, tuple]:
    """Channel mean and std of the first 1,000 images, scaled to [0, 1]."""
    x = images[:1000].float().div_(255)
    return tuple(x.mean(dim=(0, 2, 3)).tolist()), tuple(x.std(dim=(0, 2, 3)).tolist())


def _load_synthetic(d: DatasetSpec, img: int, err: ErrorFn) -> ProxyData:
    n_cls = d.num_classes or SYNTHETIC_DEFAULTS["num_classes"]
    n_train = d.train_size or SYNTHETIC_DEFAULTS["train_size"]
    n_val = d.val_size or SYNTHETIC_DEFAULTS["val_size"]
    train_seed, val_seed = np.random.SeedSequence(d.seed).spawn(2)
    train = synthetic_images(n_train, img, n_cls, train_seed.generate_state(1)[0], d.layout)
    val = synthetic_images(n_val, img, n_cls, val_seed.generate_state(1)[0], d.layout)
    return ProxyData("synthetic", train, val, synthetic_class_names(n_cls), *_stats(train.images),
                     translate=synthetic_margin(img, d.layout))


def _splits(d: DatasetSpec) -> tuple:
    """``(split, per_class, total)`` of the train and val splits."""
    return ("train", d.samples_per_class, d.train_size), ("val", d.val_samples_per_class, d.val_size)


def _subset(labels: np.ndarray, classes: list[int], per_class: int | None, total: int | None,
            rng: np.random.Generator) -> np.ndarray:
    """Indices of the samples of ``classes`` (at most ``per_class`` each, ``total`` overall), seeded, sorted."""
    keep = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        if per_class is not None and len(idx) > per_class:
            idx = np.sort(rng.choice(idx, per_class, replace=False))
        keep.append(idx)
    idx = np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)
    if total is not None and len(idx) > total:
        idx = np.sort(rng.choice(idx, total, replace=False))
    return idx


def _select_classes(d: DatasetSpec, names: list[str], err: ErrorFn) -> list[int]:
    """Indices (into ``names``) of the classes the dataset keeps, in order."""
    if d.classes is not None:
        missing = [c for c in d.classes if c not in names]
        if missing:
            raise err("classes", list(d.classes),
                      f"{missing[0]!r} is not a class of {d.name} ({len(names)} classes, e.g. {names[:5]})")
        chosen = [names.index(c) for c in d.classes]
    else:
        chosen = list(range(len(names)))
    if d.num_classes is not None:
        if d.num_classes > len(chosen):
            raise err("num_classes", d.num_classes, f"{d.name} has only {len(chosen)} classes to choose from")
        chosen = chosen[:d.num_classes]
    return chosen


def _remap(labels: np.ndarray, chosen: list[int]) -> torch.Tensor:
    lut = np.full(max(chosen) + 1, -1, np.int64)
    lut[chosen] = np.arange(len(chosen))
    return torch.from_numpy(lut[labels])


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``(N, 3, h, w)`` -> uint8 ``(N, 3, size, size)`` (antialiased bilinear), in chunks."""
    if images.shape[-2:] == (size, size):
        return images
    out = torch.empty(len(images), images.shape[1], size, size, dtype=torch.uint8)
    for i in range(0, len(images), 1024):
        x = images[i:i + 1024].float()
        y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[i:i + 1024] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _load_cifar(d: DatasetSpec, img: int, err: ErrorFn) -> ProxyData:
    import torchvision

    cls = torchvision.datasets.CIFAR10 if d.name == "cifar10" else torchvision.datasets.CIFAR100
    root = Path(d.root).expanduser()
    if not d.download and not root.is_dir():
        raise err("root", d.root, "no such folder; point it at the folder holding "
                                  f"{cls.base_folder}/ or set proxy.dataset.download: true")
    splits = {}
    for split, train in (("train", True), ("val", False)):
        try:
            ds = cls(str(root), train=train, download=d.download)
        except RuntimeError as e:  # torchvision: "Dataset not found or corrupted ..."
            raise err("root", d.root, f"{d.name} not found there ({e}); "
                                      "set proxy.dataset.download: true to fetch it") from None
        splits[split] = (np.asarray(ds.data), np.asarray(ds.targets, np.int64), list(ds.classes))
    names = splits["train"][2]
    chosen = _select_classes(d, names, err)
    rng = np.random.default_rng(d.seed)
    out = {}
    for split, per_class, total in _splits(d):
        data, labels, _ = splits[split]
        idx = _subset(labels, chosen, per_class, total, rng)
        images = torch.from_numpy(data[idx]).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32)
        out[split] = ImageTensors(_resize(images, img), _remap(labels[idx], chosen))
    return ProxyData(d.name, out["train"], out["val"], [names[i] for i in chosen], CIFAR_MEAN, CIFAR_STD)


DIGITS_VAL_SHARE = 0.25  # of each class, held out for validation


def _load_digits(d: DatasetSpec, img: int, err: ErrorFn) -> ProxyData:
    """scikit-learn's 8x8 digits, grey as RGB, upsampled; a seeded, class-stratified 75/25 train/val split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise err("name", d.name, "needs scikit-learn, which ships the images: pip install 'wfsearch[digits]'") from None
    bunch = load_digits()
    x = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # (1797, 8, 8), 0..16 -> 0..255
    labels = bunch.target.astype(np.int64)
    names = [str(c) for c in bunch.target_names]
    chosen = _select_classes(d, names, err)
    rng = np.random.default_rng(d.seed)
    val_idx = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:round(DIGITS_VAL_SHARE * (labels == c).sum())]
                              for c in chosen])
    val_mask = np.zeros(len(labels), bool)
    val_mask[val_idx] = True
    out = {}
    for (split, per_class, total), mask in zip(_splits(d), (~val_mask, val_mask)):
        pool = np.flatnonzero(mask)
        idx = pool[_subset(labels[pool], chosen, per_class, total, rng)]
        images = torch.from_numpy(x[idx])[:, None].expand(-1, 3, -1, -1).contiguous()  # (N, 3, 8, 8)
        out[split] = ImageTensors(_resize(images, img), _remap(labels[idx], chosen))
    return ProxyData("digits", out["train"], out["val"], [names[i] for i in chosen], *_stats(out["train"].images),
                     translate=max(1, img // 16))


VAL_FOLDERS = ("val", "validation", "test")


def _load_imagefolder(d: DatasetSpec, img: int, err: ErrorFn) -> ProxyData:
    """Scan and decode an image folder under the policy of `wfsearch.proxy.imagefolder`."""
    from . import imagefolder as IF

    root = Path(d.root).expanduser()
    if not root.is_dir():
        raise err("root", d.root, "no such folder; it must hold train/ and val/ folders with one "
                                  "subfolder of images per class (ImageNet layout)")
    train_dir = root / "train"
    val_dir = next((root / v for v in VAL_FOLDERS if (root / v).is_dir()), None)
    if not train_dir.is_dir() or val_dir is None:
        missing = "train" if not train_dir.is_dir() else "val"
        raise err("root", d.root, f"has no {missing}/ folder; an image folder dataset needs train/ and "
                                  f"val/ (or validation/), each with one subfolder per class")
    names = IF.class_names(train_dir)
    if not names:
        raise err("root", d.root, f"{train_dir} has no class subfolders")
    chosen = _select_classes(d, names, err)
    chosen_names = [names[i] for i in chosen]
    IF.check_class_sets(train_dir, val_dir, names, IF.class_names(val_dir), chosen_names,
                        d.classes is not None or d.num_classes is not None, err, "root", d.root)
    scans = IF.scan_splits(root, {"train": train_dir, "val": val_dir}, chosen_names,
                           follow_links=d.follow_links)
    rng = np.random.default_rng(d.seed)
    workers = d.num_workers or min(8, os.cpu_count() or 1)
    out = {}
    for split, per_class, total in _splits(d):
        scan = scans[split]
        labels = np.array([t for _, t in scan.samples], np.int64)
        idx = _subset(labels, list(range(len(chosen))), per_class, total, rng)
        paths = [scan.samples[i][0] for i in idx]
        arrays, reasons = IF.decode_all(paths, img, workers)
        bad = [(p, r) for p, r in zip(paths, reasons) if r is not None]
        good = [i for i, a in enumerate(arrays) if a is not None]
        kept = labels[idx][good]
        picked = labels[idx]  # a class with no image at all, or whose picked images were all unreadable
        empty = [c for k, c in enumerate(chosen_names) if not (labels == k).any() or
                 ((picked == k).any() and not (kept == k).any())]
        if empty:
            raise err("root", d.root, f"class {empty[0]!r} has no readable images in {scan.folder / empty[0]}"
                                      f"{f' (nor {len(empty) - 1} other classes)' if len(empty) > 1 else ''}; "
                                      "add images or leave the class out with proxy.dataset.classes")
        IF.report_skipped(split, scan, bad, len(paths), root, err, "root", d.root)
        images = torch.from_numpy(np.stack([arrays[i] for i in good])).permute(0, 3, 1, 2).contiguous()
        out[split] = ImageTensors(images, torch.from_numpy(kept))
        log.info("decoded %d %s images from %s at %dx%d", len(good), split, scan.folder, img, img)
    return ProxyData("imagefolder", out["train"], out["val"], chosen_names, IMAGENET_MEAN, IMAGENET_STD)

_MEMORY: dict[str, ProxyData] = {}
_LOADERS = {"synthetic": _load_synthetic, "digits": _load_digits, "cifar10": _load_cifar, "cifar100": _load_cifar,
            "imagefolder": _load_imagefolder}


def load_dataset(proxy: ProxySpec, cache_dir: str | os.PathLike | None = None, origin: str = "") -> ProxyData:
    """``proxy.dataset`` at ``proxy.img_size``, from memory, the disk cache ``cache_dir/data-<key>.pt`` (shared
    by processes), or built and cached now. A mistake names ``origin`` (the spec file) and the key."""
    key, d = data_key(proxy), proxy.dataset
    data = _MEMORY.get(key)
    if data is None and cache_dir is not None:
        data = _read_disk(Path(cache_dir) / f"data-{key}.pt")
    if data is None:
        data = _LOADERS[d.name](d, proxy.img_size, dataset_error(origin))
        if cache_dir is not None:
            _write_disk(Path(cache_dir) / f"data-{key}.pt", data)
        log.info("loaded %s: %d train / %d val images, %d classes, %dx%d", d.name, len(data.train),
                 len(data.val), data.num_classes, data.img_size, data.img_size)
    _MEMORY[key] = data
    return dataclasses.replace(data, augment=d.augment)


def clear_memory_cache() -> None:
    _MEMORY.clear()


def _read_disk(path: Path) -> ProxyData | None:
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, weights_only=True)
        return ProxyData(blob["name"], ImageTensors(blob["train_x"], blob["train_y"]),
                         ImageTensors(blob["val_x"], blob["val_y"]), list(blob["classes"]),
                         tuple(blob["mean"]), tuple(blob["std"]))
    except Exception as e:  # a partial or stale file: rebuild it
        log.warning("ignoring unreadable dataset cache %s (%s)", path, e)
        return None


def _write_disk(path: Path, data: ProxyData) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save({"name": data.name, "train_x": data.train.images, "train_y": data.train.labels,
                "val_x": data.val.images, "val_y": data.val.labels, "classes": data.classes,
                "mean": list(data.mean), "std": list(data.std)}, tmp)
    os.replace(tmp, path)  # atomic: concurrent writers leave one whole file


class TensorBatches:
    """Batches of normalized float images and labels cut from uint8 tensors, on ``device``. Training batches
    are shuffled by a seeded generator and augmented on the device: a random translation by up to ``pad``
    pixels (zero-padded) and a horizontal flip with probability 1/2."""

    def __init__(self, split: ImageTensors, mean: tuple[float, ...], std: tuple[float, ...], batch_size: int,
                 device: torch.device | str = "cpu", shuffle: bool = False, augment: bool = False,
                 pad: int = 0, seed: int = 0, drop_last: bool = False):
        self.device = torch.device(device)
        # small datasets live on the device; large ones stay in (pinned) host memory, a batch at a time moves
        self.on_device = self.device.type == "cpu" or split.images.nbytes <= DEVICE_DATA_BYTES
        self.images = split.images.to(self.device) if self.on_device else _pinned(split.images)
        self.labels = split.labels.to(self.device)
        self.batch_size, self.shuffle, self.augment, self.pad = batch_size, shuffle, augment, pad
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(seed)
        mean_t = torch.tensor(mean, device=self.device).view(1, -1, 1, 1)
        std_t = torch.tensor(std, device=self.device).view(1, -1, 1, 1)
        self.scale = 1.0 / (255.0 * std_t)  # x_float = x_uint8 * scale + shift
        self.shift = -mean_t / std_t

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order_dev = order.to(self.device)
        stop = n - n % self.batch_size if self.drop_last else n
        for i in range(0, stop, self.batch_size):
            idx = order_dev[i:i + self.batch_size]
            if self.on_device:
                x = self.images[idx]
            else:
                x = self.images[order[i:i + self.batch_size]].pin_memory().to(self.device, non_blocking=True)
            if self.augment:
                x = self._augment(x)
            yield torch.addcmul(self.shift, x.float(), self.scale), self.labels[idx]

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        g = self.generator
        flip = (torch.rand(B, generator=g) < 0.5).to(self.device)
        x = torch.where(flip.view(B, 1, 1, 1), x.flip(-1), x)
        p = self.pad
        if p > 0:
            xp = F.pad(x, (p, p, p, p))
            dy = torch.randint(0, 2 * p + 1, (B,), generator=g).to(self.device)
            dx = torch.randint(0, 2 * p + 1, (B,), generator=g).to(self.device)
            rows = (dy[:, None] + torch.arange(H, device=self.device))[:, None, :, None]  # (B, 1, H, 1)
            cols = (dx[:, None] + torch.arange(W, device=self.device))[:, None, None, :]  # (B, 1, 1, W)
            bidx = torch.arange(B, device=self.device)[:, None, None, None]
            cidx = torch.arange(C, device=self.device)[None, :, None, None]
            x = xp[bidx, cidx, rows, cols]
        return x


DEVICE_DATA_BYTES = 1 << 30  # splits up to 1 GiB are copied to the GPU whole


def _pinned(t: torch.Tensor) -> torch.Tensor:
    try:
        return t.pin_memory()
    except RuntimeError:  # no CUDA host allocator (or not enough pinned memory): plain memory
        return t


def augment_pad(data: ProxyData) -> int:
    """Translation range of the training augmentation: the free border for synthetic, 1/8 otherwise."""
    return data.translate if data.translate is not None else max(1, data.img_size // 8)
