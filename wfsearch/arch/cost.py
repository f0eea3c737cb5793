"""Analytic cost of an architecture without torch: parameters, MACs and activation memory, block by block.

MACs count linear maps, convolutions and matrix products (`torch.utils.flop_counter` halved), not element-wise
work. `wfsearch.models.predictors` takes each predictor's ``cost`` from the formulas here.
"""
from __future__ import annotations

from .config import ArchConfig

BYTES_PER_ELEMENT = 4  # fp32 activations


def pooled_count(grid: tuple[int, int], pool: int | str, cover: bool = False) -> int:
    """M, the number of pooled tokens for a grid ``(H, W)`` (`wfsearch.models.predictors.pool_tokens`)."""
    if pool == "global":
        return 1
    if cover:
        return -(-grid[0] // pool) * -(-grid[1] // pool)
    return (grid[0] // pool) * (grid[1] // pool)


def lowrank_cost(c_in: int, c_out: int, rank_ratio: int, n_tokens: int, m_tokens: int,
                 deep: bool = False) -> tuple[int, int]:
    """(params, MACs) of a low-rank fc1 predictor: down M·C_in·(C_in/r + C_out/r), factors
    M·(C_in²/r + C_out²/r), ΔW M·C_in·C_out; ``deep`` adds M·((C_in/r)² + (C_out/r)²)."""
    ra, rb = c_in // rank_ratio, c_out // rank_ratio
    params = c_in * (ra + rb) + (ra + rb) + ra * c_in + rb * c_out
    macs = m_tokens * (c_in * (ra + rb) + ra * c_in + rb * c_out + c_in * c_out)
    if deep:
        params += ra * ra + ra + rb * rb + rb
        macs += m_tokens * (ra * ra + rb * rb)
    return params, macs


def adaptive_cost(dim: int, kernel_size: int, pool: int) -> tuple[int, int]:
    """adaptive: ``2·g²·C²`` MACs."""
    return 2 * dim * dim + dim, 2 * pool * pool * dim * dim


def gap_dwconv_cost(dim: int, kernel_size: int, pool: int) -> tuple[int, int]:
    """gap (dwconv): ``C² + k²·C²`` MACs."""
    kk = kernel_size * kernel_size
    return dim * dim + dim + kk * dim * dim, dim * dim + kk * dim * dim


def ampdir_cost(dim: int, kernel_size: int, pool: int) -> tuple[int, int]:
    """ampdir: adaptive + ``C²``."""
    p, m = adaptive_cost(dim, kernel_size, pool)
    return p + dim * dim + dim, m + dim * dim


def conv_cost(dim: int, kernel_size: int, pool: int) -> tuple[int, int]:
    """conv: ``9·g²·C² + g²·C²`` MACs."""
    return 9 * dim * dim + dim + dim * dim, 10 * pool * pool * dim * dim


# dwconv predictor name -> (params, MACs) formula (fc1: every predictor but none is `lowrank_cost`)
DWCONV_COSTS = {"gap": gap_dwconv_cost, "adaptive": adaptive_cost, "ampdir": ampdir_cost, "conv": conv_cost}


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
    if dynamic and cfg.fc1_predictor != "none":
        m = 1 if cfg.fc1_predictor == "gap" else pooled_count(grid, cfg.fc1_pool, cfg.fc1_pool_mode == "cover")
        p, mac = lowrank_cost(C, Hd, cfg.rank_ratio, N, m, deep=cfg.fc1_predictor == "deep")
        params, macs = params + p, macs + mac
        acts += m * (C + Hd) * 2 + 2 * C * Hd  # factors, ΔW and W0 + ΔW
    if dynamic and cfg.dwconv_predictor != "none":
        p, mac = DWCONV_COSTS[cfg.dwconv_predictor](C, k, cfg.dwconv_grid)
        params, macs = params + p, macs + mac
        acts += 3 * C * k * k
    return {"params": params, "macs": macs, "activations": acts}


def cost(cfg: ArchConfig, img_size: int | tuple[int, int] | None = None) -> dict[str, int]:
    """``{"params", "macs", "activation_bytes"}`` for one image at ``img_size`` (default: ``cfg.img_size``);
    ``activation_bytes`` estimates the fp32 activations kept for the backward pass."""
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
