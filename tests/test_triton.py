"""The Triton kernels of the dynamic layers (`wfsearch/models/triton_kernels.py`) against the PyTorch
formulation: each kernel on odd shapes, and a model whose every dynamic layer takes the kernel path.

With a GPU the kernels run compiled, on CUDA tensors. Without one they run on CPU tensors in Triton's
interpreter: ``TRITON_INTERPRET=1`` set while the kernel module is imported makes its kernels
interpreted ones (the kernels use Triton builtins only, so a triton imported earlier, by timm, is fine),
and the variable is restored right after, so no other test sees it.
"""
from __future__ import annotations

import importlib
import os
import sys

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton", reason="triton is not installed (the kernels are optional)")

import wfsearch.models  # noqa: E402,F401  (registers weightformer_*)
from wfsearch.models import ArchConfig, build, fast_path, reference_mode  # noqa: E402
from wfsearch.models.weightformer import WeightFormerBlock  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
MODULE = "wfsearch.models.triton_kernels"


@pytest.fixture(scope="module")
def tk():
    """The kernel module: compiled on a GPU; without one, imported in Triton's interpreter."""
    if CUDA:
        return importlib.import_module(MODULE)
    if MODULE not in sys.modules:
        before = os.environ.get("TRITON_INTERPRET")
        os.environ["TRITON_INTERPRET"] = "1"
        try:
            importlib.import_module(MODULE)
        finally:
            if before is None:
                del os.environ["TRITON_INTERPRET"]
            else:
                os.environ["TRITON_INTERPRET"] = before
    mod = sys.modules[MODULE]
    from triton.runtime.interpreter import InterpretedFunction
    if not isinstance(mod._dwconv_kernel, InterpretedFunction):
        pytest.skip(f"{MODULE} was imported without TRITON_INTERPRET=1 and there is no GPU to run it")
    return mod


def _dwconv_ref(x_BHWC, d_BCkk, k0, bias, squash, residual):
    B, H, W, C = x_BHWC.shape
    k = k0.shape[-1]
    kern = k0.view(1, C, k, k).expand(B, C, k, k)
    if d_BCkk is not None:
        kern = kern + (d_BCkk / (d_BCkk.norm(dim=(-2, -1), keepdim=True) + 1.0) if squash else d_BCkk)
    x = x_BHWC.permute(0, 3, 1, 2).reshape(1, B * C, H, W)
    y = F.conv2d(x, kern.reshape(B * C, 1, k, k), bias.repeat(B), padding=k // 2, groups=B * C)
    y = y.reshape(B, C, H, W).permute(0, 2, 3, 1)
    return y + x_BHWC if residual else y


# (B, H, W, C, k), squash, residual, with ΔK: non-square grids, odd channel counts, more than one channel
# block (C > 64) and pixel block (H*W > 128), a 5x5 kernel, a 1x1 grid, the static kernel alone
DW_CASES = [((2, 5, 7, 19, 3), True, True, True), ((1, 13, 11, 70, 3), False, False, True),
            ((3, 4, 6, 5, 5), True, True, True), ((2, 1, 1, 8, 3), True, False, True),
            ((1, 3, 5, 7, 3), True, True, False)]


@pytest.mark.parametrize("shape,squash,residual,delta", DW_CASES,
                         ids=["x".join(map(str, c[0])) + "-squash" * c[1] + "-residual" * c[2] + "-static" * (not c[3])
                              for c in DW_CASES])
def test_dwconv_matches_grouped_conv(tk, shape, squash, residual, delta):
    B, H, W, C, k = shape
    g = torch.Generator().manual_seed(sum(shape))
    # the tokens as a block sees them: a channels-last view, here of a (B, C, H, W)-contiguous tensor
    x = torch.randn(B, C, H, W, generator=g).permute(0, 2, 3, 1).to(DEVICE)
    d = torch.randn(B, C, k, k, generator=g).to(DEVICE) if delta else None
    k0, bias = torch.randn(C, 1, k, k, generator=g).to(DEVICE), torch.randn(C, generator=g).to(DEVICE)
    y = tk.dwconv(x, d, k0, bias, squash=squash, residual=residual)
    assert y.shape == (B, H, W, C) and y.is_contiguous() and y.dtype == x.dtype
    torch.testing.assert_close(y, _dwconv_ref(x, d, k0, bias, squash, residual), rtol=1e-5, atol=1e-5)


# (B, H, W, C_in, C_out, k), shared P, squash, GELU: more than one token tile (N > 32), C_in block (> 64)
# and output tile (> 128); odd sizes; the rank order (P and G shared) and the token order (per sample)
LIN_CASES = [((2, 5, 7, 19, 37, 5), True, True, True), ((2, 3, 5, 70, 150, 20), False, True, False),
             ((1, 3, 3, 16, 16, 1), False, False, True), ((2, 2, 9, 24, 96, 6), True, False, False)]


@pytest.mark.parametrize("shape,shared,squash,gelu", LIN_CASES,
                         ids=["x".join(map(str, c[0])) + "-shared" * c[1] + "-squash" * c[2] + "-gelu" * c[3]
                              for c in LIN_CASES])
def test_dynamic_linear_matches_materialized_weight(tk, shape, shared, squash, gelu):
    B, H, W, C, O, K = shape
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(B, H, W, C, generator=g).to(DEVICE)
    w = torch.randn(O, C, generator=g).to(DEVICE) / C ** 0.5
    p = (torch.randn(C, K, generator=g) if shared else torch.randn(B, K, C, generator=g).transpose(1, 2)).to(DEVICE)
    q = torch.randn(B, K, O, generator=g).to(DEVICE)
    b = torch.randn(O, generator=g).to(DEVICE)
    scale = 0.37
    gram = p.transpose(-2, -1) @ p if squash else None
    with torch.backends.cuda.matmul.flags(allow_tf32=False) if CUDA else torch.no_grad():
        y = tk.dynamic_linear(x, w, p, q, b, gelu=gelu, gram=gram, scale=scale)
    d = scale * p @ q  # ΔW per sample, as written
    if squash:
        d = d / (d.norm(dim=-2, keepdim=True) + 1.0)
    ref = x.reshape(B, H * W, C) @ (w.t() + d) + b
    ref = (F.gelu(ref) if gelu else ref).view(B, H, W, O)
    assert y.shape == (B, H, W, O) and y.dtype == x.dtype
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4)


