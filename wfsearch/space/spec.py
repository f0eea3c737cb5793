"""`SpaceSpec`: the typed form of a design-space YAML file, each section a frozen pydantic model with
``extra="forbid"``; cross-field rules live in `wfsearch.space.checks`, loading in `wfsearch.space.loader`."""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, InstanceOf,
                      PlainSerializer, PrivateAttr, WithJsonSchema, field_validator, model_validator)

from wfsearch.errors import UserError
from wfsearch.arch.config import ENUMS, MAX_SIZES, ArchConfig
from wfsearch.suggest import did_you_mean

# metric name -> the direction that is better, used when an objective gives none
METRICS: dict[str, str] = {
    "accuracy": "maximize",  # proxy top-1 on the validation split, in [0, 1]
    "throughput": "maximize",  # images/s at throughput.img_size x throughput.batch_size
    "throughput_ratio": "maximize",  # throughput / throughput of throughput.reference
    "params": "minimize",
    "macs": "minimize",  # multiply-accumulates of one image at throughput.img_size
    "memory": "minimize",  # peak memory of a training step, bytes
    "latency_highres": "minimize",  # ms per image at throughput.highres
}
SAMPLERS = ("auto", "nsga2", "tpe", "gp", "random", "grid")
DATASETS = ("synthetic", "digits", "cifar10", "cifar100", "imagefolder")
DATASET_CLASSES = {"digits": 10, "cifar10": 10, "cifar100": 100}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SYNTHETIC_CLASSES = (2, 16, 4)  # min, max, default classes of the synthetic task
SYNTHETIC_SIZES = (5000, 1000)  # default training and validation images of the synthetic task
DEPLOYED_NUM_CLASSES = 1000  # the deployed network's head unless throughput.arch sets num_classes
DTYPES = ("float32", "bfloat16", "float16")
_DEVICE_RE = r"^(auto|cpu|mps|cuda(:\d+)?)$"
_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
MAX_NAME_LENGTH = 128  # a study name names a folder; `--fresh` keeps the old study as <name>-<timestamp>
MAX_CHOICES = 10_000  # values of one choice knob; a longer list is a range: {int: [low, high], step: ...}
MAX_EPOCHS = 100_000  # proxy epochs; a proxy trains for a handful
# bounds of the other counts: far above any use, so that no value is accepted that fails later
MAX_SEED = 2**32 - 1  # NumPy's and Optuna's samplers take seeds in [0, 2**32)
MAX_CPUS, MAX_GPUS, MAX_THREADS = 4096, 1024, 4096
MAX_COUNT = 10**9  # images, batches, concurrent trials
MAX_REPEATS = 10_000  # timing loops
MAX_RATE = 100.0  # learning rates and weight decay: a larger one only diverges


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, allow_inf_nan=False)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_]+)\s*(<=|>=|<|>|==|=|!=)\s*([-+0-9.eE_]+)\s*([kKMGT]?)\s*$")
_UNIT_RE = re.compile(r"^\s*([A-Za-z_]+)\s*(<=|>=|<|>|==|=|!=)\s*"
                      r"([-+0-9.eE_]*[0-9][0-9_]*\.?[0-9_]*)\s*([A-Za-z%/]+)\s*$")
_SUFFIX = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


@dataclass(frozen=True)
class Constraint:
    """``metric op value``, e.g. ``params <= 30e6``; a trial is feasible when it holds."""

    metric: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


