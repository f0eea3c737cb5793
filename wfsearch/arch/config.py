"""`ArchConfig`: every architecture knob of a WeightFormer-style backbone (defaults: the released
WeightFormer-Tiny), validated on construction; `cfg.hash` identifies the network, irrelevant knobs ignored."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Optional, Union

PREDICTORS: dict[str, list[str]] = {
    "fc1": ["none", "gap", "linear", "nonlinear", "deep", "bilateral"],
    "dwconv": ["none", "gap", "adaptive", "ampdir", "conv"],
}
ACTIVATIONS = ["silu", "gelu", "relu", "identity"]
# fc1_pool_mode: cover = a ceil-mode pool that sees every token, ΔW scaled by 1/(4M); released = the released
# floor pool (drops border tokens), scale 1/N (shrinks as 1/s²).
# renorm (where norm1 re-normalizes the residual stream): dynamic = the `dynamic_blocks` (released; none when
# both predictors are 'none'), placement = those blocks even then, all, none.
ENUMS: dict[str, list[str]] = {
    "fc1_predictor": PREDICTORS["fc1"], "dwconv_predictor": PREDICTORS["dwconv"],
    "fc1_act": ACTIVATIONS, "dwconv_act": ACTIVATIONS, "delta_norm": ["squash", "none"],
    "fc1_pool_mode": ["cover", "released"], "renorm": ["dynamic", "placement", "all", "none"],
}
RELEASED_POOL_AREA = 4  # the released 2x2 pool: the cover scale 1/(4M) equals the released 1/N there
RANKED_FC1 = {"gap", "linear", "nonlinear", "deep", "bilateral"}  # low-rank factors: use rank_ratio
POOLED_FC1 = {"linear", "nonlinear", "deep", "bilateral"}  # use fc1_pool (gap always pools globally)
POOLED_DWCONV = {"adaptive", "ampdir", "conv"}  # gap always pools globally

# Released sizes (the released Base is Small trained at 448). They pool and scale as the released code, so
# the released weights give the released outputs at every resolution.
MODEL_SIZES: dict[str, dict[str, Any]] = {
    "weightformer_tiny": dict(embed_dim=192, depth=17, fc1_pool_mode="released"),
    "weightformer_small": dict(embed_dim=384, depth=17, drop_path_rate=0.2, fc1_pool_mode="released"),
    "weightformer_base": dict(embed_dim=384, depth=17, img_size=448, drop_path_rate=0.2, fc1_pool_mode="released"),
    "weightformer_test": dict(img_size=32, patch_size=4, num_classes=10, embed_dim=32, depth=4),
}

Placement = Union[str, list[int], tuple[int, ...]]
# The largest value of each size knob: far above any backbone, low enough that loops over the blocks stay
# instant (what a machine cannot hold is refused earlier, by `wfsearch.space`'s memory estimate).
MAX_SIZES = {"img_size": 16384, "patch_size": 16384, "in_chans": 64, "num_classes": 1_000_000, "embed_dim": 65536,
             "depth": 4096, "kernel_size": 63, "rank_ratio": 65536, "fc1_pool": 16384}
MAX_MLP_RATIO = 64.0
_PLACEMENTS = "use 'all', 'none', 'every:K[:OFFSET]', 'first:N', 'last:N' or a list of indices"


def _err(field_name: str, value: Any, rule: str) -> ValueError:
    return ValueError(f"{field_name}={value!r}: {rule}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse_placement(spec: Placement, depth: int) -> tuple[int, ...]:
    """Resolve a placement of dynamic blocks to sorted 0-based block indices: ``"all"``, ``"none"``,
    ``"every:K[:OFFSET]"`` (i % K == OFFSET; released: ``"every:3:1"``), ``"first:N"``, ``"last:N"`` or a list."""
    name = "dynamic_blocks"
    if isinstance(spec, (list, tuple)):
        idx = list(spec)
        if not all(_is_int(i) for i in idx):
            raise _err(name, spec, "an explicit placement must be a list of integer block indices")
        bad = [i for i in idx if not 0 <= i < depth]
        if bad:
            raise _err(name, spec, f"block indices must lie in [0, {depth - 1}] for depth={depth}, got {bad}")
        if len(set(idx)) != len(idx):
            raise _err(name, spec, "block indices must not repeat")
        return tuple(sorted(idx))
    if not isinstance(spec, str):
        raise _err(name, spec, _PLACEMENTS)
    s = spec.strip().lower()
    if s in ("all", "none"):
        return tuple(range(depth)) if s == "all" else ()
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
    raise _err(name, spec, _PLACEMENTS)


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
    fc1_pool_mode: str = "cover"  # cover: every token, scale 1/(4M); released: floor pool, scale 1/N
    dwconv_pool: Optional[int] = None  # g x g summary: None = kernel_size (one per tap), 1 = global
    rank_ratio: int = 4
    fc1_act: str = "silu"  # activation inside the fc1 predictors
    dwconv_act: str = "gelu"  # activation inside the dwconv predictors
    delta_norm: str = "squash"  # squash: v / (||v|| + 1); none: raw ΔW
    renorm: str = "dynamic"  # blocks whose residual stream is re-normalized (norm1)
    drop_path_rate: float = 0.0
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        def set_(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        img, top = self.img_size, MAX_SIZES["img_size"]
        if isinstance(img, (list, tuple)) and len(img) == 2 and all(_is_int(v) for v in img):
            set_("img_size", int(img[0]) if img[0] == img[1] else tuple(int(v) for v in img))
        elif not _is_int(img):
            raise _err("img_size", img, "must be an integer or a pair of integers (height, width)")
        for name in ("patch_size", "in_chans", "embed_dim", "depth", "kernel_size", "rank_ratio"):
            v = getattr(self, name)
            if not _is_int(v) or not 1 <= v <= MAX_SIZES[name]:
                raise _err(name, v, f"must be an integer in [1, {MAX_SIZES[name]}]")
        if not _is_int(self.num_classes) or not 0 <= self.num_classes <= MAX_SIZES["num_classes"]:
            raise _err("num_classes", self.num_classes, f"must be an integer in [0, {MAX_SIZES['num_classes']}] "
                                                        "(0 = no classifier head)")
        h, w = self.img_hw
        if not (1 <= h <= top and 1 <= w <= top):
            raise _err("img_size", self.img_size, f"must lie in [1, {top}]")
        if h % self.patch_size or w % self.patch_size:
            raise _err("img_size", self.img_size, f"must be divisible by patch_size={self.patch_size}")
        ratio = self.mlp_ratio
        if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0 < ratio <= MAX_MLP_RATIO:
            raise _err("mlp_ratio", ratio, f"must be a number in (0, {MAX_MLP_RATIO:g}]")
        if int(self.embed_dim * ratio) < 1:
            raise _err("mlp_ratio", ratio, f"embed_dim * mlp_ratio must be at least 1 (embed_dim={self.embed_dim})")
        set_("mlp_ratio", float(self.mlp_ratio))
        if self.kernel_size % 2 == 0:
            raise _err("kernel_size", self.kernel_size, "must be odd so that 'same' padding keeps the grid")
        if self.dwconv_pool is not None and (not _is_int(self.dwconv_pool) or self.dwconv_pool < 1):
            raise _err("dwconv_pool", self.dwconv_pool, "must be an integer >= 1 (or null: kernel_size)")
        if self.dwconv_pool not in (None, 1, self.kernel_size):
            raise _err("dwconv_pool", self.dwconv_pool,
                       f"must be 1 (one global summary) or kernel_size={self.kernel_size} (one summary per "
                       "kernel tap); any other grid would be resampled onto the taps")
        for name, choices in ENUMS.items():
            if getattr(self, name) not in choices:
                raise _err(name, getattr(self, name), f"must be one of {choices}")
        for name in ("drop_path_rate", "drop_rate"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v < 1.0:
                raise _err(name, v, "must be a number in [0, 1)")
            set_(name, float(v))
        fp = self.fc1_pool
        if isinstance(fp, str) and fp.lower() != "global":
            raise _err("fc1_pool", fp, "must be an integer pool size >= 1 or 'global'")
        if isinstance(fp, str):
            set_("fc1_pool", "global")
        elif not _is_int(fp) or not 1 <= fp <= MAX_SIZES["fc1_pool"]:
            raise _err("fc1_pool", fp, f"must be an integer pool size in [1, {MAX_SIZES['fc1_pool']}] or 'global'")
        dyn = parse_placement(self.dynamic_blocks, self.depth)
        if isinstance(self.dynamic_blocks, (list, tuple)):
            set_("dynamic_blocks", list(dyn))
        elif isinstance(self.dynamic_blocks, str):
            set_("dynamic_blocks", self.dynamic_blocks.strip().lower())
        if not dyn:
            return
        if self.fc1_predictor in RANKED_FC1:
            for what, width in (("embed_dim", self.embed_dim), ("embed_dim * mlp_ratio", self.hidden_dim)):
                if width % self.rank_ratio:
                    raise _err("rank_ratio", self.rank_ratio, f"{what}={width} must be divisible by rank_ratio "
                                                              f"for fc1_predictor={self.fc1_predictor!r}")
        gh, gw = self.grid_size
        for name, pool, pooled in (("fc1_pool", self.fc1_pool, self.fc1_predictor in POOLED_FC1),
                                   ("dwconv_pool", self.dwconv_grid, self.dwconv_predictor in POOLED_DWCONV)):
            if pooled and _is_int(pool) and pool > min(gh, gw):
                raise _err(name, pool, f"pool larger than the token grid {gh}x{gw} (img_size={self.img_size}, "
                                       f"patch_size={self.patch_size})")

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

    @property
    def norm_indices(self) -> tuple[int, ...]:
        """Indices of the blocks that re-normalize the residual stream (carry ``norm1``)."""
        if self.renorm in ("all", "none"):
            return tuple(range(self.depth)) if self.renorm == "all" else ()
        return self.dynamic_indices if self.renorm == "dynamic" else parse_placement(self.dynamic_blocks, self.depth)

    @property
    def dwconv_grid(self) -> int:
        """The g x g summary grid of the pooled dwconv predictors (``dwconv_pool``, default kernel_size)."""
        return self.kernel_size if self.dwconv_pool is None else self.dwconv_pool

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if isinstance(d["img_size"], tuple):
            d["img_size"] = list(d["img_size"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArchConfig":
        d = dict(d)
        if "predictor_act" in d:  # the single activation knob of earlier versions
            act = d.pop("predictor_act")
            d.setdefault("fc1_pool_mode", "released")  # those versions pooled and scaled as released
            if act != "default":
                d.setdefault("fc1_act", act)
                d.setdefault("dwconv_act", act)
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
        """The architecture with ineffective knobs reset and equivalent networks merged (same function, same
        parameters, equal dict): ``bilateral``/``nonlinear`` with identity are ``linear``; a globally pooled
        cover ``bilateral`` is ``gap`` (``linear``: ``gap`` with identity); ``fc1_pool_mode`` goes where both
        modes agree; ``renorm`` becomes the re-normalized blocks, ``dwconv_pool`` its resolved grid."""
        d = self.to_dict()
        dyn = self.dynamic_indices
        d["dynamic_blocks"] = list(dyn)
        d["renorm"] = list(self.norm_indices)
        d.pop("drop_path_rate"), d.pop("drop_rate")  # regularization, not architecture
        default = {f.name: f.default for f in dataclasses.fields(ArchConfig)}
        fc1 = self.fc1_predictor if dyn else "none"
        dw = self.dwconv_predictor if dyn else "none"
        act, pool, mode = self.fc1_act, self.fc1_pool, self.fc1_pool_mode
        if fc1 in ("bilateral", "nonlinear") and act == "identity":
            fc1 = "linear"
        if fc1 in ("bilateral", "linear") and pool == "global" and mode == "cover":
            fc1, act = "gap", act if fc1 == "bilateral" else "identity"
        if fc1 == "linear":
            act = default["fc1_act"]
        if fc1 not in RANKED_FC1:
            d["rank_ratio"] = default["rank_ratio"]
            act = default["fc1_act"]
        if fc1 not in POOLED_FC1:
            pool = default["fc1_pool"]
        if fc1 not in RANKED_FC1 or (fc1 in POOLED_FC1 and self._pool_modes_agree()):
            mode = default["fc1_pool_mode"]
        d.update(fc1_predictor=fc1, dwconv_predictor=dw, fc1_act=act, fc1_pool=pool, fc1_pool_mode=mode)
        d["dwconv_pool"] = self.dwconv_grid if dw in POOLED_DWCONV else None
        if dw == "none":
            d["dwconv_act"] = default["dwconv_act"]
        if not dyn:
            d["delta_norm"] = default["delta_norm"]
        d["img_size"] = list(self.img_hw)
        return d

    def _pool_modes_agree(self) -> bool:
        """Whether the cover and released fc1 pooling compute the same thing at this grid (global: scales
        1/4 and 1/N differ)."""
        s, (gh, gw) = self.fc1_pool, self.grid_size
        return s != "global" and gh % s == 0 and gw % s == 0 and s * s == RELEASED_POOL_AREA

    @property
    def hash(self) -> str:
        """Stable 12-hex identifier of the architecture (same network, same hash)."""
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(blob.encode()).hexdigest()[:12]