def test_kernels_reject_shapes_that_do_not_chain(tk):
    x = torch.randn(1, 2, 2, 8)
    with pytest.raises(ValueError, match="do not chain"):
        tk.dynamic_linear(x, torch.randn(4, 8), torch.randn(9, 3), torch.randn(1, 3, 4), torch.randn(4))
    with pytest.raises(ValueError, match="do not chain"):
        tk.dynamic_linear(x, torch.randn(4, 8), torch.randn(8, 3), torch.randn(1, 3, 4), torch.randn(4),
                          gram=torch.randn(2, 2))
    with pytest.raises(ValueError, match="expected"):
        tk.dwconv(x, None, torch.randn(8, 1, 2, 2), torch.randn(8))


# --------------------------------------------------------------------------- the layers' kernel path
# (fc1, dwconv, fc1 pool): squashed and raw deltas (alternating), a shared P (the rank order at this size)
# and a per-sample one (gap's M = 1 token order), a static block between them. (Every predictor takes the
# same two entry points; the interpreter runs about 10 programs a second, so the model stays small.)
BLOCKS = [("bilateral", "adaptive", 2), ("gap", "gap", 2), ("none", "none", 2)]


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build(ArchConfig(img_size=(12, 20), patch_size=4, num_classes=5, embed_dim=20, depth=len(BLOCKS),
                             dynamic_blocks="all"))
    model.blocks = torch.nn.Sequential(*[
        WeightFormerBlock(20, dynamic=(fc1, dw) != ("none", "none"), fc1_predictor=fc1, dwconv_predictor=dw,
                          fc1_pool=pool, dwconv_pool=1 if dw == "gap" else 3, delta_norm="squash" if i % 2 else "none")
        for i, (fc1, dw, pool) in enumerate(BLOCKS)])
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # predictor weights far from zero, so ΔW and ΔK matter
        for name, p in model.named_parameters():
            if "predictor" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model.to(DEVICE).eval()


