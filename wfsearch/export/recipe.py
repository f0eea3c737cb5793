"""`Recipe`: everything needed to train one architecture at full scale, as a YAML file.

Sections, one dataclass each: ``model`` (a timm name plus keyword overrides, so that
``timm.create_model(model.name, **model.kwargs)`` rebuilds the network once ``wfsearch`` is imported),
``data`` (ImageFolder train/val folders and the input pipeline), ``train``, ``optimizer``,
``schedule``, ``augment``, and two free-form ones: ``provenance`` (where the architecture came from)
and ``launch`` (ready-made commands). Defaults are the released WeightFormer recipe (He, Han, Huang
2026; a Swin/DeiT-style ImageNet schedule). Every section validates itself on construction;
`load_recipe` turns a mistake into one line naming the file, the key and the fix.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from wfsearch.errors import UserError

__all__ = [
    "Recipe", "ModelSection", "DataSection", "TrainSection", "OptimizerSection", "ScheduleSection",
    "AugmentSection", "load_recipe", "save_recipe", "recipe_to_yaml", "drop_path_for",
]

RECIPE_VERSION = 1
IMAGENET_MEAN = [0.485, 0.456, 0.406]  # the released recipe normalizes with ImageNet statistics
IMAGENET_STD = [0.229, 0.224, 0.225]
PRECISIONS = ("bf16", "fp32")
INTERPOLATIONS = ("bicubic", "bilinear", "nearest")
CROP_MODES = ("squash", "center", "border")
MIXUP_MODES = ("batch", "pair", "elem")
RE_MODES = ("pixel", "rand", "const")
SCHEDULES = ("cosine", "linear", "step", "constant")


def drop_path_for(embed_dim: int) -> float:
    """Stochastic depth of the released recipe: 0.0 at Tiny width (<= 192), 0.2 at Small and above."""
    return 0.0 if embed_dim <= 192 else 0.2


def _err(key: str, value: Any, rule: str) -> ValueError:
    return ValueError(f"{key}: {value!r}: {rule}")


def _positive(section: str, obj: Any, names: tuple[str, ...], allow_zero: bool = False) -> None:
    for name in names:
        v = getattr(obj, name)
        if v < 0 or (v == 0 and not allow_zero):
            raise _err(f"{section}.{name}", v, "must be >= 0" if allow_zero else "must be > 0")


def _prob(section: str, obj: Any, names: tuple[str, ...]) -> None:
    for name in names:
        v = getattr(obj, name)
        if not 0.0 <= v <= 1.0:
            raise _err(f"{section}.{name}", v, "must be a probability in [0, 1]")


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise _err(key, value, f"must be one of {list(choices)}")


@dataclass
class ModelSection:
    """The network: a registered timm model name and the keyword arguments that rebuild it."""

    name: str = "weightformer_tiny"
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from wfsearch.arch import MODEL_SIZES, ArchConfig

        if self.name not in MODEL_SIZES:  # a weightformer_* name is known without importing timm (and torch)
            import timm

            import wfsearch.models  # noqa: F401  (registers weightformer_*)

            if not timm.is_model(self.name):
                raise _err("model.name", self.name, "not a registered timm model; export a trial again or fix the name")
        else:  # validate the architecture now rather than at the first batch
            try:
                ArchConfig.from_dict({**MODEL_SIZES[self.name], **self.kwargs})
            except ValueError as e:
                raise ValueError(f"model.kwargs.{e}") from None

    def create(self, **overrides: Any):
        """Build the network (``overrides`` win over ``kwargs``, e.g. ``num_classes``)."""
        import timm

        import wfsearch.models  # noqa: F401

        return timm.create_model(self.name, **{**self.kwargs, **overrides})


@dataclass
class DataSection:
    """ImageFolder data (one sub-folder per class) and the input pipeline."""

    train: str = "/data/imagenet/train"
    val: str = "/data/imagenet/val"
    img_size: int = 224
    interpolation: str = "bicubic"
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    crop_pct: float = 0.875  # eval: resize to img_size / crop_pct, center crop img_size
    crop_mode: str = "squash"  # the released eval resizes both sides (no aspect kept), then crops
    workers: int = 8  # data-loading processes per training process

    def __post_init__(self) -> None:
        _positive("data", self, ("img_size",))
        _positive("data", self, ("workers",), allow_zero=True)
        _choice("data.interpolation", self.interpolation, INTERPOLATIONS)
        _choice("data.crop_mode", self.crop_mode, CROP_MODES)
        if not 0.0 < self.crop_pct <= 1.0:
            raise _err("data.crop_pct", self.crop_pct, "must lie in (0, 1]")
        for name in ("mean", "std"):
            if len(getattr(self, name)) != 3:
                raise _err(f"data.{name}", getattr(self, name), "must list 3 numbers (R, G, B)")
        if any(s <= 0 for s in self.std):
            raise _err("data.std", self.std, "must be > 0")


@dataclass
class TrainSection:
    """Batch, loss, precision, EMA and seed."""

    batch_size: int = 256  # per process; the global batch is batch_size x processes
    eval_batch_size: Optional[int] = None  # default: batch_size
    label_smoothing: float = 0.1
    precision: str = "bf16"  # bf16 autocast (no loss scaling needed) or fp32
    ema: bool = False  # keep an exponential moving average of the weights (timm ModelEmaV3), evaluated too
    ema_decay: float = 0.9998
    seed: int = 0

    def __post_init__(self) -> None:
        _positive("train", self, ("batch_size",))
        if self.eval_batch_size is not None:
            _positive("train", self, ("eval_batch_size",))
        if not 0.0 <= self.label_smoothing < 1.0:
            raise _err("train.label_smoothing", self.label_smoothing, "must lie in [0, 1)")
        _choice("train.precision", self.precision, PRECISIONS)
        if not 0.0 < self.ema_decay < 1.0:
            raise _err("train.ema_decay", self.ema_decay, "must lie in (0, 1)")


@dataclass
class OptimizerSection:
    """AdamW with the learning rate scaled linearly by global batch / ``lr_base_batch``."""

    name: str = "adamw"  # any timm optimizer name (create_optimizer_v2)
    lr_base: float = 5e-4  # lr = lr_base * global_batch / lr_base_batch
    lr_base_batch: int = 512
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.05
    decay_1d: bool = False  # False: no weight decay on 1-D parameters (norms) and biases
    clip_grad: Optional[float] = 5.0  # max global gradient norm; null = no clipping

    def __post_init__(self) -> None:
        _positive("optimizer", self, ("lr_base", "lr_base_batch", "eps"))
        _positive("optimizer", self, ("weight_decay",), allow_zero=True)
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise _err("optimizer.betas", self.betas, "must be two numbers in [0, 1), e.g. [0.9, 0.999]")
        if self.clip_grad is not None and self.clip_grad <= 0:
            raise _err("optimizer.clip_grad", self.clip_grad, "must be > 0, or null for no clipping")
        from timm.optim import list_optimizers

        if self.name.lower() not in list_optimizers():
            raise _err("optimizer.name", self.name, "not a timm optimizer; the released recipe uses 'adamw'")

    def scaled(self, value: float, global_batch: int) -> float:
        """``value`` (an lr at ``lr_base_batch``) scaled linearly to ``global_batch``."""
        return value * global_batch / self.lr_base_batch


@dataclass
class ScheduleSection:
    """Epochs and the learning-rate schedule (per optimizer step by default)."""

    name: str = "cosine"
    epochs: int = 300
    warmup_epochs: int = 20
    warmup_lr_base: float = 5e-7  # start of the linear warm-up, scaled by global batch / lr_base_batch
    min_lr_base: float = 5e-6  # floor of the cosine, scaled the same way
    per_step: bool = True  # update the lr after every optimizer step, not once per epoch
    warmup_prefix: bool = False  # False: the cosine spans all epochs, warm-up included (as released)

    def __post_init__(self) -> None:
        _choice("schedule.name", self.name, SCHEDULES)
        _positive("schedule", self, ("epochs",))
        _positive("schedule", self, ("warmup_epochs", "warmup_lr_base", "min_lr_base"), allow_zero=True)
        if self.warmup_epochs >= self.epochs:
            raise _err("schedule.warmup_epochs", self.warmup_epochs,
                       f"must be smaller than schedule.epochs={self.epochs}")


@dataclass
class AugmentSection:
    """Training augmentation: RandAugment, random erasing, Mixup/CutMix (``enabled: false`` = none)."""

    enabled: bool = True  # false: train images get the eval transform and no Mixup/CutMix
    auto_augment: Optional[str] = "rand-m9-mstd0.5-inc1"
    color_jitter: float = 0.4  # timm skips it when auto_augment is set
    hflip: float = 0.5
    scale: list[float] = field(default_factory=lambda: [0.08, 1.0])  # RandomResizedCrop area range
    re_prob: float = 0.25
    re_mode: str = "pixel"
    re_count: int = 1
    mixup: float = 0.8  # Mixup alpha (0 = off)
    cutmix: float = 1.0  # CutMix alpha (0 = off)
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    mixup_mode: str = "batch"

    def __post_init__(self) -> None:
        _prob("augment", self, ("hflip", "re_prob", "mixup_prob", "mixup_switch_prob"))
        _positive("augment", self, ("color_jitter", "mixup", "cutmix"), allow_zero=True)
        _positive("augment", self, ("re_count",))
        _choice("augment.re_mode", self.re_mode, RE_MODES)
        _choice("augment.mixup_mode", self.mixup_mode, MIXUP_MODES)
        if len(self.scale) != 2 or not 0.0 < self.scale[0] <= self.scale[1] <= 1.0:
            raise _err("augment.scale", self.scale, "must be [low, high] with 0 < low <= high <= 1")
        if self.auto_augment is not None:
            from timm.data.auto_augment import rand_augment_transform

            if self.auto_augment.startswith("rand"):
                try:
                    rand_augment_transform(self.auto_augment, {})
                except (AssertionError, ValueError, KeyError):
                    raise _err("augment.auto_augment", self.auto_augment,
                               "not a timm RandAugment string, e.g. 'rand-m9-mstd0.5-inc1'") from None

    @property
    def mixup_active(self) -> bool:
        return self.enabled and (self.mixup > 0 or self.cutmix > 0) and self.mixup_prob > 0


SECTIONS: dict[str, type] = {
    "model": ModelSection, "data": DataSection, "train": TrainSection, "optimizer": OptimizerSection,
    "schedule": ScheduleSection, "augment": AugmentSection,
}


@dataclass
class Recipe:
    """A full training recipe; ``Recipe()`` is the released WeightFormer-Tiny recipe."""

    name: str = "weightformer_tiny"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    optimizer: OptimizerSection = field(default_factory=OptimizerSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    augment: AugmentSection = field(default_factory=AugmentSection)
    provenance: dict[str, Any] = field(default_factory=dict)
    launch: dict[str, str] = field(default_factory=dict)
    version: int = RECIPE_VERSION

    def __post_init__(self) -> None:
        if self.version != RECIPE_VERSION:
            raise _err("version", self.version, f"this wfsearch reads recipe version {RECIPE_VERSION}; export again")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {"version": d.pop("version"), **d}

    @classmethod
    def from_dict(cls, d: Any) -> "Recipe":
        """Build and validate; a mistake raises ValueError ``<key.path>: <value>: <rule>``."""
        return _build(cls, d, "")

    def replace(self, **dotted: Any) -> "Recipe":
        """A copy with ``section__field=value`` changes (e.g. ``schedule__epochs=5``), validated."""
        d = self.to_dict()
        for key, value in dotted.items():
            section, _, name = key.partition("__")
            if name:
                d[section][name] = value
            else:
                d[section] = value
        return Recipe.from_dict(d)


# ---- building from plain data with typed, one-line errors ----

def _build(cls: type, d: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "recipe"
    if not isinstance(d, dict):
        raise _err(where, d, "must be a mapping of keys to values")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in d if k not in known]
    if unknown:
        raise _err(f"{prefix}{unknown[0]}", d[unknown[0]], f"unknown key; known keys here: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in d.items():
        tp = hints[name]
        if cls is Recipe and name in SECTIONS:
            kwargs[name] = _build(SECTIONS[name], {} if value is None else value, f"{name}.")
        else:
            kwargs[name] = _coerce(value, tp, f"{prefix}{name}")
    return cls(**kwargs)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise _err(key, value, "must be true or false")
        return value
    if tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _err(key, value, "must be an integer")
        return value
    if tp is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _err(key, value, "must be a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _err(key, value, "must be a string")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise _err(key, value, "must be a list")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise _err(key, value, "must be a mapping")
        return {k: _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()} if args else dict(value)
    raise AssertionError(f"unhandled recipe field type {tp} at {key}")


# ---- YAML ----

_HEADER = """\
# wfsearch training recipe (version {version}): {name}
# Train:   wfsearch train {path} --data /path/to/imagenet
# Rebuild: import timm, wfsearch; timm.create_model(model.name, **model.kwargs)
# The learning rates below are per 512 images of global batch (global = train.batch_size x processes).
"""


class _Dumper(yaml.SafeDumper):
    """Mappings as blocks, lists inline (``betas: [0.9, 0.999]``), long lines never folded."""


_Dumper.add_representer(list, lambda dumper, data: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", data, flow_style=True))


def recipe_to_yaml(recipe: Recipe, path: str | Path | None = None) -> str:
    """The recipe as YAML text, one blank-line-separated block per section, with a usage header."""
    d = recipe.to_dict()
    out = [_HEADER.format(version=recipe.version, name=recipe.name, path=path or "RECIPE.yaml")]
    out.append(yaml.dump({"version": d.pop("version"), "name": d.pop("name")}, Dumper=_Dumper, sort_keys=False))
    for section, body in d.items():
        out.append("\n" + yaml.dump({section: body}, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                                     width=10_000))
    return "".join(out)


def save_recipe(recipe: Recipe, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(recipe_to_yaml(recipe, path))
    tmp.replace(path)
    return path


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe; any mistake raises `UserError` ``<file>: <key>: <value>: <rule>``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such recipe file; export one with `wfsearch export STUDY --trial N`")
    from wfsearch.space import parse_yaml

    d = parse_yaml(path.read_text(), str(path))  # the spec's strict loader: no duplicate keys, 1e-3 is a number
    try:
        return Recipe.from_dict(d)
    except ValueError as e:
        raise UserError(f"{path}: {e}") from None
