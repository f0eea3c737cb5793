"""Dynamic-weight predictors: each maps the input to a weight perturbation ΔW(X) in O(N) tokens.

fc1 predictors return ``(Φa, Φb, scale)`` with ``ΔW = scale * Φaᵀ Φb``; dwconv predictors a raw ``ΔK``
(``B x C x k x k``); `layers.py` adds the normalization and ``W0``. Math: docs/MODEL.md; ``cost(...)``
gives (params, MACs of the linear maps for one image; pooling and activations not counted).
"""
from __future__ import annotations

import functools

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import get_act_layer, trunc_normal_

from wfsearch.arch.config import PREDICTORS, RELEASED_POOL_AREA
from wfsearch.arch.cost import (adaptive_cost, ampdir_cost, conv_cost, gap_dwconv_cost, lowrank_cost,
                                 pooled_count)  # noqa: F401  (pooled_count: M of `pool_tokens`)


def pool_tokens(x_BHWC: torch.Tensor, pool: int | str, cover: bool = False) -> torch.Tensor:
    """Compress the token grid: ``s x s`` average pool or the global mean; returns ``(B, M, C)``.
    ``cover=False``: the released floor pooling (a partial last row/column of cells is ignored);
    ``cover=True``: ceil mode, each partial cell the mean of the tokens it holds."""
    B, H, W, C = x_BHWC.shape
    if pool == "global":
        return x_BHWC.mean(dim=(1, 2)).unsqueeze(1)  # (B, 1, C)
    if pool == 1:
        return x_BHWC.reshape(B, H * W, C)
    x_BCHW = x_BHWC.permute(0, 3, 1, 2)
    p_BCHW = F.avg_pool2d(x_BCHW, kernel_size=pool, stride=pool, ceil_mode=cover)
    return p_BCHW.permute(0, 2, 3, 1).reshape(B, -1, C)  # (B, M, C)


