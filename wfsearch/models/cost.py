"""Analytic cost of an architecture: parameters, MACs and activation memory, block by block.

MACs count the multiply-accumulates of linear maps, convolutions and matrix products (what
`torch.utils.flop_counter` reports, halved); normalizations, activations and pooling are O(N·C)
element-wise work and are left out. Every term is linear in the token count N.
"""
from __future__ import annotations

from .config import ArchConfig
from .predictors import DWCONV_PREDICTORS, FC1_PREDICTORS, pooled_count

BYTES_PER_ELEMENT = 4  # fp32 activations


def block_cost(cfg: ArchConfig, grid: tuple[int, int], dynamic: bool, renorm: bool | None = None) -> dict[str, int]:
    """Params, MACs and saved activation elements of one block at token grid ``grid`` (one image)."""
    C, Hd, k = cfg.embed_dim, cfg.hidden_dim, cfg.kernel_size
    N = grid[0] * grid[1]
    params = 2 * C + (C * k * k + C) + (C * Hd + Hd) + (Hd * C + C)  # norm2, dwconv, fc1, fc2
    macs = N * C * k * k + 2 * N * C * Hd
    acts = 5 * N * C + 2 * N * Hd  # residual, dwconv in/out, norm2, fc1 out, act out, fc2 out
    if dynamic if renorm is None else renorm:
        params += 2 * C  # norm1
        acts += N * C
    if dynamic:
        fc1 = FC1_PREDICTORS[cfg.fc1_predictor]
        if fc1 is not None:
            m = 1 if cfg.fc1_predictor == "gap" else pooled_count(grid, cfg.fc1_pool, cfg.fc1_pool_mode == "cover")
            p, mac = fc1.cost(C, Hd, cfg.rank_ratio, N, m)
            params, macs = params + p, macs + mac
            acts += m * (C + Hd) * 2 + 2 * C * Hd  # factors, ΔW and W0 + ΔW
        dw = DWCONV_PREDICTORS[cfg.dwconv_predictor]
        if dw is not None:
            p, mac = dw.cost(C, k, cfg.dwconv_grid)
            params, macs = params + p, macs + mac
            acts += 3 * C * k * k
    return {"params": params, "macs": macs, "activations": acts}


def cost(cfg: ArchConfig, img_size: int | tuple[int, int] | None = None) -> dict[str, int]:
    """``{"params", "macs", "activation_bytes"}`` for one image at ``img_size`` (default: ``cfg.img_size``).

    ``activation_bytes`` estimates the fp32 activations kept for the backward pass per image.
    """
    if img_size is not None:
        cfg = cfg.replace(img_size=img_size)
    gh, gw = cfg.grid_size
    N, C, p = gh * gw, cfg.embed_dim, cfg.patch_size
    params = C * cfg.in_chans * p * p + C + 2 * C + 2 * C  # patch embed, norm_pre, norm
    macs = N * C * cfg.in_chans * p * p
    acts = cfg.in_chans * gh * p * gw * p + 2 * N * C
    dynamic, renormed = set(cfg.dynamic_indices), set(cfg.norm_indices)
    for i in range(cfg.depth):
        b = block_cost(cfg, (gh, gw), i in dynamic, i in renormed)
        params, macs, acts = params + b["params"], macs + b["macs"], acts + b["activations"]
    if cfg.num_classes > 0:
        params += C * cfg.num_classes + cfg.num_classes
        macs += C * cfg.num_classes
    return {"params": params, "macs": macs, "activation_bytes": acts * BYTES_PER_ELEMENT}
