"""Effective receptive fields (ERF): how much each input pixel moves the central output feature.

As the paper's Fig. 3 and RepLKNet's tool: the gradient of the central token's final features (ReLU'd,
summed over channels) with respect to the input, ReLU'd, summed over colours and averaged over images;
displayed as ``log10(1 + m) / max``. Any timm model with ``forward_intermediates`` works. A static
WeightFormer's theoretical RF is a box (the central patch grown by ``(k - 1) / 2`` tokens per block);
dynamic blocks pool the whole grid, so their ERF can reach every pixel.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn as nn

from wfsearch.arch.config import ArchConfig


def final_feature_map(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The last block's normalized features as an NCHW map (timm's ``forward_intermediates``)."""
    return model.forward_intermediates(x, indices=1, norm=True, output_fmt="NCHW", intermediates_only=True)[-1]


def erf_map(model: nn.Module, batches: Iterable[torch.Tensor], rectify: bool = True) -> torch.Tensor:
    """The ERF ``(H, W)`` (float64): the mean over the images of ``batches`` of each image's map.
    ``rectify=False`` takes the gradient's magnitude instead of its positive part (RepLKNet's)."""
    model.eval()
    total, n = None, 0
    for x in batches:
        n += x.shape[0]
        x = x.detach().clone().requires_grad_(True)
        feats = final_feature_map(model, x)
        h, w = feats.shape[-2:]
        central = torch.relu(feats[:, :, h // 2, w // 2]).sum()
        (grad,) = torch.autograd.grad(central, x)
        contrib = (torch.relu(grad) if rectify else grad.abs()).sum(dim=(0, 1)).double()
        total = contrib if total is None else total + contrib
    if total is None:
        raise ValueError("no images to measure the ERF on")
    return total.detach() / n


def display(erf: torch.Tensor) -> torch.Tensor:
    """RepLKNet's display normalization, ``log10(1 + m) / max`` in [0, 1]."""
    d = torch.log10(1 + erf)
    return d / d.max() if d.max() > 0 else d


def central_token(img_hw: tuple[int, int], patch: int) -> tuple[float, float]:
    """Pixel coordinates (row, column) of the central output token's centre."""
    gh, gw = img_hw[0] // patch, img_hw[1] // patch
    return (gh // 2 + 0.5) * patch, (gw // 2 + 0.5) * patch


def static_rf_box(arch: ArchConfig, img_hw: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
    """The static network's theoretical RF of the central token, ``(top, bottom, left, right)`` pixels
    (end-exclusive, clipped): its patch grown by ``depth * (k - 1) / 2`` tokens on every side."""
    h, w = img_hw or arch.img_hw
    p = arch.patch_size
    gh, gw = h // p, w // p
    r = arch.depth * (arch.kernel_size - 1) // 2
    ci, cj = gh // 2, gw // 2
    return (max(0, (ci - r) * p), min(h, (ci + r + 1) * p), max(0, (cj - r) * p), min(w, (cj + r + 1) * p))


@dataclass(frozen=True)
class ErfSummary:
    """The share of an ERF's mass outside the static RF, and the radii (pixels) holding 50% and 90% of it."""

    outside_static_rf: float | None
    r50: float
    r90: float
    img_size: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def summarize(erf: torch.Tensor, patch: int, box: tuple[int, int, int, int] | None = None) -> ErfSummary:
    """`ErfSummary` of a raw (not display-normalized) ERF map; ``box`` from `static_rf_box`."""
    h, w = erf.shape
    total = float(erf.sum())
    outside = None
    if box is not None:
        t, b, l, r = box
        rest = erf.clone()
        rest[t:b, l:r] = 0  # summed apart, so that a map with nothing outside gives exactly 0
        outside = float(rest.sum()) / total if total > 0 else 0.0
    cy, cx = central_token((h, w), patch)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64) + 0.5, torch.arange(w, dtype=torch.float64) + 0.5,
                            indexing="ij")
    dist = torch.sqrt((yy - cy) ** 2 + (xx - cx) ** 2).flatten()
    order = torch.argsort(dist)
    cum = torch.cumsum(erf.flatten()[order], 0) / max(total, 1e-300)

    def radius(q: float) -> float:
        i = int(torch.searchsorted(cum, torch.tensor(q, dtype=cum.dtype)))
        return float(dist[order][min(i, len(order) - 1)])

    return ErfSummary(outside, radius(0.5), radius(0.9), int(max(h, w)))


_VIRIDIS = [(68, 1, 84), (72, 40, 120), (62, 73, 137), (49, 104, 142), (38, 130, 142), (31, 158, 137),
            (53, 183, 121), (110, 206, 88), (181, 222, 43), (253, 231, 37)]


def colorize(values: torch.Tensor) -> torch.Tensor:
    """``(H, W)`` values in [0, 1] -> ``(H, W, 3)`` uint8 RGB on the viridis scale."""
    table = torch.tensor(_VIRIDIS, dtype=torch.float64)
    v = values.double().clamp(0, 1) * (len(table) - 1)
    lo = v.floor().long().clamp(max=len(table) - 2)
    frac = (v - lo).unsqueeze(-1)
    return (table[lo] * (1 - frac) + table[lo + 1] * frac).round().to(torch.uint8)


def heatmap_rgb(erf: torch.Tensor, size: int = 256, box: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """The display-normalized ERF as RGB, ``size`` pixels high, with ``box`` outlined in white."""
    img = colorize(display(erf))
    h, w = erf.shape
    s = max(1, math.ceil(size / h))
    img = img.repeat_interleave(s, 0).repeat_interleave(s, 1)
    if box is not None:
        t, b, l, r = (v * s for v in box)
        white = torch.tensor([255, 255, 255], dtype=torch.uint8)
        img[t, l:r] = img[b - 1, l:r] = white
        img[t:b, l] = img[t:b, r - 1] = white
    return img