def parse_constraint(text: Any) -> Constraint:
    """Parse ``"params <= 30e6"`` (suffixes k, M, G, T allowed: ``"macs < 1.5G"``)."""
    if isinstance(text, Constraint):
        return text
    if not isinstance(text, str):
        raise ValueError("a constraint is a string 'METRIC OP VALUE', e.g. 'params <= 30e6'")
    m = _CONSTRAINT_RE.match(text)
    if not m:
        unit = _UNIT_RE.match(text)
        if unit:
            metric, op, num, word = unit.groups()
            scale = _SUFFIX.get(word[0], 1.0) if word[0] in "kKMGT" and len(word) > 1 else 1.0
            bound = f"{float(num.replace('_', '')) * scale:g}".replace("e+0", "e").replace("e+", "e")
            short = f" (or {metric} {op} {num}{word[0]})" if scale != 1.0 else ""
            raise ValueError(f"units such as {word!r} are not accepted; write the bound as a plain number: "
                             f"'{metric} {op} {bound}'{short}")
        raise ValueError("a constraint is 'METRIC OP VALUE' with OP one of <=, <, >=, >, e.g. 'params <= 30e6'")
    metric, op, num, suffix = m.groups()
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}{did_you_mean(metric, METRICS)}; metrics are {list(METRICS)}")
    if op not in ("<=", "<", ">=", ">"):
        raise ValueError(f"operator {op!r} is not supported; use <=, <, >= or >")
    try:
        value = float(num.replace("_", "")) * _SUFFIX[suffix]
    except ValueError:
        raise ValueError(f"{num!r} is not a number; write e.g. 30e6 or 30M") from None
    if not math.isfinite(value):
        raise ValueError("the bound must be a finite number")
    return Constraint(metric, op, value)


ConstraintField = Annotated[
    InstanceOf[Constraint],
    BeforeValidator(parse_constraint),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\s*[a-z_]+\s*(<=|<|>=|>)\s*[-+0-9.eE_]+\s*[kKMGT]?\s*$",
                    "examples": ["params <= 30e6", "macs < 1.5G", "throughput >= 500"]}),
]


class Objective(_Section):
    """One objective of the study; ``direction`` defaults to the metric's natural one."""

    name: Literal[tuple(METRICS)]  # type: ignore[valid-type]
    """the metric to optimize"""
    direction: Optional[Literal["maximize", "minimize"]] = None
    """maximize or minimize (default: maximize accuracy/throughput, minimize costs)"""

    @model_validator(mode="before")
    @classmethod
    def _default_direction(cls, v: Any) -> Any:
        if isinstance(v, dict) and v.get("direction") is None and v.get("name") in METRICS:
            v = {**v, "direction": METRICS[v["name"]]}
        return v


class SchedulerSpec(_Section):
    """Multi-fidelity early stopping over the ``proxy.epochs`` rungs."""

    type: Literal["mo_asha", "none"] = "mo_asha"
    """mo_asha: multi-objective ASHA stops dominated trials at each rung; none: train every trial fully"""
    reduction_factor: int = Field(3, ge=2, le=1000)
    """keep about 1/reduction_factor of the trials at each rung"""


class StudySpec(_Section):
    name: Optional[str] = Field(None, pattern=_NAME_RE, max_length=MAX_NAME_LENGTH)
    """study name, also the folder studies/<name>/ (default: the spec file's stem)"""
    trials: int = Field(20, ge=1, le=1_000_000, strict=True)
    """number of finished trials to reach (references not counted)"""
    sampler: Literal[SAMPLERS] = "auto"  # type: ignore[valid-type]
    """nsga2, tpe, gp, random, grid (discrete spaces only) or auto; random with scheduler none explores"""
    seed: int = Field(0, ge=0, le=MAX_SEED, description="seed of the sampler")
    storage: Optional[str] = None
    """Optuna RDB URL (default sqlite:///studies/<name>/optuna.db, resolved against the current directory)"""
    objectives: list[Annotated[Objective, BeforeValidator(
        lambda v: {"name": v} if isinstance(v, str) else v,
        json_schema_input_type=Union[Literal[tuple(METRICS)], Objective])]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: [Objective(name="accuracy"), Objective(name="throughput")], min_length=1)
    """metrics to optimize, each a name or {name, direction}"""
    constraints: list[ConstraintField] = Field(default_factory=list)
    """bounds a trial must satisfy to count as feasible, e.g. 'params <= 30e6'"""
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    """early stopping of unpromising trials over the proxy epochs"""

    @field_validator("objectives")
    @classmethod
    def _unique_objectives(cls, v: list[Objective]) -> list[Objective]:
        names = [o.name for o in v]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise ValueError(f"objective {dup!r} is listed twice; list each metric once")
        return v