@functools.lru_cache(maxsize=64)
def _bin_matrix(n: int, g: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``g x n``: row i averages adaptive pooling's bin i; built once per shape, never an inference tensor."""
    with torch.inference_mode(False):
        m = torch.zeros(g, n, dtype=torch.float64)
        for i in range(g):
            lo, hi = (i * n) // g, -((-(i + 1) * n) // g)
            m[i, lo:hi] = 1.0 / (hi - lo)
        return m.to(device=device, dtype=dtype)


def _bin_matrix_ops(n: int, g: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """`_bin_matrix` from tensor ops alone, for ``torch.compile`` (which folds it into the graph)."""
    i = torch.arange(g, device=device)
    lo, hi = (i * n) // g, -((-(i + 1) * n) // g)
    j = torch.arange(n, device=device)
    inside = (j >= lo[:, None]) & (j < hi[:, None])
    return (inside.to(torch.float32) / (hi - lo)[:, None].to(torch.float32)).to(dtype)


def adaptive_avg_pool(x_BCHW: torch.Tensor, g: int, matmul: bool | None = None) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, g)`` as two small products with the bins' averaging matrices (same numbers
    to rounding): CUDA's channels-last adaptive pool gives each output one thread, 41% of Tiny's bf16
    time at 896 on an H200. ``matmul``: None = on CUDA when the map is large; True/False forces it."""
    B, C, H, W = x_BCHW.shape
    if matmul is None:
        matmul = x_BCHW.device.type == "cuda" and (H > 2 * g or W > 2 * g)
    if not matmul:
        return F.adaptive_avg_pool2d(x_BCHW, g)
    bins = _bin_matrix_ops if torch.compiler.is_compiling() else _bin_matrix
    ph, pw = (bins(n, g, x_BCHW.dtype, x_BCHW.device) for n in (H, W))
    x_BHWC = x_BCHW.permute(0, 2, 3, 1)  # free for channels-last tokens
    t_BHgC = torch.matmul(pw, x_BHWC)  # (B, H, g, C): column bins
    p_BggC = torch.einsum("ih,bhjc->bijc", ph, t_BHgC)  # (B, g, g, C): row bins
    return p_BggC.permute(0, 3, 1, 2)


# shape-dependent branches: one leaf node each under torch.fx symbolic tracing
torch.fx.wrap("pool_tokens")
torch.fx.wrap("adaptive_avg_pool")


def _act(name: str) -> nn.Module:
    return get_act_layer(name)()


class LowRankPredictor(nn.Module):
    """Shared shape of the fc1 predictors: ``U = down(P)`` on the ``M`` pooled tokens, split into ``U_a``
    (``C_in/r``) and ``U_b`` (``C_out/r``); ``Φa = f_a(U_a) W1``, ``Φb = f_b(U_b) W2``, ``ΔW = Φaᵀ Φb · C_in^-½ / Z``.
    `factor_scale`'s ``Z``: ``4·M`` with ``pool_mode="cover"`` (the same scale whatever the pool), ``N`` with
    ``"released"`` (as the released code). Subclasses choose ``f_a``, ``f_b`` and the pooling.
    """

    act_a = True
    act_b = True
    deep = False

    def __init__(self, in_features: int, out_features: int, rank_ratio: int = 4,
                 pool: int | str = 2, act: str = "silu", pool_mode: str = "cover"):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.rank_a, self.rank_b = in_features // rank_ratio, out_features // rank_ratio
        self.pool, self.pool_mode = pool, pool_mode
        self.scale = in_features ** -0.5
        self.down = nn.Linear(in_features, self.rank_a + self.rank_b)
        self.act_fn = _act(act)
        if self.deep:
            self.hidden_a = nn.Linear(self.rank_a, self.rank_a)
            self.hidden_b = nn.Linear(self.rank_b, self.rank_b)
        self.w1 = nn.Parameter(torch.empty(self.rank_a, in_features))
        self.w2 = nn.Parameter(torch.empty(self.rank_b, out_features))
        trunc_normal_(self.w1, std=0.02)
        trunc_normal_(self.w2, std=0.02)

    def side(self, u: torch.Tensor, use_act: bool, hidden: nn.Module | None) -> torch.Tensor:
        if use_act:
            u = self.act_fn(u)
        if hidden is not None:
            u = self.act_fn(hidden(u))
        return u

    def codes(self, x_BHWC: torch.Tensor, merge_act: bool = False) -> tuple[torch.Tensor, torch.Tensor, float]:
        """``(f_a(U_a), f_b(U_b), scale)``, so ``Φa = codes_a @ W1``, ``Φb = codes_b @ W2`` (the fast path's
        start). ``merge_act`` applies one activation to both halves when both take it (same values)."""
        B, H, W, _ = x_BHWC.shape
        return self.codes_pooled(self.compress(x_BHWC), H * W, merge_act)

    def compress(self, x_BHWC: torch.Tensor) -> torch.Tensor:
        """The pooled tokens ``(B, M, C_in)`` the predictor reads (`pool_tokens` in its mode)."""
        return pool_tokens(x_BHWC, self.pool, cover=self.pool_mode == "cover")

    def codes_pooled(self, p_BMC: torch.Tensor, n_tokens: int, merge_act: bool = False
                     ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """`codes` from the already pooled tokens ``(B, M, C_in)`` of an ``n_tokens`` grid."""
        return self.codes_from_down(self.down(p_BMC), n_tokens, merge_act)

    def codes_from_down(self, u_BMR: torch.Tensor, n_tokens: int, merge_act: bool = False
                        ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """`codes` from the fused down-projection ``U = down(P)`` (``B x M x (C_in/r + C_out/r)``)."""
        scale = self.factor_scale(n_tokens, u_BMR.shape[-2])
        if merge_act and self.act_a and self.act_b and not self.deep:
            return (*torch.split(self.act_fn(u_BMR), [self.rank_a, self.rank_b], dim=-1), scale)
        u_a, u_b = torch.split(u_BMR, [self.rank_a, self.rank_b], dim=-1)
        a_BMRa = self.side(u_a, self.act_a, getattr(self, "hidden_a", None))
        b_BMRb = self.side(u_b, self.act_b, getattr(self, "hidden_b", None))
        return a_BMRa, b_BMRb, scale

    def forward(self, x_BHWC: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        a_BMRa, b_BMRb, scale = self.codes(x_BHWC)
        phi_a = a_BMRa @ self.w1  # (B, M, C_in)
        phi_b = b_BMRb @ self.w2  # (B, M, C_out)
        return phi_a, phi_b, scale

    def factor_scale(self, n_tokens: int, m_tokens: int) -> float:
        """``C_in^-½ / Z``: ``Z = 4 M`` (cover) or ``N`` (released)."""
        if self.pool_mode == "cover":
            return self.scale / (RELEASED_POOL_AREA * m_tokens)
        return self.scale / n_tokens

    @classmethod
    def cost(cls, c_in: int, c_out: int, rank_ratio: int, n_tokens: int, m_tokens: int) -> tuple[int, int]:
        """(params, MACs) (`wfsearch.arch.cost.lowrank_cost`)."""
        return lowrank_cost(c_in, c_out, rank_ratio, n_tokens, m_tokens, deep=cls.deep)


class BilateralPredictor(LowRankPredictor):
    """bilateral (released): ``Φa = silu(U_a) W1``, ``Φb = silu(U_b) W2``, pooled ``s x s`` (released 2x2)."""


class LinearPredictor(LowRankPredictor):
    """linear: bilateral without activations, ``ΔW = (P A)ᵀ (P B) · C_in^-½ / Z``."""

    act_a = False
    act_b = False


class NonlinearPredictor(LowRankPredictor):
    """nonlinear: an activation on one side only, ``Φa = σ(U_a) W1``, ``Φb = U_b W2``."""

    act_b = False


class DeepPredictor(LowRankPredictor):
    """deep: two layers per side, ``Φa = σ(H_a σ(U_a) + h_a) W1``, ``Φb = σ(H_b σ(U_b) + h_b) W2``."""

    deep = True


class GapPredictor(LowRankPredictor):
    """gap: a rank-1 ΔW from the global-average token, ``Z = 4`` (cover: bilateral with ``fc1_pool: global``)
    or ``Z = 1`` (released mode)."""

    def __init__(self, in_features: int, out_features: int, rank_ratio: int = 4,
                 pool: int | str = "global", act: str = "silu", pool_mode: str = "cover"):
        super().__init__(in_features, out_features, rank_ratio, "global", act, pool_mode)

    def factor_scale(self, n_tokens: int, m_tokens: int) -> float:
        return self.scale / RELEASED_POOL_AREA if self.pool_mode == "cover" else self.scale


FC1_PREDICTORS: dict[str, type[LowRankPredictor] | None] = {
    "none": None,
    "gap": GapPredictor,
    "linear": LinearPredictor,
    "nonlinear": NonlinearPredictor,
    "deep": DeepPredictor,
    "bilateral": BilateralPredictor,
}


def _resample_kernel(k_BCgg: torch.Tensor, k: int) -> torch.Tensor:
    """Map a ``g x g`` map of per-tap summaries onto the ``k x k`` kernel taps (identity when g == k)."""
    g = k_BCgg.shape[-1]
    if g == k:
        return k_BCgg
    if g > k:
        return F.adaptive_avg_pool2d(k_BCgg, k)
    return F.interpolate(k_BCgg, size=(k, k), mode="bilinear", align_corners=True)


torch.fx.wrap("_resample_kernel")  # a shape-dependent branch: one leaf node under torch.fx tracing


class AdaptivePredictor(nn.Module):
    """adaptive (released): pool to ``g x g``, then ``conv1x1 -> σ -> conv1x1`` gives ΔK (resampled to
    ``k x k`` when ``g != k``)."""

    def __init__(self, dim: int, kernel_size: int = 3, pool: int = 3, act: str = "gelu", fc1_kernel: int = 1):
        super().__init__()
        self.kernel_size, self.pool = kernel_size, pool
        self.fc1 = nn.Conv2d(dim, dim, kernel_size=fc1_kernel, padding=fc1_kernel // 2)
        self.act = _act(act)
        self.fc2 = nn.Conv2d(dim, dim, kernel_size=1, bias=False)

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        p_BCgg = adaptive_avg_pool(x_BCHW, self.pool)
        return _resample_kernel(self.fc2(self.act(self.fc1(p_BCgg))), self.kernel_size)

    cost = staticmethod(adaptive_cost)  # (dim, kernel_size, pool) -> (params, MACs)


class GapDWPredictor(nn.Module):
    """gap: ``ΔK = reshape(W_2 σ(W_1 m + b_1))`` from the global-average vector ``m``."""

    def __init__(self, dim: int, kernel_size: int = 3, pool: int = 1, act: str = "gelu"):
        super().__init__()
        self.kernel_size = kernel_size
        self.fc1 = nn.Conv2d(dim, dim, kernel_size=1)
        self.act = _act(act)
        self.fc2 = nn.Conv2d(dim, dim * kernel_size * kernel_size, kernel_size=1, bias=False)

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        B, C = x_BCHW.shape[:2]
        m_BC11 = x_BCHW.mean(dim=(2, 3), keepdim=True)
        k = self.kernel_size
        return self.fc2(self.act(self.fc1(m_BC11))).reshape(B, C, k, k)

    cost = staticmethod(gap_dwconv_cost)  # (dim, kernel_size, pool) -> (params, MACs)


class AmpDirPredictor(nn.Module):
    """ampdir: ``ΔK_c = a_c(X) · d_c(X) / ||d_c(X)||``, ``d`` from the adaptive path, ``a`` from the global mean."""

    def __init__(self, dim: int, kernel_size: int = 3, pool: int = 3, act: str = "gelu"):
        super().__init__()
        self.direction = AdaptivePredictor(dim, kernel_size, pool, act)
        self.amplitude = nn.Conv2d(dim, dim, kernel_size=1)

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        d_BCkk = self.direction(x_BCHW)
        a_BC11 = self.amplitude(x_BCHW.mean(dim=(2, 3), keepdim=True))
        unit = d_BCkk / (d_BCkk.flatten(2).norm(dim=-1)[..., None, None] + 1e-6)
        return a_BC11 * unit

    cost = staticmethod(ampdir_cost)  # (dim, kernel_size, pool) -> (params, MACs)


class ConvPredictor(AdaptivePredictor):
    """conv: `AdaptivePredictor` with a 3x3 ``fc1``, ``ΔK = conv1x1(σ(conv3x3(pool_g(X))))``."""

    def __init__(self, dim: int, kernel_size: int = 3, pool: int = 3, act: str = "gelu"):
        super().__init__(dim, kernel_size, pool, act, fc1_kernel=3)

    cost = staticmethod(conv_cost)  # (dim, kernel_size, pool) -> (params, MACs)


DWCONV_PREDICTORS: dict[str, type[nn.Module] | None] = {
    "none": None,
    "gap": GapDWPredictor,
    "adaptive": AdaptivePredictor,
    "ampdir": AmpDirPredictor,
    "conv": ConvPredictor,
}

assert list(FC1_PREDICTORS) == PREDICTORS["fc1"] and list(DWCONV_PREDICTORS) == PREDICTORS["dwconv"]


def mean_raw_delta_norm(model: nn.Module, images: torch.Tensor) -> float:
    """Mean Frobenius norm of the fc1 predictors' raw ``ΔW`` (before the squash) on ``images``; NaN without one."""
    norms: list[float] = []

    def hook(mod: nn.Module, inputs: tuple, output: tuple) -> None:
        phi_a, phi_b, scale = output
        norms.append((phi_a.transpose(1, 2) @ phi_b * scale).norm(dim=(1, 2)).mean().item())

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, LowRankPredictor)]
    try:
        with torch.no_grad():
            model(images)
    finally:
        for h in handles:
            h.remove()
    return sum(norms) / len(norms) if norms else float("nan")
