"""Triton kernels for the dynamic layers in GPU inference: no per-sample weight, no layout copy.

Imported only on the kernel path (`fast_path.use_triton`), so ``import wfsearch.models`` never needs
triton. Each kernel is a ``torch.library.triton_op`` that ``torch.compile(fullgraph=True)`` traces
through; no backward (the layers never call them when a gradient is needed).

``dwconv``: ``[x +] b + dwconv(x, K0 + norm(ΔK))`` on ``(B, H, W, C)`` tokens, the per-sample kernel
formed inside each program (2 passes over the tokens against the eager path's 7). ``dynamic_linear``:
``act(x W0ᵀ + (x P) Q' + b)``, with ``x P`` and the column-normalized ``Q'`` formed once per sample in a
pre-pass (not per tile); ``W0 + ΔW`` is never formed.

Block sizes are fixed heuristics, not autotuned (benchmarks/NOTES.md). With ``TRITON_INTERPRET=1`` the
kernels run on CPU tensors (tests/test_triton.py). They use Triton builtins only (``tl.full``, not the
``@jit`` standard library's ``tl.zeros``, which is made compiled or interpreted when triton is first imported).
"""
from __future__ import annotations

from typing import Optional  # the ops' signatures: torch.library reads them on every supported torch

import torch
import triton
import triton.language as tl
from torch._subclasses.fake_tensor import is_fake
from torch.library import triton_op, wrap_triton
from triton.runtime.jit import JITFunction

__all__ = ["MAX_RANK", "dwconv", "dynamic_linear"]

MAX_RANK = 256  # the widest low-rank inner dimension k the linear kernel holds in registers


class _NoLaunch:
    def __getitem__(self, grid):
        return lambda *args, **kwargs: None


def _launch(kernel, x: torch.Tensor):
    """The kernel wrapped for torch's tracing; the interpreter's function as it is (nothing while ``x`` is fake)."""
    if isinstance(kernel, JITFunction):
        return wrap_triton(kernel)
    return _NoLaunch() if is_fake(x) else kernel


def _pow2(n: int, lo: int = 16, hi: int | None = None) -> int:
    v = max(lo, triton.next_power_of_2(n))
    return v if hi is None else min(v, hi)