class ResourcesSpec(_Section):
    cpus_per_trial: float = Field(1.0, gt=0, le=MAX_CPUS)
    """CPU cores reserved per trial (fractions allowed)"""
    gpus_per_trial: float = Field(0.0, ge=0, le=MAX_GPUS)
    """GPUs per trial; a fraction such as 0.5 packs trials onto one GPU"""
    max_concurrent: Optional[int] = Field(None, ge=1, le=MAX_COUNT)
    """most trials running at once (null: as many as the resources fit)"""

    @field_validator("gpus_per_trial")
    @classmethod
    def _whole_when_above_one(cls, v: float) -> float:
        if v > 1 and not float(v).is_integer():
            raise ValueError("more than one GPU per trial must be a whole number (fractions only below 1)")
        return v


class DatasetSpec(_Section):
    """The proxy task, as `wfsearch.proxy.data.load_dataset` loads it (at `ProxySpec.img_size`)."""

    name: Literal[DATASETS] = "synthetic"  # type: ignore[valid-type]
    """synthetic (generated), digits (scikit-learn's 1,797 digits), cifar10, cifar100 or imagefolder"""
    root: Optional[str] = None
    """data folder (cifar: default ./data; imagefolder: the folder with train/ and val/)"""
    download: bool = Field(False, description="let torchvision download cifar10/cifar100 into root when missing")
    num_classes: Optional[int] = Field(None, ge=2, le=MAX_SIZES["num_classes"])
    """synthetic: 2..16 classes (default 4); others: keep the first N classes (default: all, or len(classes))"""
    classes: Optional[list[str]] = Field(None, min_length=2)
    """cifar/imagefolder: keep these classes (names), in this order"""
    train_size: Optional[int] = Field(None, ge=1, le=MAX_COUNT)
    """training images (synthetic: how many to generate, default 5000; others: a cap)"""
    val_size: Optional[int] = Field(None, ge=1, le=MAX_COUNT)
    """validation images (synthetic: default 1000; others: a cap)"""
    samples_per_class: Optional[int] = Field(None, ge=1, le=MAX_COUNT)
    """cifar/imagefolder: cap on training images per class"""
    val_samples_per_class: Optional[int] = Field(None, ge=1, le=MAX_COUNT)
    """cifar/imagefolder: cap on validation images per class"""
    seed: int = Field(0, ge=0, le=MAX_SEED)
    """the dataset's own seed (synthetic generation, subsetting), not the training seed"""
    layout: Literal["ends", "quadrants"] = "ends"
    """synthetic: the two objects sit at the ends of an axis (beyond a static receptive field) or in quadrants"""
    num_workers: int = Field(0, ge=0, le=MAX_THREADS)
    """threads decoding an image folder (0: one per CPU, at most 8)"""
    augment: bool = Field(True, description="random translation and horizontal flip while training")
    follow_links: bool = False
    """imagefolder: also follow links out of root (never twice, never into another class or split)"""


def _increasing(v: list[int]) -> list[int]:
    if any(b <= a for a, b in zip(v, v[1:])):
        raise ValueError("epoch rungs must be strictly increasing, e.g. [1, 3, 9]; the last is the full budget")
    return v


