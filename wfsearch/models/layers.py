"""Layers whose weights are predicted from the input: ``W(X) = W0 + norm(ΔW(X))``.

With ``predictor=None`` each layer is its plain static counterpart (a linear layer, a depthwise
conv), with the same parameter names, so static and dynamic blocks share one code path.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_


def squash(v: torch.Tensor, dim: int | tuple[int, ...]) -> torch.Tensor:
    """Unit squash ``v / (||v|| + 1)``: bounds the perturbation below norm 1."""
    return v / (v.norm(dim=dim, keepdim=True) + 1.0)


class DynamicLinear(nn.Module):
    """``y = x @ (W0 + ΔW(X)) + b``; ``ΔW = norm(scale · Φaᵀ Φb)`` from a low-rank fc1 predictor.

    ``weight`` is ``W0ᵀ`` in `nn.Linear` layout (``C_out x C_in``); ``delta_norm='squash'`` divides
    every output column ``ΔW[:, j]`` by ``||ΔW[:, j]||₂ + 1`` per sample.
    """

    def __init__(self, in_features: int, out_features: int, predictor: nn.Module | None = None,
                 delta_norm: str = "squash"):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.predictor = predictor
        self.delta_norm = delta_norm
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        trunc_normal_(self.weight, std=0.02)
        if self.predictor is None:
            nn.init.zeros_(self.bias)  # as a timm/DeiT linear layer
        else:
            trunc_normal_(self.bias, std=0.02)  # the released dynamic layer's bias is not zero

    def delta(self, x_BHWC: torch.Tensor) -> torch.Tensor:
        """ΔW (``B x C_in x C_out``) after normalization."""
        phi_a, phi_b, scale = self.predictor(x_BHWC)
        d_BIO = phi_a.transpose(-2, -1) @ phi_b * scale
        if self.delta_norm == "squash":
            d_BIO = squash(d_BIO, dim=-2)
        return d_BIO

    def forward(self, x_BHWC: torch.Tensor) -> torch.Tensor:
        if self.predictor is None:
            return F.linear(x_BHWC, self.weight, self.bias)
        B, H, W, C = x_BHWC.shape
        w_BIO = self.delta(x_BHWC) + self.weight.t()
        y_BNO = x_BHWC.reshape(B, H * W, C) @ w_BIO + self.bias
        return y_BNO.reshape(B, H, W, self.out_features)


class DynamicDWConv(nn.Module):
    """Depthwise ``k x k`` conv with a per-sample kernel ``K0 + norm(ΔK(X))``, bias, 'same' padding.

    ``delta_norm='squash'`` divides each per-sample, per-channel kernel by ``||ΔK_c||_F + 1``.
    """

    def __init__(self, dim: int, kernel_size: int = 3, predictor: nn.Module | None = None,
                 delta_norm: str = "squash"):
        super().__init__()
        self.dim, self.kernel_size = dim, kernel_size
        self.predictor = predictor
        self.delta_norm = delta_norm
        self.weight = nn.Parameter(torch.empty(dim, 1, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.predictor is None:  # PyTorch's default for nn.Conv2d, as the released static conv
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
            bound = 1 / math.sqrt(self.kernel_size * self.kernel_size)
            nn.init.uniform_(self.bias, -bound, bound)
        else:
            trunc_normal_(self.weight, std=0.02)
            trunc_normal_(self.bias, std=0.02)

    def delta(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        """ΔK (``B x C x k x k``) after normalization."""
        d_BCkk = self.predictor(x_BCHW)
        if self.delta_norm == "squash":
            d_BCkk = squash(d_BCkk, dim=(-2, -1))
        return d_BCkk

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        pad = self.kernel_size // 2
        if self.predictor is None:
            return F.conv2d(x_BCHW, self.weight, self.bias, padding=pad, groups=self.dim)
        B, C, H, W = x_BCHW.shape
        k = self.kernel_size
        w_BCkk = self.delta(x_BCHW) + self.weight.view(1, C, k, k)
        y = F.conv2d(x_BCHW.reshape(1, B * C, H, W), w_BCkk.reshape(B * C, 1, k, k),
                     self.bias.repeat(B), padding=pad, groups=B * C)
        return y.reshape(B, C, H, W)
