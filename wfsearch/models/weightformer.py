"""WeightFormer: an isotropic backbone whose token mixing comes from input-predicted weights.

Conv patch embed -> LayerNorm -> ``depth`` blocks -> LayerNorm -> token mean -> linear head; no
class token, no position embedding. Static blocks: ``x + dwconv(x)`` then ``x + MLP(norm2(x))``.
Dynamic blocks re-normalize the residual stream first (``x = norm1(x)``) and predict the depthwise
kernel and fc1 from the input. Tokens stay in a ``(B, H, W, C)`` grid so any H, W work.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, PatchEmbed, trunc_normal_
from timm.models import build_model_with_cfg, register_model

from wfsearch.arch.config import MODEL_SIZES, ArchConfig
from .fast_path import Path, decide_path, linear_add, linear_gelu
from .layers import DynamicDWConv, DynamicLinear
from .predictors import DWCONV_PREDICTORS, FC1_PREDICTORS

__all__ = ["WeightFormer", "WeightFormerBlock", "build", "MODEL_SIZES"]

LayerNorm = partial(nn.LayerNorm, eps=1e-6)


class Mlp(nn.Module):
    """fc1 (static or dynamic) -> GELU -> dropout -> fc2 (static) -> dropout."""

    def __init__(self, dim: int, hidden: int, fc1: DynamicLinear, drop: float = 0.0):
        super().__init__()
        self.fc1 = fc1
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(drop)
        # decided once: a dynamic fc1 and its (exact) GELU have one Triton kernel
        self.triton_fc1 = fc1.predictor is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))

    def fast_path(self, x: torch.Tensor, triton: bool = True) -> Path:
        """How `forward_residual` runs on ``x``."""
        noisy = self.training and (self.drop1.p > 0 or self.drop2.p > 0)
        return decide_path(x, *self.fc1.parameters(), self.fc2.weight, watched=(self.fc1, self.fc2, self.act),
                           noisy=noisy, triton=triton and self.triton_fc1, onednn=True)

    def forward_residual(self, x: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        """``shortcut + mlp(x)``, fused by oneDNN (CPU fp32 inference) or Triton (CUDA inference)."""
        fc1, fc2 = self.fc1, self.fc2
        path = self.fast_path(x)
        if path is Path.TRITON:
            h = fc1.forward_triton(x, gelu=True)
            if h is not None:
                return shortcut + self.drop2(self.fc2(self.drop1(h)))
            path = self.fast_path(x, triton=False)  # the kernel declined (a hooked predictor, a large rank)
        if path is not Path.ONEDNN:
            return shortcut + self.forward(x)
        if fc1.predictor is None:
            h = linear_gelu(x, fc1.weight, fc1.bias)
        else:
            h = torch.ops.aten.gelu_(fc1(x))  # a fresh tensor: GELU in place saves an allocation
        return linear_add(h, shortcut, fc2.weight, fc2.bias)


class WeightFormerBlock(nn.Module):
    """``x = norm1(x)`` when ``renorm`` (default: when ``dynamic``), ``x = x + dwconv(x)``, then
    ``x = x + drop_path(mlp(norm2(x)))``; ``dynamic`` blocks predict the dwconv kernel and fc1."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0, kernel_size: int = 3, dynamic: bool = False,
                 fc1_predictor: str = "bilateral", dwconv_predictor: str = "adaptive",
                 fc1_pool: int | str = 2, dwconv_pool: int | None = None, rank_ratio: int = 4,
                 fc1_act: str = "silu", dwconv_act: str = "gelu", delta_norm: str = "squash",
                 drop_path: float = 0.0, drop: float = 0.0, fc1_pool_mode: str = "cover",
                 renorm: bool | None = None):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.dynamic = dynamic
        fc1_cls = FC1_PREDICTORS[fc1_predictor] if dynamic else None
        dw_cls = DWCONV_PREDICTORS[dwconv_predictor] if dynamic else None
        dwconv_pool = kernel_size if dwconv_pool is None else dwconv_pool
        self.norm1 = LayerNorm(dim) if (dynamic if renorm is None else renorm) else nn.Identity()
        self.token_mixer = DynamicDWConv(
            dim, kernel_size, dw_cls(dim, kernel_size, dwconv_pool, dwconv_act) if dw_cls else None, delta_norm)
        self.norm2 = LayerNorm(dim)
        fc1 = DynamicLinear(
            dim, hidden, fc1_cls(dim, hidden, rank_ratio, fc1_pool, fc1_act, fc1_pool_mode) if fc1_cls else None, delta_norm)
        self.mlp = Mlp(dim, hidden, fc1, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.drop_path_on = drop_path > 0.0  # decided once

    def forward(self, x_BHWC: torch.Tensor) -> torch.Tensor:
        x_BHWC = self.norm1(x_BHWC)
        # the conv runs on the channels-last view of the tokens and returns one: no transposing copies
        if decide_path(x_BHWC, watched=(self.token_mixer,)) is Path.FAST:
            x_BHWC = self.token_mixer.forward_residual(x_BHWC)  # residual folded into the static kernel
        else:
            x_BHWC = x_BHWC + self.token_mixer(x_BHWC.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        if decide_path(x_BHWC, watched=(self.mlp,), noisy=self.training and self.drop_path_on) is Path.MODULES:
            return x_BHWC + self.drop_path(self.mlp(self.norm2(x_BHWC)))
        return self.mlp.forward_residual(self.norm2(x_BHWC), x_BHWC)


class WeightFormer(nn.Module):
    """The backbone; every constructor argument is an `ArchConfig` field with its released default."""

    def __init__(self, img_size: int | tuple[int, int] = 224, patch_size: int = 16, in_chans: int = 3,
                 num_classes: int = 1000, embed_dim: int = 192, depth: int = 17, mlp_ratio: float = 4.0,
                 kernel_size: int = 3, fc1_predictor: str = "bilateral", dwconv_predictor: str = "adaptive",
                 dynamic_blocks: Any = "every:3:1", fc1_pool: int | str = 2, fc1_pool_mode: str = "cover",
                 dwconv_pool: int | None = None, rank_ratio: int = 4, fc1_act: str = "silu",
                 dwconv_act: str = "gelu", delta_norm: str = "squash", renorm: str = "dynamic",
                 drop_path_rate: float = 0.0, drop_rate: float = 0.0, global_pool: str = "avg"):
        super().__init__()
        cfg = ArchConfig(img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                         num_classes=num_classes, embed_dim=embed_dim, depth=depth, mlp_ratio=mlp_ratio,
                         kernel_size=kernel_size, fc1_predictor=fc1_predictor,
                         dwconv_predictor=dwconv_predictor, dynamic_blocks=dynamic_blocks, fc1_pool=fc1_pool,
                         fc1_pool_mode=fc1_pool_mode, dwconv_pool=dwconv_pool, rank_ratio=rank_ratio,
                         fc1_act=fc1_act, dwconv_act=dwconv_act, delta_norm=delta_norm, renorm=renorm,
                         drop_path_rate=drop_path_rate, drop_rate=drop_rate)
        if global_pool not in ("avg", ""):
            raise ValueError(f"global_pool={global_pool!r}: must be 'avg' (token mean) or '' (no pooling)")
        self.arch = cfg
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.grad_checkpointing = False

        self.patch_embed = PatchEmbed(img_size=cfg.img_hw, patch_size=patch_size, in_chans=in_chans,
                                      embed_dim=embed_dim, output_fmt="NHWC", strict_img_size=False)
        self.norm_pre = LayerNorm(embed_dim)
        dynamic, renormed = set(cfg.dynamic_indices), set(cfg.norm_indices)
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, depth)]
        self.blocks = nn.Sequential(*[
            WeightFormerBlock(embed_dim, mlp_ratio, kernel_size, dynamic=i in dynamic,
                              fc1_predictor=fc1_predictor, dwconv_predictor=dwconv_predictor,
                              fc1_pool=cfg.fc1_pool, dwconv_pool=cfg.dwconv_grid, rank_ratio=rank_ratio,
                              fc1_act=fc1_act, dwconv_act=dwconv_act, delta_norm=delta_norm, drop_path=dpr[i],
                              fc1_pool_mode=fc1_pool_mode, renorm=i in renormed)
            for i in range(depth)
        ])
        self.norm = LayerNorm(embed_dim)
        # timm's backbone API (as its ViT): every block is a feature level at stride patch_size
        self.feature_info = [dict(module=f"blocks.{i}", num_chs=embed_dim, reduction=patch_size)
                             for i in range(depth)]
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        # as DeiT/released: trunc-normal(0.02) linears, zero bias, unit LayerNorms; dynamic layers init themselves
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return set()

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r"^patch_embed|^norm_pre", blocks=[(r"^blocks\.(\d+)", None), (r"^norm", (99999,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = global_pool
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` -> normalized tokens ``(B, H/p, W/p, C)`` (NHWC)."""
        x = self.norm_pre(self.patch_embed(x))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            from timm.models import checkpoint_seq
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        return self.norm(x)

    def forward_intermediates(self, x: torch.Tensor, indices: int | list[int] | None = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False
                              ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's feature API (as its ViT): the outputs of the blocks named by ``indices`` (int n: the last n;
        list: those, negative from the end; None: all), in ``output_fmt`` ``"NCHW"``, ``"NHWC"`` (no copy) or
        ``"NLC"``, after `forward_features`' NHWC tokens unless ``intermediates_only``. ``norm`` applies the
        final LayerNorm to each; ``stop_early`` skips the blocks after the last one asked for.
        """
        from timm.models._features import feature_take_indices
        if output_fmt not in ("NCHW", "NHWC", "NLC"):
            raise ValueError(f"output_fmt={output_fmt!r}: must be 'NCHW', 'NHWC' or 'NLC'")
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        x = self.norm_pre(self.patch_embed(x))
        blocks = self.blocks[:max_index + 1] if stop_early and not torch.jit.is_scripting() else self.blocks
        intermediates = []
        for i, blk in enumerate(blocks):
            if self.grad_checkpointing and not torch.jit.is_scripting():
                from torch.utils.checkpoint import checkpoint
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
            if i in take_indices:
                y = self.norm(x) if norm else x
                if output_fmt == "NCHW":
                    y = y.permute(0, 3, 1, 2)
                elif output_fmt == "NLC":
                    y = y.flatten(1, 2)
                intermediates.append(y)
        if intermediates_only:
            return intermediates
        return self.norm(x), intermediates

    def prune_intermediate_layers(self, indices: int | list[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop the blocks after the last of ``indices`` (and the final norm / the head), as timm's ViT."""
        from timm.models._features import feature_take_indices
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[:max_index + 1]
        self.feature_info = self.feature_info[:max_index + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "avg":
            x = x.mean(dim=(1, 2))
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def build(cfg: ArchConfig, **kwargs: Any) -> WeightFormer:
    """Build the network described by ``cfg`` (``kwargs`` override fields, e.g. ``num_classes``)."""
    return WeightFormer(**{**cfg.to_dict(), **kwargs})


def _cfg(hf_hub_id: str = "", **kwargs: Any) -> dict[str, Any]:
    # the released preprocessing (as `wfsearch.export.recipe` writes it), read by timm's resolve_model_data_config
    return {
        "hf_hub_id": hf_hub_id, "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": None,
        "crop_pct": 0.875, "crop_mode": "squash", "interpolation": "bicubic", "fixed_input_size": False,
        "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.proj", "classifier": "head", "license": "mit",
        "paper_ids": "arXiv:2605.01711", **kwargs,
    }


default_cfgs = {
    "weightformer_tiny": _cfg("RuizeHe/weightformer-t"),
    "weightformer_small": _cfg("RuizeHe/weightformer-s"),
    "weightformer_base": _cfg("RuizeHe/weightformer-b", input_size=(3, 448, 448), crop_pct=448 / 512),
    "weightformer_test": _cfg(input_size=(3, 32, 32), num_classes=10),
}


def _filter_fn(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    from .convert import convert_official_state_dict
    return convert_official_state_dict(state_dict)


def _create_weightformer(variant: str, pretrained: bool = False, **kwargs: Any) -> WeightFormer:
    """Through timm's builder: ``features_only=True`` gives a `FeatureGetterNet` (``out_indices``, default 3)."""
    out_indices = kwargs.pop("out_indices", 3)
    model_args = {**MODEL_SIZES[variant], **kwargs}
    return build_model_with_cfg(WeightFormer, variant, pretrained, pretrained_filter_fn=_filter_fn,
                                feature_cfg=dict(out_indices=out_indices, feature_cls="getter"), **model_args)


@register_model
def weightformer_tiny(pretrained: bool = False, **kwargs: Any) -> WeightFormer:
    """WeightFormer-Tiny: dim 192, depth 17, 224 (7.07M params, 1.12 GMACs)."""
    return _create_weightformer("weightformer_tiny", pretrained, **kwargs)


@register_model
def weightformer_small(pretrained: bool = False, **kwargs: Any) -> WeightFormer:
    """WeightFormer-Small: dim 384, depth 17, 224 (27.5M params, 4.43 GMACs)."""
    return _create_weightformer("weightformer_small", pretrained, **kwargs)


@register_model
def weightformer_base(pretrained: bool = False, **kwargs: Any) -> WeightFormer:
    """WeightFormer-Base: the Small architecture at 448 (17.66 GMACs)."""
    return _create_weightformer("weightformer_base", pretrained, **kwargs)


@register_model
def weightformer_test(pretrained: bool = False, **kwargs: Any) -> WeightFormer:
    """A tiny size for tests: dim 32, depth 4, 32x32 inputs, patch 4, 10 classes."""
    return _create_weightformer("weightformer_test", pretrained, **kwargs)