class ProxySpec(_Section):
    """The short training that ranks architectures (same for every trial and reference)."""

    dataset: DatasetSpec = Field(default_factory=DatasetSpec, description="the proxy task")
    img_size: int = Field(32, ge=8, le=MAX_SIZES["img_size"])
    """training resolution; becomes the architecture's img_size unless base sets one"""
    epochs: Annotated[list[Annotated[int, Field(ge=1, le=MAX_EPOCHS, strict=True)]],
                      BeforeValidator(lambda v: [v] if _is_int(v) else v, json_schema_input_type=int | list[int]),
                      AfterValidator(_increasing)] = Field(default_factory=lambda: [1, 3], min_length=1)
    """fidelity rungs: epochs after which a trial reports and may be stopped; the last is the full budget"""
    batch_size: int = Field(128, ge=1, le=MAX_COUNT)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(2e-3, gt=0, le=MAX_RATE)
    """peak learning rate (cosine decay to min_lr after a linear warm-up)"""
    min_lr: float = Field(1e-5, ge=0, le=MAX_RATE)
    weight_decay: float = Field(0.05, ge=0, le=MAX_RATE)
    predictor_lr_scale: float = Field(1.0, gt=0, le=1000)
    """learning rate of the dynamic-weight predictors / lr (their ΔW starts near zero; a short proxy may need more)"""
    warmup_epochs: float = Field(1.0, ge=0, le=MAX_EPOCHS)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    grad_clip: Optional[float] = Field(1.0, ge=0, le=MAX_COUNT)
    """clip the global gradient norm to this value (0 or null: no clipping)"""
    seed: int = Field(0, ge=0, le=MAX_SEED)
    """seed of initialization and data order (the same for every trial)"""
    device: str = Field("auto", pattern=_DEVICE_RE)
    """auto (the trial's GPU when it has one, else CPU), cpu, cuda, cuda:N"""
    dtype: Literal[("auto",) + DTYPES] = "auto"  # type: ignore[valid-type]
    """autocast dtype of training (auto: bfloat16 on CUDA, float32 on CPU)"""
    eval_batch_size: Optional[int] = Field(None, ge=1, le=MAX_COUNT)
    """validation batch (default: 2 x batch_size)"""
    num_threads: Optional[int] = Field(None, ge=1, le=MAX_THREADS)
    """CPU threads of one trial (default: torch's setting)"""

    @property
    def max_epochs(self) -> int:
        """The full proxy budget: the last fidelity rung."""
        return self.epochs[-1]


_SCHEMAS: dict[str, Any] = {
    "mlp_ratio": {"type": "number"}, "drop_path_rate": {"type": "number"}, "drop_rate": {"type": "number"},
    "img_size": {"anyOf": [{"type": "integer"},
                           {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}]},
    "fc1_pool": {"anyOf": [{"type": "integer", "minimum": 1}, {"const": "global"}]},
    "dwconv_pool": {"type": "integer", "minimum": 1,
                    "description": "1 (global) or kernel_size (the default: one summary per tap)"},
    "dynamic_blocks": {"anyOf": [{"type": "string", "examples": ["all", "none", "every:3:1", "first:4", "last:4"]},
                                 {"type": "array", "items": {"type": "integer", "minimum": 0}}]},
}
# JSON Schema of the ArchConfig fields, for editor completion of base and references' arch
ArchFields = Annotated[dict[str, Any], WithJsonSchema({
    "type": "object", "additionalProperties": False,
    "properties": {n: {"enum": ENUMS[n]} if n in ENUMS else _SCHEMAS.get(n, {"type": "integer"})
                   for n in ArchConfig.field_names()},
    "description": "ArchConfig fields (a null removes an entry inherited through extends)"})]


class ThroughputSpec(_Section):
    """The deployment setting in which speed is measured (independent of the proxy's)."""

    img_size: int = Field(224, ge=1, le=MAX_SIZES["img_size"], description="target resolution")
    batch_size: int = Field(64, ge=1, le=MAX_COUNT, description="target batch")
    reference: Optional[str] = "deit_tiny_patch16_224"
    """timm model measured interleaved with every trial (throughput_ratio = trial / reference)"""
    device: str = Field("auto", pattern=_DEVICE_RE, description="auto, cpu, cuda, cuda:N")
    dtype: Literal[DTYPES] = "float32"  # type: ignore[valid-type]
    warmup: int = Field(2, ge=0, le=MAX_REPEATS, description="untimed batches per model")
    repeats: int = Field(5, ge=1, le=MAX_REPEATS, description="timed repeats per model (the median is reported)")
    iters: int = Field(3, ge=1, le=MAX_REPEATS, description="batches per timed repeat")
    highres: Optional[int] = Field(None, ge=1, le=MAX_SIZES["img_size"])
    """also measure latency at this resolution (e.g. 1024), for the latency_highres metric"""
    highres_batch_size: int = Field(1, ge=1, le=MAX_COUNT)
    clock: Literal["auto", "wall", "process"] = "auto"
    """CPU timer: process (this process's CPU time), wall, or auto (process with one thread, wall otherwise)"""
    compile: Literal["none", "default", "max-autotune"] = "none"
    """torch.compile mode of the measured model and the reference (compile time reported apart, as compile_seconds)"""
    exclusive: bool = True
    """hold the device alone while measuring (other trials' steps on it pause), so trials do not skew each other"""
    arch: ArchFields = Field(default_factory=dict)
    """ArchConfig overrides for the deployed model, e.g. {patch_size: 16, embed_dim: 192, depth: 12}"""

    def deployed(self, arch: ArchConfig) -> ArchConfig:
        """``arch`` as deployed: at ``img_size`` with the ``arch`` overrides, 1000 classes unless they set
        ``num_classes`` (ValueError if it cannot be built)."""
        return arch.replace(img_size=self.img_size, **{"num_classes": DEPLOYED_NUM_CLASSES, **self.arch})