@pytest.fixture
def kernel_calls(tk, monkeypatch):
    """Counts the kernels' calls; on CPU, lets CPU tensors take the kernel path (interpreted)."""
    calls = {"dwconv": 0, "dynamic_linear": 0}
    for name in calls:
        real = getattr(tk, name)

        def counted(*a, _real=real, _name=name, **kw):
            calls[_name] += 1
            return _real(*a, **kw)
        monkeypatch.setattr(tk, name, counted)
    monkeypatch.setattr(fast_path, "TRITON_DEVICES", ("cuda", "cpu"))
    return calls


def test_model_on_the_kernel_path_equals_pytorch(kernel_calls):
    model = _model()
    x = torch.randn(2, 3, 12, 20, device=DEVICE)
    with torch.no_grad():
        with fast_path.triton(False):
            plain = model(x)
        with reference_mode():
            ref = model(x)
        assert kernel_calls == {"dwconv": 0, "dynamic_linear": 0}
        fused = model(x)
    # 2 dynamic blocks: each dwconv and each dynamic fc1 (with its GELU) once
    assert kernel_calls == {"dwconv": 2, "dynamic_linear": 2}
    torch.testing.assert_close(fused, plain, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fused, ref, rtol=1e-4, atol=1e-4)
    # a hook on a block's MLP calls fc1 as a module: the kernel without its GELU, same numbers
    handle = model.blocks[0].mlp.register_forward_hook(lambda m, i, o: None)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain, rtol=1e-4, atol=1e-4)
    handle.remove()
    assert kernel_calls == {"dwconv": 4, "dynamic_linear": 4}


def test_fullgraph_compile_traces_through_the_kernels(kernel_calls):
    """Dynamo captures the kernel path as one graph with the two custom ops in it (inductor's lowering of
    them needs a GPU: tests/test_cuda.py)."""
    model = _model()
    x = torch.randn(1, 3, 12, 20, device=DEVICE)
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward
    compiled = torch.compile(model, fullgraph=True, dynamic=False, backend=backend)
    with torch.no_grad():
        with fast_path.triton(False):
            plain = model(x)
        torch.testing.assert_close(compiled(x), plain, rtol=1e-4, atol=1e-4)
    ops = [str(n.target) for n in graphs[0].graph.nodes if "wfsearch" in str(n.target)]
    assert len(graphs) == 1 and len(ops) == 4, ops


def test_kernels_only_in_inference_and_when_switched_on(kernel_calls, monkeypatch):
    model = _model()
    x = torch.randn(1, 3, 12, 20, device=DEVICE)
    assert model(x).requires_grad  # a gradient is needed: the PyTorch path (the kernels have no backward)
    with torch.no_grad(), fast_path.triton("off"):
        model(x)
    monkeypatch.setattr(fast_path, "_TRITON_INSTALLED", False)  # as where triton is missing
    with torch.no_grad():
        model(x)
    assert kernel_calls == {"dwconv": 0, "dynamic_linear": 0}


def test_cpu_tensors_never_take_the_kernels():
    assert fast_path.TRITON_DEVICES == ("cuda",)
    x = torch.randn(1, 4, 4, 8)
    assert not fast_path.use_triton(x)
    if CUDA:
        assert fast_path.use_triton(x.cuda()) and not fast_path.use_triton(x.cuda().requires_grad_())


def test_the_kernel_plan_stays_linear_in_the_tokens():
    from wfsearch.models.layers import plan_dynamic_linear
    lowrank = ("lowrank",)
    # Tiny's released fc1 (192 -> 768, rank 48): the rank order at every grid, never the M x M token Gram
    for n in (196, 3136, 6084):
        assert plan_dynamic_linear(n, n // 4, 192, 768, 48, 192, True, lowrank) == ("rank", "lowrank")
    assert plan_dynamic_linear(3136, 1, 192, 768, 48, 192, True, lowrank) == ("tokens", "lowrank")  # gap: M = 1


def test_the_switch_reads_its_environment_values():
    assert [fast_path._triton_setting(v) for v in ("1", "ON", "0", "false", "eager")] == ["on", "on", "off", "off",
                                                                                          "eager"]
    with pytest.raises(ValueError, match="WFSEARCH_TRITON='fast'"):
        fast_path._triton_setting("fast")