@triton.jit
def _dwconv_kernel(x_ptr, d_ptr, k0_ptr, bias_ptr, y_ptr,
                   H, W, C, n_ptiles,
                   sxb, sxh, sxw, sxc, sdb, sdc, sdh, sdw,
                   KS: tl.constexpr, HAS_DELTA: tl.constexpr, SQUASH: tl.constexpr, RESIDUAL: tl.constexpr,
                   BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    # one program: BLOCK_P consecutive pixels (row-major) x BLOCK_C channels of one sample
    pid = tl.program_id(0)
    b = (pid // n_ptiles).to(tl.int64)
    p = (pid % n_ptiles) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    pm = p < H * W
    cm = c < C
    h = p // W
    w = p % W
    x_b = x_ptr + b * sxb
    d_bc = d_ptr + b * sdb + c * sdc
    if HAS_DELTA and SQUASH:  # 1 / (||ΔK_c||_F + 1) for this sample's channels
        ss = tl.full([BLOCK_C], 0.0, tl.float32)
        for t in tl.static_range(KS * KS):
            d = tl.load(d_bc + (t // KS) * sdh + (t % KS) * sdw, mask=cm, other=0.0).to(tl.float32)
            ss += d * d
        inv = 1.0 / (tl.sqrt(ss) + 1.0)
    acc = tl.full([BLOCK_P, BLOCK_C], 0.0, tl.float32)
    for t in tl.static_range(KS * KS):
        kt = tl.load(k0_ptr + c * (KS * KS) + t, mask=cm, other=0.0).to(tl.float32)
        if HAS_DELTA:
            d = tl.load(d_bc + (t // KS) * sdh + (t % KS) * sdw, mask=cm, other=0.0).to(tl.float32)
            if SQUASH:
                kt += d * inv
            else:
                kt += d
        hh = h + (t // KS - KS // 2)
        ww = w + (t % KS - KS // 2)
        m = pm & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
        xv = tl.load(x_b + hh[:, None] * sxh + ww[:, None] * sxw + c[None, :] * sxc,
                     mask=m[:, None] & cm[None, :], other=0.0).to(tl.float32)
        acc += xv * kt[None, :]
    acc += tl.load(bias_ptr + c, mask=cm, other=0.0).to(tl.float32)[None, :]
    out_m = pm[:, None] & cm[None, :]
    if RESIDUAL:
        acc += tl.load(x_b + h[:, None] * sxh + w[:, None] * sxw + c[None, :] * sxc, mask=out_m,
                       other=0.0).to(tl.float32)
    tl.store(y_ptr + (b * H * W + p)[:, None] * C + c[None, :], acc.to(y_ptr.dtype.element_ty), mask=out_m)


@triton_op("wfsearch::dwconv", mutates_args=())
def _dwconv_op(x: torch.Tensor, delta: Optional[torch.Tensor], k0: torch.Tensor, bias: torch.Tensor,
               squash: bool, residual: bool) -> torch.Tensor:
    B, H, W, C = x.shape
    KS = k0.shape[-1]
    y = torch.empty((B, H, W, C), dtype=x.dtype, device=x.device)
    BLOCK_C = _pow2(C, 16, 64)
    BLOCK_P = 64 if BLOCK_C == 64 else 128
    n_ptiles = triton.cdiv(H * W, BLOCK_P)
    d = delta if delta is not None else k0  # (unread without a delta)
    sd = d.stride() if delta is not None else (0, 0, 0, 0)
    _launch(_dwconv_kernel, x)[(B * n_ptiles, triton.cdiv(C, BLOCK_C))](
        x, d, k0, bias, y, H, W, C, n_ptiles, *x.stride(), *sd,
        KS=KS, HAS_DELTA=delta is not None, SQUASH=squash, RESIDUAL=residual,
        BLOCK_P=BLOCK_P, BLOCK_C=BLOCK_C, num_warps=4)
    return y


def dwconv(x_BHWC: torch.Tensor, delta_BCkk: torch.Tensor | None, k0_C1kk: torch.Tensor, bias_C: torch.Tensor,
           squash: bool = True, residual: bool = False) -> torch.Tensor:
    """``[x +] b + dwconv(x, K0 + norm(ΔK))`` for ``(B, H, W, C)`` tokens (any strides), 'same' padding;
    returns contiguous ``(B, H, W, C)`` in ``x``'s dtype (accumulated in fp32). ``delta_BCkk`` is the
    predictor's raw ΔK (None: the static kernel alone); ``squash`` divides it by ``||ΔK_c||_F + 1``."""
    B, H, W, C = x_BHWC.shape
    k = k0_C1kk.shape[-1]
    if k0_C1kk.shape != (C, 1, k, k) or k % 2 == 0:
        raise ValueError(f"dwconv: kernel of shape {tuple(k0_C1kk.shape)}, expected ({C}, 1, k, k) with k odd")
    if delta_BCkk is not None and delta_BCkk.shape != (B, C, k, k):
        raise ValueError(f"dwconv: ΔK of shape {tuple(delta_BCkk.shape)}, expected {(B, C, k, k)}")
    return torch.ops.wfsearch.dwconv(x_BHWC, delta_BCkk, k0_C1kk.contiguous(), bias_C.contiguous(), bool(squash),
                                     bool(residual))


@triton.jit
def _dynamic_linear_kernel(x_ptr, w_ptr, xp_ptr, q_ptr, bias_ptr, y_ptr,
                           N, C, O, K, n_ntiles, n_otiles,
                           sxb, sxn, sxc, swo, swc, spb, spn, spk, sqb, sqk, sqo,
                           GELU: tl.constexpr, PRECISION: tl.constexpr,
                           BLOCK_N: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_C: tl.constexpr,
                           BLOCK_K: tl.constexpr):
    # one program: BLOCK_N tokens of one sample x BLOCK_O output columns; the output-column tiles of a
    # token tile are neighbours in the launch order, so the tokens come from DRAM about once
    pid = tl.program_id(0)
    tile = pid // n_otiles
    b = (tile // n_ntiles).to(tl.int64)
    n = (tile % n_ntiles) * BLOCK_N + tl.arange(0, BLOCK_N)
    o = (pid % n_otiles) * BLOCK_O + tl.arange(0, BLOCK_O)
    kk = tl.arange(0, BLOCK_K)
    nm = n < N
    om = o < O
    km = kk < K
    cdt = y_ptr.dtype.element_ty  # the compute dtype (autocast's, or the tokens')
    acc = tl.full([BLOCK_N, BLOCK_O], 0.0, tl.float32)  # x W0ᵀ
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        cm = c < C
        xt = tl.load(x_ptr + b * sxb + n[:, None] * sxn + c[None, :] * sxc, mask=nm[:, None] & cm[None, :],
                     other=0.0).to(cdt)
        wt = tl.load(w_ptr + c[:, None] * swc + o[None, :] * swo, mask=cm[:, None] & om[None, :], other=0.0).to(cdt)
        acc = tl.dot(xt, wt, acc, input_precision=PRECISION)
    # + (x P) Q': both formed once per sample before the launch, so no program recomputes them
    xpt = tl.load(xp_ptr + b * spb + n[:, None] * spn + kk[None, :] * spk, mask=nm[:, None] & km[None, :],
                  other=0.0).to(cdt)
    qt = tl.load(q_ptr + b * sqb + kk[:, None] * sqk + o[None, :] * sqo, mask=km[:, None] & om[None, :],
                 other=0.0).to(cdt)
    acc = tl.dot(xpt, qt, acc, input_precision=PRECISION)
    acc += tl.load(bias_ptr + o, mask=om, other=0.0).to(tl.float32)[None, :]
    if GELU:  # exact (erf) GELU, as nn.GELU()
        acc = 0.5 * acc * (1.0 + tl.erf(acc * 0.7071067811865476))
    tl.store(y_ptr + (b * N + n)[:, None] * O + o[None, :], acc.to(cdt), mask=nm[:, None] & om[None, :])


@triton_op("wfsearch::dynamic_linear", mutates_args=())
def _dynamic_linear_op(x: torch.Tensor, weight: torch.Tensor, xp: torch.Tensor, q: torch.Tensor,
                       bias: torch.Tensor, gelu: bool, out_dtype: torch.dtype, tf32: bool) -> torch.Tensor:
    B, N, C = x.shape
    O, K = weight.shape[0], q.shape[-2]
    y = torch.empty((B, N, O), dtype=out_dtype, device=x.device)
    BLOCK_N = 64 if N <= 4096 else 128  # at least Hopper's 64-row wgmma tile
    BLOCK_O = _pow2(O, 16, 128)
    BLOCK_C = _pow2(C, 16, 64)
    BLOCK_K = _pow2(K)
    n_ntiles, n_otiles = triton.cdiv(N, BLOCK_N), triton.cdiv(O, BLOCK_O)
    warps = 8 if BLOCK_N * BLOCK_O > 8192 else 4  # fp32 accumulator values a program holds
    # IEEE fp32 products only where fp32 is asked for without TF32; bf16/fp16 products ignore it
    precision = "ieee" if out_dtype == torch.float32 and not tf32 else "tf32"
    _launch(_dynamic_linear_kernel, x)[(B * n_ntiles * n_otiles,)](
        x, weight, xp, q, bias, y, N, C, O, K, n_ntiles, n_otiles,
        *x.stride(), *weight.stride(), *xp.stride(), *q.stride(), GELU=gelu, PRECISION=precision,
        BLOCK_N=BLOCK_N, BLOCK_O=BLOCK_O, BLOCK_C=BLOCK_C, BLOCK_K=BLOCK_K, num_warps=warps)
    return y


def dynamic_linear(x_BHWC: torch.Tensor, weight_OI: torch.Tensor, p: torch.Tensor, q_BKO: torch.Tensor,
                   bias_O: torch.Tensor, gelu: bool = False, gram: torch.Tensor | None = None,
                   scale: float = 1.0) -> torch.Tensor:
    """``act(x (W0 + ΔW) + b)`` per sample for ``(B, H, W, C_in)`` tokens; returns ``(B, H, W, C_out)``.

    ``ΔW = scale · P Q`` (``P``: ``C_in x k`` or ``B x C_in x k``; ``Q``: ``B x k x C_out``); with ``gram``
    (``G = PᵀP``) every column is squashed, its norm ``scale · sqrt(Q_jᵀ G Q_j)``. ``weight_OI`` is in
    `nn.Linear` layout. Computes in autocast's dtype when on (else the tokens'); fp32 uses TF32 only where
    ``torch.backends.cuda.matmul.allow_tf32`` allows.
    """
    B, H, W, C = x_BHWC.shape
    O, K = weight_OI.shape[0], q_BKO.shape[-2]
    if (weight_OI.shape[1] != C or p.dim() not in (2, 3) or p.shape[-2:] != (C, K) or q_BKO.shape != (B, K, O)
            or (gram is not None and gram.shape[-2:] != (K, K))):
        raise ValueError(f"dynamic_linear: shapes x {tuple(x_BHWC.shape)}, W0ᵀ {tuple(weight_OI.shape)}, "
                         f"P {tuple(p.shape)}, Q {tuple(q_BKO.shape)}"
                         + (f", G {tuple(gram.shape)}" if gram is not None else "") + " do not chain")
    if K > MAX_RANK:
        raise ValueError(f"dynamic_linear: low-rank inner dimension {K} > {MAX_RANK}")
    dev = x_BHWC.device.type
    dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x_BHWC.dtype
    tf32 = dtype == torch.float32 and dev == "cuda" and torch.backends.cuda.matmul.allow_tf32
    x_BNC = x_BHWC.reshape(B, H * W, C)
    # the pre-pass, once per sample (small next to the main product): x P (B x N x k) and the scaled Q',
    # ΔW[:, j] / (||ΔW[:, j]|| + 1) = P Q_j · scale / (scale · sqrt(Q_jᵀ G Q_j) + 1)
    xp = torch.matmul(x_BNC.to(dtype), p.to(dtype))
    q = q_BKO.float()
    if gram is None:
        q = q * scale
    else:
        n2 = (q * torch.matmul(gram.float(), q)).sum(-2, keepdim=True).clamp_min(0.0)  # B x 1 x O
        q = q * (scale / (scale * n2.sqrt() + 1.0))
    y = torch.ops.wfsearch.dynamic_linear(x_BNC, weight_OI, xp, q.to(dtype), bias_O, bool(gelu), dtype, tf32)
    return y.view(B, H, W, O)