def encode_choice(value: Any) -> Any:
    """An Optuna categorical value for a choice: scalars as they are, lists (placements) as JSON text."""
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else value


class Knob(_Section):
    """One searched ArchConfig field: exactly one of ``choice``, ``int`` or ``float``."""

    choice: Optional[list[Any]] = Field(None, min_length=1, max_length=MAX_CHOICES)
    """the values to choose from"""
    int_: Optional[tuple[int, int]] = Field(None, alias="int", description="[low, high], both included")
    float_: Optional[tuple[float, float]] = Field(None, alias="float", description="[low, high]")
    step: Optional[float] = Field(None, gt=0, description="spacing of an int or float range")
    log: bool = Field(False, description="sample a range on a log scale")
    when: dict[str, Annotated[list[Any], BeforeValidator(lambda v: v if isinstance(v, list) else [v],
                                                         json_schema_input_type=Any)]] = Field(default_factory=dict)
    """sample this knob only when every listed field takes one of the listed values"""

    @field_validator("choice")
    @classmethod
    def _unique_choices(cls, v: Optional[list[Any]]) -> Optional[list[Any]]:
        seen: set[str] = set()
        for c in v or ():  # one pass: a long list must not cost n^2
            key = json.dumps(c, sort_keys=True, default=str)
            if key in seen:
                raise ValueError(f"{c!r} is listed twice; list each choice once")
            seen.add(key)
        return v

    @field_validator("int_", "float_")
    @classmethod
    def _ordered(cls, v: Optional[tuple[float, float]]) -> Optional[tuple[float, float]]:
        if v is not None and v[0] > v[1]:
            raise ValueError(f"low <= high must hold, but got (low={v[0]}, high={v[1]})")
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> "Knob":
        kinds = [k for k, v in (("choice", self.choice), ("int", self.int_), ("float", self.float_)) if v is not None]
        if len(kinds) != 1:
            raise ValueError("a knob is exactly one of {choice: [...]}, {int: [low, high]} or {float: [low, high]}"
                             + (f"; got {' and '.join(kinds)}" if kinds else ""))
        if self.choice is not None and (self.step is not None or self.log):
            raise ValueError("step and log apply to int and float ranges, not to choice")
        if self.log and self.step is not None:
            raise ValueError("a range is either log-scaled or stepped, not both; drop step or log")
        if self.log and self.range[0] <= 0:
            raise ValueError(f"a log range needs low > 0, but got low={self.range[0]}")
        if self.int_ is not None and self.step is not None:
            if not float(self.step).is_integer():
                raise ValueError(f"the step of an int range must be a whole number, got {self.step}")
            object.__setattr__(self, "step", int(self.step))
        if self.step is not None:
            lo, hi = self.range
            n = (hi - lo) / self.step
            if hi > lo and self.step > hi - lo:
                raise ValueError(f"step {self.step:g} is larger than the range [{lo:g}, {hi:g}]; use a smaller step")
            if n > MAX_COUNT:
                raise ValueError(f"step {self.step:g} cuts [{lo:g}, {hi:g}] into more than {MAX_COUNT:,} values; "
                                 "use a larger step, or none for a continuous range")
            if abs(n - round(n)) > 1e-9 * max(1.0, n):
                raise ValueError(f"step {self.step:g} does not divide [{lo:g}, {hi:g}]: make high - low a multiple "
                                 "of the step")
        return self

    @property
    def kind(self) -> str:
        return "choice" if self.choice is not None else "int" if self.int_ is not None else "float"

    @property
    def range(self) -> tuple[float, float]:
        return self.int_ if self.int_ is not None else self.float_  # type: ignore[return-value]

    def cardinality(self) -> Optional[int]:
        """How many values the knob can take; None for a continuous range."""
        if self.choice is not None:
            return len(self.choice)
        lo, hi = self.range
        if self.int_ is not None:
            return (hi - lo) // (self.step or 1) + 1
        return None if self.step is None else int(math.floor((hi - lo) / self.step + 1e-9)) + 1

    def values(self, limit: int = 256) -> Optional[list[Any]]:
        """Every value the knob can take, or None when there are more than ``limit`` (or infinitely many)."""
        n = self.cardinality()
        if n is None or n > limit:
            return None
        if self.choice is not None:
            return list(self.choice)
        lo, hi = self.range
        if self.int_ is not None:
            return list(range(lo, hi + 1, self.step or 1))
        return [lo + i * self.step for i in range(n)]

    def contains(self, value: Any) -> bool:
        if self.choice is not None:
            return any(_same(value, c) for c in self.choice)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        lo, hi = self.range
        if not lo <= value <= hi:
            return False
        if self.int_ is not None:
            return float(value).is_integer() and (value - lo) % (self.step or 1) == 0
        return self.step is None or abs((value - lo) / self.step - round((value - lo) / self.step)) < 1e-9

    def suggest(self, trial: Any, name: str) -> Any:
        """Ask an Optuna trial for this knob's value (define-by-run)."""
        if self.choice is not None:
            encoded = [encode_choice(c) for c in self.choice]
            picked = trial.suggest_categorical(name, encoded)
            return self.choice[encoded.index(encode_choice(picked))]
        lo, hi = self.range
        if self.int_ is not None:
            return trial.suggest_int(name, lo, hi, step=self.step or 1, log=self.log)
        return trial.suggest_float(name, lo, hi, step=self.step, log=self.log)

    def describe(self) -> str:
        if self.choice is not None:
            return "choice " + json.dumps(self.choice)
        lo, hi = self.range
        extra = f" step {self.step:g}" if self.step is not None else (" log" if self.log else "")
        return f"{self.kind} [{lo:g}, {hi:g}]{extra}"

    def active(self, values: dict[str, Any]) -> bool:
        """Whether the condition holds for ``values`` (effective ArchConfig field values)."""
        return all(any(_same(arch_value(values, f), v) for v in allowed) for f, allowed in self.when.items())


