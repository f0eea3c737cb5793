"""`ArchConfig`: every architecture knob of a WeightFormer-style backbone, validated on construction.

The defaults reproduce the released WeightFormer-Tiny exactly. A sampled architecture is an
`ArchConfig`; `cfg.hash` identifies it (equal architectures give equal hashes, whatever the
irrelevant knobs say), `cfg.to_dict()` / `ArchConfig.from_dict()` serialize it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Union

PREDICTORS: dict[str, list[str]] = {
    "fc1": ["none", "gap", "linear", "nonlinear", "deep", "bilateral"],
    "dwconv": ["none", "gap", "adaptive", "ampdir", "conv"],
}
ACTIVATIONS = ["default", "silu", "gelu", "relu", "identity"]
DELTA_NORMS = ["squash", "none"]
# fc1 predictors whose low-rank factors use `rank_ratio` and `fc1_pool`
RANKED_FC1 = {"gap", "linear", "nonlinear", "deep", "bilateral"}
POOLED_FC1 = {"linear", "nonlinear", "deep", "bilateral"}  # gap always pools globally
POOLED_DWCONV = {"adaptive", "ampdir", "conv"}  # gap always pools globally

Placement = Union[str, list[int], tuple[int, ...]]


def _err(field_name: str, value: Any, rule: str) -> ValueError:
    return ValueError(f"{field_name}={value!r}: {rule}")


def parse_placement(spec: Placement, depth: int) -> tuple[int, ...]:
    """Resolve a placement of dynamic blocks to sorted 0-based block indices.

    Forms: ``"all"``, ``"none"``, ``"every:K"`` / ``"every:K:OFFSET"`` (index i is dynamic when
    ``i % K == OFFSET``; the released model is ``"every:3:1"``), ``"first:N"``, ``"last:N"``, or an
    explicit list of indices such as ``[1, 4, 7]``.
    """
    name = "dynamic_blocks"
    if isinstance(spec, (list, tuple)):
        idx = list(spec)
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in idx):
            raise _err(name, spec, "an explicit placement must be a list of integer block indices")
        bad = [i for i in idx if not 0 <= i < depth]
        if bad:
            raise _err(name, spec, f"block indices must lie in [0, {depth - 1}] for depth={depth}, got {bad}")
        if len(set(idx)) != len(idx):
            raise _err(name, spec, "block indices must not repeat")
        return tuple(sorted(idx))
    if not isinstance(spec, str):
        raise _err(name, spec, "use 'all', 'none', 'every:K[:OFFSET]', 'first:N', 'last:N' or a list of indices")
    s = spec.strip().lower()
    if s == "all":
        return tuple(range(depth))
    if s == "none":
        return ()
    kind, _, rest = s.partition(":")
    try:
        nums = [int(p) for p in rest.split(":")] if rest else []
    except ValueError:
        raise _err(name, spec, "the numbers after ':' must be integers, e.g. 'every:3:1'") from None
    if kind == "every" and len(nums) in (1, 2):
        k, off = nums[0], (nums[1] if len(nums) == 2 else 0)
        if k < 1:
            raise _err(name, spec, f"the period K must be >= 1, got {k}")
        if not 0 <= off < k:
            raise _err(name, spec, f"the offset must satisfy 0 <= OFFSET < K, got OFFSET={off}, K={k}")
        return tuple(i for i in range(depth) if i % k == off)
    if kind in ("first", "last") and len(nums) == 1:
        n = nums[0]
        if not 0 <= n <= depth:
            raise _err(name, spec, f"N must satisfy 0 <= N <= depth={depth}, got {n}")
        return tuple(range(n)) if kind == "first" else tuple(range(depth - n, depth))
    raise _err(name, spec, "use 'all', 'none', 'every:K[:OFFSET]', 'first:N', 'last:N' or a list of indices")


@dataclass(frozen=True)
class ArchConfig:
    """Architecture of one WeightFormer-style backbone; defaults are the released WeightFormer-Tiny."""

    img_size: Union[int, tuple[int, int]] = 224
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000
    embed_dim: int = 192
    depth: int = 17
    mlp_ratio: float = 4.0
    kernel_size: int = 3
    fc1_predictor: str = "bilateral"
    dwconv_predictor: str = "adaptive"
    dynamic_blocks: Placement = "every:3:1"
    fc1_pool: Union[int, str] = 2  # avg pool s x s over the token grid, or "global"
    dwconv_pool: int = 3  # adaptive pool g x g (g = kernel size: one summary per tap; 1 = global)
    rank_ratio: int = 4
    predictor_act: str = "default"  # "default" = silu in fc1 predictors, gelu in dwconv predictors
    delta_norm: str = "squash"  # squash: v / (||v|| + 1); none: raw ΔW
    drop_path_rate: float = 0.0
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        def set_(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        img = self.img_size
        if isinstance(img, (list, tuple)):
            if len(img) != 2 or not all(_is_int(v) for v in img):
                raise _err("img_size", img, "must be an integer or a pair of integers (height, width)")
            img = tuple(int(v) for v in img)
            set_("img_size", img[0] if img[0] == img[1] else img)
        elif not _is_int(img):
            raise _err("img_size", img, "must be an integer or a pair of integers (height, width)")
        for name in ("patch_size", "in_chans", "embed_dim", "depth", "kernel_size", "rank_ratio", "dwconv_pool"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                raise _err(name, v, "must be an integer >= 1")
        if not _is_int(self.num_classes) or self.num_classes < 0:
            raise _err("num_classes", self.num_classes, "must be an integer >= 0 (0 = no classifier head)")
        h, w = self.img_hw
        if h < 1 or w < 1:
            raise _err("img_size", self.img_size, "must be >= 1")
        if h % self.patch_size or w % self.patch_size:
            raise _err("img_size", self.img_size, f"must be divisible by patch_size={self.patch_size}")
        if not isinstance(self.mlp_ratio, (int, float)) or isinstance(self.mlp_ratio, bool) or self.mlp_ratio <= 0:
            raise _err("mlp_ratio", self.mlp_ratio, "must be a number > 0")
        set_("mlp_ratio", float(self.mlp_ratio))
        if self.kernel_size % 2 == 0:
            raise _err("kernel_size", self.kernel_size, "must be odd so that 'same' padding keeps the grid")
        for name, choices in (("fc1_predictor", PREDICTORS["fc1"]), ("dwconv_predictor", PREDICTORS["dwconv"]),
                              ("predictor_act", ACTIVATIONS), ("delta_norm", DELTA_NORMS)):
            v = getattr(self, name)
            if v not in choices:
                raise _err(name, v, f"must be one of {choices}")
        for name in ("drop_path_rate", "drop_rate"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v < 1.0:
                raise _err(name, v, "must be a number in [0, 1)")
            set_(name, float(v))
        fp = self.fc1_pool
        if isinstance(fp, str):
            if fp.lower() != "global":
                raise _err("fc1_pool", fp, "must be an integer pool size >= 1 or 'global'")
            set_("fc1_pool", "global")
        elif not _is_int(fp) or fp < 1:
            raise _err("fc1_pool", fp, "must be an integer pool size >= 1 or 'global'")
        dyn = parse_placement(self.dynamic_blocks, self.depth)
        if isinstance(self.dynamic_blocks, (list, tuple)):
            set_("dynamic_blocks", list(dyn))
        elif isinstance(self.dynamic_blocks, str):
            set_("dynamic_blocks", self.dynamic_blocks.strip().lower())
        if dyn and self.fc1_predictor in RANKED_FC1:
            for what, width in (("embed_dim", self.embed_dim), ("embed_dim * mlp_ratio", self.hidden_dim)):
                if width % self.rank_ratio:
                    raise _err("rank_ratio", self.rank_ratio,
                               f"{what}={width} must be divisible by rank_ratio for fc1_predictor={self.fc1_predictor!r}")
        if dyn:
            gh, gw = self.grid_size
            if self.fc1_predictor in POOLED_FC1 and isinstance(self.fc1_pool, int) and self.fc1_pool > min(gh, gw):
                raise _err("fc1_pool", self.fc1_pool,
                           f"pool larger than the token grid {gh}x{gw} (img_size={self.img_size}, patch_size={self.patch_size})")
            if self.dwconv_predictor in POOLED_DWCONV and self.dwconv_pool > min(gh, gw):
                raise _err("dwconv_pool", self.dwconv_pool,
                           f"pool larger than the token grid {gh}x{gw} (img_size={self.img_size}, patch_size={self.patch_size})")

    # ---- derived ----
    @property
    def img_hw(self) -> tuple[int, int]:
        return (self.img_size, self.img_size) if isinstance(self.img_size, int) else tuple(self.img_size)

    @property
    def grid_size(self) -> tuple[int, int]:
        h, w = self.img_hw
        return h // self.patch_size, w // self.patch_size

    @property
    def hidden_dim(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)

    @property
    def dynamic_indices(self) -> tuple[int, ...]:
        """Indices of the blocks that carry dynamic weights (empty when both predictors are 'none')."""
        if self.fc1_predictor == "none" and self.dwconv_predictor == "none":
            return ()
        return parse_placement(self.dynamic_blocks, self.depth)

    def act_for(self, family: str) -> str:
        if self.predictor_act != "default":
            return self.predictor_act
        return "silu" if family == "fc1" else "gelu"

    # ---- serialization and identity ----
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if isinstance(d["img_size"], tuple):
            d["img_size"] = list(d["img_size"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArchConfig":
        unknown = sorted(set(d) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"{unknown[0]}: not an ArchConfig field; fields are {cls.field_names()}")
        return cls(**d)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def replace(self, **changes: Any) -> "ArchConfig":
        return dataclasses.replace(self, **changes)

    def canonical(self) -> dict[str, Any]:
        """The architecture with knobs that have no effect reset, so equal networks compare equal."""
        d = self.to_dict()
        dyn = self.dynamic_indices
        d["dynamic_blocks"] = list(dyn)
        d.pop("drop_path_rate"), d.pop("drop_rate")  # regularization, not architecture
        default = ArchConfig.__dataclass_fields__
        fc1 = self.fc1_predictor if dyn else "none"
        dw = self.dwconv_predictor if dyn else "none"
        d["fc1_predictor"], d["dwconv_predictor"] = fc1, dw
        if fc1 not in RANKED_FC1:
            d["rank_ratio"] = default["rank_ratio"].default
        if fc1 not in POOLED_FC1:
            d["fc1_pool"] = default["fc1_pool"].default
        if dw not in POOLED_DWCONV:
            d["dwconv_pool"] = default["dwconv_pool"].default
        if fc1 in ("none", "linear") and dw == "none":
            d["predictor_act"] = default["predictor_act"].default
        else:
            d["predictor_act"] = {f: self.act_for(f) for f in ("fc1", "dwconv")}
        if not dyn:
            d["delta_norm"] = default["delta_norm"].default
        d["img_size"] = list(self.img_hw)
        return d

    @property
    def hash(self) -> str:
        """Stable 12-hex identifier of the architecture (same network, same hash)."""
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
