"""Dynamic-weight predictors: each maps the input to a weight perturbation ΔW(X) in O(N) tokens.

fc1 predictors return low-rank factors ``(Φa, Φb, scale)`` with ``ΔW = scale * Φaᵀ Φb``
(shape ``B x C_in x C_out``); dwconv predictors return a raw kernel ``ΔK`` (``B x C x k x k``).
Normalization (`delta_norm`) and the static base ``W0`` are added by the layers in `layers.py`.

Every class carries its math in its docstring (all of it together: docs/MODEL.md) and its cost in ``cost(...) -> (params, macs)``
(multiply-accumulates of its linear maps for one image; pooling and activations are O(N·C) adds
and are not counted, as in `torch.utils.flop_counter`).
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


# --------------------------------------------------------------------------- spatial compression
def pool_tokens(x_BHWC: torch.Tensor, pool: int | str, cover: bool = False) -> torch.Tensor:
    """Compress the token grid: ``s x s`` average pool or the global mean; returns ``(B, M, C)``.

    ``cover=False`` is the released pooling (``nn.AvgPool2d(s)``, floor): ``M = floor(H/s) floor(W/s)``
    and the tokens of a last partial row or column of cells are ignored (pool 4 on a 14x14 grid sees
    144 of 196 tokens). ``cover=True`` keeps the partial cells (ceil mode): ``M = ceil(H/s) ceil(W/s)``,
    each cell the mean of the tokens it holds, so every token is seen. Both are identical when ``s``
    divides the grid. The pool runs on the channels-last view, so contiguous tokens are not copied.
    """
    B, H, W, C = x_BHWC.shape
    if pool == "global":
        return x_BHWC.mean(dim=(1, 2)).unsqueeze(1)  # (B, 1, C)
    if pool == 1:
        return x_BHWC.reshape(B, H * W, C)
    x_BCHW = x_BHWC.permute(0, 3, 1, 2)
    # with no padding, ceil mode divides a partial cell by the number of tokens it holds
    p_BCHW = F.avg_pool2d(x_BCHW, kernel_size=pool, stride=pool, ceil_mode=cover)
    return p_BCHW.permute(0, 2, 3, 1).reshape(B, -1, C)  # (B, M, C)


@functools.lru_cache(maxsize=64)
def _bin_matrix(n: int, g: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``g x n``: row i averages adaptive pooling's bin i, ``[floor(i n / g), ceil((i + 1) n / g))``.
    Built once per shape on the host and moved once, not re-filled on the device every forward; never
    an inference tensor (the first call may come from inference, a later one from training)."""
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
    """``F.adaptive_avg_pool2d(x, g)`` for a small output (``g x g``) of a large map, as two small
    products with the bins' averaging matrices (a rectangle's mean is the row mean of column means).

    The same numbers (to float rounding); it exists because CUDA's channels-last adaptive pool
    gives each output element one thread, so a ``3 x 3`` summary of a ``56 x 56`` map left most of
    the GPU idle: it took 41% of WeightFormer-Tiny's bf16 inference time at 896 on an H200.
    ``matmul``: None = on CUDA when the map is large; True/False forces either way.
    """
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


# Shape-dependent branches above: under torch.fx symbolic tracing (torchvision's and timm's feature
# extraction) each pooling call is one leaf node, not traced through.
torch.fx.wrap("pool_tokens")
torch.fx.wrap("adaptive_avg_pool")


def _act(name: str) -> nn.Module:
    return get_act_layer(name)()