def _same(a: Any, b: Any) -> bool:
    """Equality of YAML values that keeps 1, True, "1" and [1] apart."""
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and list(a) == list(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return isinstance(a, str) == isinstance(b, str) and a == b


_ARCH_DEFAULTS = {f: ArchConfig.__dataclass_fields__[f].default for f in ArchConfig.field_names()}


def arch_value(values: dict[str, Any], field: str) -> Any:
    """The value of an ArchConfig field in a partial kwargs dict, else its ArchConfig default."""
    return values[field] if field in values else _ARCH_DEFAULTS[field]


class Reference(_Section):
    """A fixed model evaluated with the same proxy and measurement: an architecture or a timm model."""

    name: str = Field(pattern=_NAME_RE)
    arch: Optional[ArchFields] = Field(None, description="ArchConfig fields applied on top of base")
    model: Optional[str] = Field(None, description="a timm model name, e.g. deit_tiny_patch16_224")

    @model_validator(mode="after")
    def _one_kind(self) -> "Reference":
        if (self.arch is None) == (self.model is None):
            raise ValueError("a reference has exactly one of arch: {ArchConfig fields} or model: <timm name>")
        return self


@dataclass(frozen=True)
class ResolvedReference:
    """A reference ready to evaluate: ``arch`` for a WeightFormer-style network, else ``model`` (timm)."""

    name: str
    arch: Optional[ArchConfig] = None
    model: Optional[str] = None


@dataclass(frozen=True)
class SpaceSize:
    """Knob ``combinations`` (None: too many to count), how many build (None: undecided at load time),
    and whether some knob is a continuous range."""

    combinations: Optional[int]
    buildable: Optional[int]
    continuous: bool


class SpaceSpec(_Section):
    """A whole design-space study: what to search, how to rank it, how to measure speed."""

    model_config = ConfigDict(title="wfsearch design-space spec")

    study: StudySpec = Field(default_factory=StudySpec)
    """the Optuna study: trials, sampler, objectives, constraints, storage"""
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec, description="what each parallel trial reserves")
    proxy: ProxySpec = Field(default_factory=ProxySpec, description="the short training that ranks architectures")
    throughput: ThroughputSpec = Field(default_factory=ThroughputSpec)
    """the deployment setting for speed measurements"""
    base: ArchFields = Field(default_factory=dict)
    """fixed ArchConfig fields, shared by every sampled architecture"""
    space: dict[str, Annotated[Knob, BeforeValidator(lambda v: {"choice": v} if isinstance(v, list) else v,
                                                     json_schema_input_type=Union[Knob, list, None])]] = Field(
        default_factory=dict, json_schema_extra={"propertyNames": {"enum": ArchConfig.field_names()}})
    """searched ArchConfig fields: {choice: [...]}, {int: [lo, hi]} or {float: [lo, hi]}, optional when"""
    references: list[Reference] = Field(default_factory=list, description="fixed models every front is read against")

    _path: str = PrivateAttr("<dict>")
    _order: tuple[str, ...] = PrivateAttr(())
    _size: Optional[SpaceSize] = PrivateAttr(None)

    @property
    def path(self) -> str:
        """Where the spec came from (a file, or ``<dict>``)."""
        return self._path

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec as plain JSON-able data; `wfsearch.space.spec_from_dict` rebuilds it."""
        d = self.model_dump(mode="json", by_alias=True)
        d["space"] = {name: {k: v for k, v in knob.items() if v is not None and (v or k not in ("when", "log"))}
                      for name, knob in d["space"].items()}
        return d

    @property
    def hash(self) -> str:
        """Stable 12-hex identity of what is searched and how it is measured (all but study.trials,
        study.storage and resources, which may change when a study is resumed)."""
        d = self.to_dict()
        d["study"].pop("trials"), d["study"].pop("storage"), d.pop("resources")
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    @property
    def knobs(self) -> tuple[str, ...]:
        """Searched fields in sampling order (a knob after the knobs its condition reads)."""
        return self._order or tuple(self.space)

    @property
    def size(self) -> SpaceSize:
        """The number of knob combinations and how many build (computed at load time)."""
        assert self._size is not None, "size is computed when the spec is loaded"
        return self._size

    @property
    def study_dir(self) -> Path:
        """``studies/<name>`` under the current directory: where reports and recipes go."""
        return Path(os.getcwd()) / "studies" / self.study.name

    @property
    def objective_names(self) -> list[str]:
        return [o.name for o in self.study.objectives]

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.study.objectives]

    def arch_defaults(self) -> dict[str, Any]:
        """``base`` plus what the proxy fixes: img_size (proxy.img_size) and num_classes (the dataset's)."""
        d = dict(self.base)
        d.setdefault("img_size", self.proxy.img_size)
        if self.proxy.dataset.num_classes is not None:
            d.setdefault("num_classes", self.proxy.dataset.num_classes)
        return d

    def fixed_arch(self, **overrides: Any) -> ArchConfig:
        """The base architecture with ``overrides`` (raises ValueError when it cannot be built)."""
        return ArchConfig(**{**self.arch_defaults(), **overrides})

    def reference_archs(self) -> list[ResolvedReference]:
        """The references, each an ArchConfig (arch on top of base) or a timm model name."""
        return [ResolvedReference(r.name, arch=self.fixed_arch(**r.arch)) if r.arch is not None
                else ResolvedReference(r.name, model=r.model) for r in self.references]

    def grid(self) -> dict[str, list[Any]]:
        """The search space as Optuna's GridSampler wants it (every knob's values, encoded)."""
        out = {}
        for name in self.knobs:
            values = self.space[name].values(limit=10**6)
            if values is None:
                raise UserError(f"{self.path}: space.{name}: {self.space[name].describe()!r}: a continuous range "
                                "cannot be searched on a grid; give it a step or use another sampler")
            out[name] = [encode_choice(v) for v in values]
        return out
