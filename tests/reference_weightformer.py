"""An independent, loop-based implementation of the released WeightFormer math (docs/MODEL.md),
written directly on reference-format parameter names, to check the library's model against."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _ln(x, sd, prefix):
    return F.layer_norm(x, x.shape[-1:], sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], eps=1e-6)


def random_reference_state_dict(dim: int, depth: int, patch: int = 16, num_classes: int = 10,
                                mlp_ratio: int = 4, seed: int = 0, dtype=torch.float64) -> dict:
    """Random weights in the reference format; dynamic predictors get large weights so ΔW matters."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, std=0.2):
        return (torch.randn(*shape, generator=g) * std).to(dtype)

    hid, r4 = dim * mlp_ratio, 4
    sd = {"patch_embed.proj.weight": r(dim, 3, patch, patch, std=0.05), "patch_embed.proj.bias": r(dim),
          "init_norm.weight": 1 + r(dim), "init_norm.bias": r(dim),
          "norm.weight": 1 + r(dim), "norm.bias": r(dim),
          "head.weight": r(num_classes, dim), "head.bias": r(num_classes)}
    for i in range(depth):
        p = f"blocks.{i}"
        sd[f"{p}.norm2.weight"], sd[f"{p}.norm2.bias"] = 1 + r(dim), r(dim)
        sd[f"{p}.linear2.weight"], sd[f"{p}.linear2.bias"] = r(dim, hid, std=0.05), r(dim)
        if (i + 2) % 3 == 0:
            sd[f"{p}.norm1.weight"], sd[f"{p}.norm1.bias"] = 1 + r(dim), r(dim)
            sd[f"{p}.dwc.w"], sd[f"{p}.dwc.b"] = r(dim, 1, 3, 3), r(dim)
            sd[f"{p}.dwc.wfm.0.weight"], sd[f"{p}.dwc.wfm.0.bias"] = r(dim, dim, 1, 1, std=1.0), r(dim)
            sd[f"{p}.dwc.wfm.2.weight"] = r(dim, dim, 1, 1, std=1.0)
            sd[f"{p}.linear1.w"], sd[f"{p}.linear1.b"] = r(dim, hid, std=0.05), r(hid)
            sd[f"{p}.linear1.wfm.weight"] = r(dim // r4 + hid // r4, dim, std=1.0)
            sd[f"{p}.linear1.wfm.bias"] = r(dim // r4 + hid // r4)
            sd[f"{p}.linear1.w1"], sd[f"{p}.linear1.w2"] = r(dim // r4, dim, std=1.0), r(hid // r4, hid, std=1.0)
        else:
            sd[f"{p}.dwc.weight"], sd[f"{p}.dwc.bias"] = r(dim, 1, 3, 3), r(dim)
            sd[f"{p}.linear1.weight"], sd[f"{p}.linear1.bias"] = r(hid, dim, std=0.05), r(hid)
    return sd


def reference_forward(sd: dict, x: torch.Tensor, depth: int, patch: int = 16) -> torch.Tensor:
    """Forward pass of the released design, one sample at a time for the dynamic parts."""
    x = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=patch)
    B, C, H, W = x.shape
    N = H * W
    t = x.flatten(2).transpose(1, 2)  # (B, N, C)
    t = _ln(t, sd, "init_norm")
    for i in range(depth):
        p = f"blocks.{i}"
        dynamic = (i + 2) % 3 == 0
        if dynamic:
            t = _ln(t, sd, f"{p}.norm1")
        m = t.transpose(1, 2).reshape(B, C, H, W)
        outs = []
        for b in range(B):
            if dynamic:
                s = F.adaptive_avg_pool2d(m[b:b + 1], 3)  # (1, C, 3, 3)
                h = F.gelu(torch.einsum("oc,bcij->boij", sd[f"{p}.dwc.wfm.0.weight"][:, :, 0, 0], s)
                           + sd[f"{p}.dwc.wfm.0.bias"][None, :, None, None])
                k = torch.einsum("oc,bcij->boij", sd[f"{p}.dwc.wfm.2.weight"][:, :, 0, 0], h)[0]  # (C, 3, 3)
                k = k / (k.flatten(1).norm(dim=1)[:, None, None] + 1)
                kernel = sd[f"{p}.dwc.w"] + k[:, None]
                bias = sd[f"{p}.dwc.b"]
            else:
                kernel, bias = sd[f"{p}.dwc.weight"], sd[f"{p}.dwc.bias"]
            outs.append(F.conv2d(m[b:b + 1], kernel, bias, padding=1, groups=C))
        t = t + torch.cat(outs).flatten(2).transpose(1, 2)
        h = _ln(t, sd, f"{p}.norm2")
        if dynamic:
            rows = []
            for b in range(B):
                grid = h[b].transpose(0, 1).reshape(1, C, H, W)
                pooled = F.avg_pool2d(grid, 2).flatten(2)[0].t()  # (M, C)
                u = pooled @ sd[f"{p}.linear1.wfm.weight"].t() + sd[f"{p}.linear1.wfm.bias"]
                ua, ub = u[:, : C // 4], u[:, C // 4:]
                pa = F.silu(ua) @ sd[f"{p}.linear1.w1"]
                pb = F.silu(ub) @ sd[f"{p}.linear1.w2"]
                d = pa.t() @ pb * C ** -0.5 / N  # (C_in, C_out)
                d = d / (d.norm(dim=0, keepdim=True) + 1)
                rows.append(h[b] @ (sd[f"{p}.linear1.w"] + d) + sd[f"{p}.linear1.b"])
            h = torch.stack(rows)
        else:
            h = h @ sd[f"{p}.linear1.weight"].t() + sd[f"{p}.linear1.bias"]
        h = F.gelu(h) @ sd[f"{p}.linear2.weight"].t() + sd[f"{p}.linear2.bias"]
        t = t + h
    t = _ln(t, sd, "norm").mean(dim=1)
    return t @ sd["head.weight"].t() + sd["head.bias"]