# --------------------------------------------------------------------------- fc1 predictors
class LowRankPredictor(nn.Module):
    """Shared shape of the fc1 predictors: pooled tokens -> a fused down-projection -> two factors.

    ``U = down(P)`` with ``P`` the ``M`` pooled tokens (``C_in -> C_in/r + C_out/r``, bias), split
    into ``U_a`` (``C_in/r``) and ``U_b`` (``C_out/r``); ``Φa = f_a(U_a) @ W1`` (``W1: C_in/r x C_in``),
    ``Φb = f_b(U_b) @ W2`` (``W2: C_out/r x C_out``); ``ΔW = Φaᵀ Φb · C_in^-½ / Z``. Subclasses choose
    ``f_a``, ``f_b`` and the pooling.

    The normalizer ``Z`` (`factor_scale`): with ``pool_mode="cover"`` ``Z = 4·M`` (the pooled count
    times the released 2x2 pool area), so ``ΔW = C_in^-½ / 4 · mean_m(φa_m φb_mᵀ)`` has the same
    scale whatever the pool; with ``pool_mode="released"`` ``Z = N``, the un-pooled token count, as
    the released code (so ΔW shrinks as ``M/N ≈ 1/s²``). Both agree for the released 2x2 pool on an
    even grid. See docs/MODEL.md.
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
        """The low-rank codes before the factor maps: ``(f_a(U_a), f_b(U_b), scale)``, so that
        ``Φa = codes_a @ W1`` and ``Φb = codes_b @ W2`` (shapes ``B x M x C_in/r``, ``B x M x C_out/r``).

        The fast `DynamicLinear` path starts here: it may never form ``Φa``, ``Φb`` or ``ΔW``.
        ``merge_act`` applies one activation to both halves when both sides take it (same values).
        """
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
        """(params, MACs): down M·C_in·(C_in/r + C_out/r), factors M·(C_in²/r + C_out²/r), ΔW M·C_in·C_out
        (`wfsearch.arch.cost.lowrank_cost`)."""
        return lowrank_cost(c_in, c_out, rank_ratio, n_tokens, m_tokens, deep=cls.deep)


class BilateralPredictor(LowRankPredictor):
    """bilateral (released): ``Φa = silu(U_a) W1``, ``Φb = silu(U_b) W2``, ``ΔW = Φaᵀ Φb · C_in^-½ / Z``.

    Pooled ``s x s`` (released: 2x2, ``M ≈ N/4``). Cost: ``M·(C_in(C_in+C_out)/r + C_in²/r + C_out²/r
    + C_in·C_out)`` MACs, linear in N.
    """


class LinearPredictor(LowRankPredictor):
    """linear: the bilateral correlation without activations, ``ΔW = (P A)ᵀ (P B) · C_in^-½ / Z``
    with ``A = down_a W1`` and ``B = down_b W2`` low-rank linear maps. Cost as bilateral."""

    act_a = False
    act_b = False


class NonlinearPredictor(LowRankPredictor):
    """nonlinear: an activation on one side only, ``Φa = σ(U_a) W1``, ``Φb = U_b W2``. Cost as bilateral."""

    act_b = False


class DeepPredictor(LowRankPredictor):
    """deep: a two-layer predictor on each side before the correlation,
    ``Φa = σ(H_a σ(U_a) + h_a) W1``, ``Φb = σ(H_b σ(U_b) + h_b) W2`` (``H_a: C_in/r x C_in/r``).
    Cost: bilateral + ``M·((C_in/r)² + (C_out/r)²)``."""

    deep = True


class GapPredictor(LowRankPredictor):
    """gap: ΔW from the global-average token ``m`` through a low-rank map, a rank-1 outer product
    ``ΔW = (σ(U_a(m)) W1)ᵀ (σ(U_b(m)) W2) · C_in^-½ / Z`` with ``Z = 4`` (cover: the cover scale at
    ``M = 1``, so gap is exactly bilateral with ``fc1_pool: global``) or ``Z = 1`` (released mode: the
    formula of earlier versions). ``M = 1`` (the N-token mean costs N·C adds). Cost: bilateral, ``M = 1``."""

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


# --------------------------------------------------------------------------- dwconv predictors
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
    """adaptive (released): adaptive-average-pool the map to ``g x g`` (one summary per tap when
    ``g = k``), then a channel MLP ``conv1x1(C->C, bias) -> σ -> conv1x1(C->C, no bias)`` gives
    ``ΔK`` (``B x C x k x k``; resampled to ``k x k`` when ``g != k``).
    Cost: ``2·g²·C²`` MACs, constant in N (pooling N·C adds)."""

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
    """gap: the kernel from the global-average vector through a channel MLP,
    ``ΔK = reshape(W_2 σ(W_1 m + b_1))`` with ``W_1: C x C``, ``W_2: k²C x C``.
    Cost: ``C² + k²·C²`` MACs, constant in N."""

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
    """ampdir: amplitude and direction predicted separately, ``ΔK_c = a_c(X) · d_c(X) / ||d_c(X)||``.

    ``d`` comes from the adaptive path (``g x g`` pool, ``conv1x1 -> σ -> conv1x1``), ``a = W_a m + b_a``
    from the global mean ``m``. Cost: ``2·g²·C² + C²`` MACs, constant in N."""

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
    """conv: the kernel predicted by a 3x3 conv over the pooled ``g x g`` map instead of a 1x1 MLP,
    ``ΔK = conv1x1(σ(conv3x3(pool_g(X))))`` (`AdaptivePredictor`'s forward with a 3x3 ``fc1``).
    Cost: ``9·g²·C² + g²·C²`` MACs, constant in N."""

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
    """The mean Frobenius norm of the fc1 predictors' raw ``ΔW = scale · Φaᵀ Φb`` (before the squash)
    over the predictors of ``model`` and the ``images`` of one inference forward; NaN without one."""
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
