"""`Recipe`: everything needed to train one architecture at full scale, as a YAML file.

One pydantic model per section; ``provenance`` and ``launch`` are free-form. Defaults are the released
WeightFormer recipe (He, Han, Huang 2026; a Swin/DeiT-style ImageNet schedule).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from wfsearch.arch.config import MAX_SIZES
from wfsearch.errors import UserError
from wfsearch.space.spec import MAX_COUNT, MAX_EPOCHS, MAX_RATE, MAX_REPEATS, MAX_SEED, MAX_THREADS

RECIPE_VERSION = 1
IMAGENET_MEAN = [0.485, 0.456, 0.406]  # the released recipe normalizes with ImageNet statistics
IMAGENET_STD = [0.229, 0.224, 0.225]
# the released recipe's optimizer and RandAugment policy: validated without importing timm
RELEASED_OPTIMIZER = "adamw"
RELEASED_RAND_AUGMENT = "rand-m9-mstd0.5-inc1"

Probability = Annotated[float, Field(ge=0, le=1)]
MAX_BASE_RATE = 512 * MAX_RATE  # rates per 512 images of global batch: a batch of one scales them by 1/512


def drop_path_for(embed_dim: int) -> float:
    """Stochastic depth of the released recipe: 0.0 at Tiny width (<= 192), 0.2 at Small and above."""
    return 0.0 if embed_dim <= 192 else 0.2


def _rgb(v: list[float]) -> list[float]:
    if len(v) != 3:
        raise ValueError("must list 3 numbers (R, G, B)")
    return v


class _Section(BaseModel):
    # strict: a YAML string is never read as a number, nor a number as a boolean
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class ModelSection(_Section):
    """The network: a registered timm model name and the keyword arguments that rebuild it."""
    name: str = "weightformer_tiny"
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _registered(cls, v: str) -> str:
        from wfsearch.arch import MODEL_SIZES

        if v not in MODEL_SIZES:  # a weightformer_* name is known without importing timm (and torch)
            import timm

            import wfsearch.models  # noqa: F401  (registers weightformer_*)

            if not timm.is_model(v):
                raise ValueError("not a registered timm model; export a trial again or fix the name")
        return v

    @field_validator("kwargs")
    @classmethod
    def _buildable(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:  # now, not at the first batch
        from wfsearch.arch import MODEL_SIZES, ArchConfig
        from wfsearch.space import SpecIssue

        if info.data.get("name") in MODEL_SIZES:
            try:
                ArchConfig.from_dict({**MODEL_SIZES[info.data["name"]], **v})
            except ValueError as e:  # ArchConfig says "field=value: rule"
                field, _, rule = str(e).partition("=")
                if field in v:
                    raise SpecIssue(("model", "kwargs", field), v[field], rule.partition(": ")[2]) from None
                raise ValueError(str(e)) from None
        return v

    def create(self, **overrides: Any):
        """Build the network (``overrides`` win over ``kwargs``, e.g. ``num_classes``)."""
        import timm

        import wfsearch.models  # noqa: F401
        return timm.create_model(self.name, **{**self.kwargs, **overrides})


class DataSection(_Section):
    """ImageFolder data (one sub-folder per class) and the input pipeline."""
    train: str = "/data/imagenet/train"
    val: str = "/data/imagenet/val"
    img_size: int = Field(224, gt=0, le=MAX_SIZES["img_size"])
    interpolation: Literal["bicubic", "bilinear", "nearest"] = "bicubic"
    # channel statistics of pixel values in [0, 1]
    mean: Annotated[list[Probability], AfterValidator(_rgb)] = Field(default_factory=lambda: list(IMAGENET_MEAN))
    std: Annotated[list[Annotated[float, Field(gt=0, le=1)]], AfterValidator(_rgb)] = Field(
        default_factory=lambda: list(IMAGENET_STD))
    crop_pct: float = Field(0.875, gt=0, le=1)  # eval: resize to img_size / crop_pct, center crop img_size
    crop_mode: Literal["squash", "center", "border"] = "squash"  # the released eval resizes both sides, then crops
    workers: int = Field(8, ge=0, le=MAX_THREADS)  # data-loading processes per training process


class TrainSection(_Section):
    """Batch, loss, precision, EMA and seed."""
    batch_size: int = Field(256, gt=0, le=MAX_COUNT)  # per process; the global batch is batch_size x processes
    eval_batch_size: Optional[int] = Field(None, gt=0, le=MAX_COUNT)  # default: batch_size
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    precision: Literal["bf16", "fp32"] = "bf16"  # bf16 autocast (no loss scaling needed) or fp32
    ema: bool = False  # keep an exponential moving average of the weights (timm ModelEmaV3), evaluated too
    ema_decay: float = Field(0.9998, gt=0, lt=1)
    seed: int = Field(0, ge=0, le=MAX_SEED)


class OptimizerSection(_Section):
    """AdamW with the learning rate scaled linearly by global batch / ``lr_base_batch``."""
    name: str = RELEASED_OPTIMIZER  # any timm optimizer name (create_optimizer_v2)
    lr_base: float = Field(5e-4, gt=0, le=MAX_BASE_RATE)  # lr = lr_base * global_batch / lr_base_batch
    lr_base_batch: int = Field(512, gt=0, le=MAX_COUNT)
    betas: list[Annotated[float, Field(ge=0, lt=1)]] = Field([0.9, 0.999], min_length=2, max_length=2)
    eps: float = Field(1e-8, gt=0, le=1)
    weight_decay: float = Field(0.05, ge=0, le=MAX_RATE)
    decay_1d: bool = False  # False: no weight decay on 1-D parameters (norms) and biases
    clip_grad: Optional[float] = Field(5.0, gt=0, le=MAX_COUNT)  # max global gradient norm; null = no clipping

    @field_validator("name")
    @classmethod
    def _timm_optimizer(cls, v: str) -> str:
        if v.lower() == RELEASED_OPTIMIZER:  # known without importing timm (and torch): export stays light
            return v
        from timm.optim import list_optimizers

        if v.lower() not in list_optimizers():
            raise ValueError("not a timm optimizer; the released recipe uses 'adamw'")
        return v

    def scaled(self, value: float, global_batch: int) -> float:
        """``value`` (an lr at ``lr_base_batch``) scaled linearly to ``global_batch``."""
        return value * global_batch / self.lr_base_batch


class ScheduleSection(_Section):
    """Epochs and the learning-rate schedule (per optimizer step by default)."""
    name: Literal["cosine", "linear", "step", "constant"] = "cosine"
    epochs: int = Field(300, gt=0, le=MAX_EPOCHS)
    warmup_epochs: int = Field(20, ge=0)
    warmup_lr_base: float = Field(5e-7, ge=0, le=MAX_BASE_RATE)  # start of the linear warm-up, scaled by global batch / lr_base_batch
    min_lr_base: float = Field(5e-6, ge=0, le=MAX_BASE_RATE)  # floor of the cosine, scaled the same way
    per_step: bool = True  # update the lr after every optimizer step, not once per epoch
    warmup_prefix: bool = False  # False: the cosine spans all epochs, warm-up included (as released)

    @field_validator("warmup_epochs")
    @classmethod
    def _before_the_end(cls, v: int, info: ValidationInfo) -> int:
        epochs = info.data.get("epochs")
        if epochs is not None and v >= epochs:
            raise ValueError(f"must be smaller than schedule.epochs={epochs}")
        return v


class AugmentSection(_Section):
    """Training augmentation: RandAugment, random erasing, Mixup/CutMix (``enabled: false`` = none)."""
    enabled: bool = True  # false: train images get the eval transform and no Mixup/CutMix
    auto_augment: Optional[str] = RELEASED_RAND_AUGMENT
    color_jitter: float = Field(0.4, ge=0, le=MAX_RATE)  # timm skips it when auto_augment is set
    hflip: Probability = 0.5
    scale: list[float] = Field([0.08, 1.0], min_length=2, max_length=2)  # RandomResizedCrop area range
    re_prob: Probability = 0.25
    re_mode: Literal["pixel", "rand", "const"] = "pixel"
    re_count: int = Field(1, gt=0, le=MAX_REPEATS)
    mixup: float = Field(0.8, ge=0, le=MAX_RATE)  # Mixup alpha (0 = off)
    cutmix: float = Field(1.0, ge=0, le=MAX_RATE)  # CutMix alpha (0 = off)
    mixup_prob: Probability = 1.0
    mixup_switch_prob: Probability = 0.5
    mixup_mode: Literal["batch", "pair", "elem"] = "batch"

    @field_validator("scale")
    @classmethod
    def _area_range(cls, v: list[float]) -> list[float]:
        if not 0.0 < v[0] <= v[1] <= 1.0:
            raise ValueError("must be [low, high] with 0 < low <= high <= 1")
        return v

    @field_validator("auto_augment")
    @classmethod
    def _rand_augment(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and v.startswith("rand") and v != RELEASED_RAND_AUGMENT:  # the released one is known
            from timm.data.auto_augment import rand_augment_transform

            try:
                rand_augment_transform(v, {})
            except (AssertionError, ValueError, KeyError):
                raise ValueError("not a timm RandAugment string, e.g. 'rand-m9-mstd0.5-inc1'") from None
        return v

    @property
    def mixup_active(self) -> bool:
        return self.enabled and (self.mixup > 0 or self.cutmix > 0) and self.mixup_prob > 0


class Recipe(_Section):
    """A full training recipe; ``Recipe()`` is the released WeightFormer-Tiny recipe."""
    version: int = RECIPE_VERSION
    name: str = "weightformer_tiny"
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    train: TrainSection = Field(default_factory=TrainSection)
    optimizer: OptimizerSection = Field(default_factory=OptimizerSection)
    schedule: ScheduleSection = Field(default_factory=ScheduleSection)
    augment: AugmentSection = Field(default_factory=AugmentSection)
    provenance: dict[str, Any] = Field(default_factory=dict)
    launch: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, d: Any) -> Any:
        """An empty section (``augment:``) keeps its defaults."""
        return {k: v for k, v in d.items() if v is not None or k in ("version", "name")} if isinstance(d, dict) else d

    @field_validator("version")
    @classmethod
    def _readable(cls, v: int) -> int:
        if v != RECIPE_VERSION:
            raise ValueError(f"this wfsearch reads recipe version {RECIPE_VERSION}; export again")
        return v

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, d: Any, source: str = "recipe") -> "Recipe":
        """Build and validate; a mistake raises `UserError` ``<source>: <key.path>: <value>: <rule>``."""
        from wfsearch.space import validate_model
        return validate_model(cls, d, source)

    def replace(self, source: str = "recipe", **dotted: Any) -> "Recipe":
        """A copy with ``section__field=value`` changes (e.g. ``schedule__epochs=5``), validated."""
        d = self.to_dict()
        for key, value in dotted.items():
            section, _, name = key.partition("__")
            (d[section] if name else d)[name or section] = value
        return Recipe.from_dict(d, source)


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
    """The recipe as YAML, one blank-line-separated block per section, under a usage header."""
    d = recipe.to_dict()
    out = [_HEADER.format(version=recipe.version, name=recipe.name, path=path or "RECIPE.yaml")]
    out.append(yaml.dump({"version": d.pop("version"), "name": d.pop("name")}, Dumper=_Dumper, sort_keys=False))
    for section, body in d.items():
        text = yaml.dump({section: body}, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=10_000)
        out.append("\n" + (_noted(text) if section == "provenance" else text))
    return "".join(out)


def _noted(text: str) -> str:
    """``provenance`` YAML with a comment beside each number `RECIPE_NOTES` names."""
    from wfsearch.study.labels import RECIPE_NOTES

    lines, section = [], ""
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        key = line.strip().split(":")[0]
        if indent == 2:
            section = key
        note = RECIPE_NOTES.get((section, key)) if indent == 4 else None
        lines.append(f"{line}  # {note}" if note and not line.rstrip().endswith(":") else line)
    return "\n".join(lines) + "\n"


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
    if not path.exists():
        raise UserError(f"{path}: no such recipe file; export one with `wfsearch export STUDY --trial N`")
    from wfsearch.space import parse_yaml, read_yaml_text
    # the spec's strict, bounded loader: no duplicate keys, 1e-3 is a number, no FIFO waited on
    d = parse_yaml(read_yaml_text(path, str(path), "a recipe"), str(path))
    return Recipe.from_dict(d, str(path))
