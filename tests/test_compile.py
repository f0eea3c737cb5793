"""``torch.compile(model, fullgraph=True)`` on CPU (inductor's C++ backend): every fc1 and dwconv
predictor, static and dynamic blocks, every fc1 pooling, non-square grids, in inference and in a
training step, equal to eager.

Compiling is the expensive part (inductor builds every kernel with the C++ compiler), so the
predictors share models: one model whose blocks between them hold every predictor of both families,
every fc1 pooling and a static block, on a non-square grid, captured as one graph forward and
backward (dynamo + AOT autograd: the graph inductor receives); with WFSEARCH_TEST_INDUCTOR=1 it also
runs through inductor, and a small model built from an `ArchConfig` (a placement, global pooling)
trains through inductor. The measurement test compiles a one-block model with inductor every time.
"""
from __future__ import annotations

import os

import pytest
import torch

import wfsearch.models  # noqa: F401  (registers weightformer_*)
from wfsearch.models import PREDICTORS, ArchConfig, build
from wfsearch.models.weightformer import WeightFormerBlock
from wfsearch.space import ThroughputSpec

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

# Inductor builds every kernel with the C++ compiler: the whole zoo through inductor costs about a CPU
# minute, its training step several, more than the suite's budget on the CI machine. They run with
# WFSEARCH_TEST_INDUCTOR=1 (and on a GPU in tests/test_cuda.py); by default inductor compiles the
# measurement test's one-block model, and the zoo's single graph is checked through AOT autograd.
inductor = pytest.mark.skipif(os.environ.get("WFSEARCH_TEST_INDUCTOR") != "1",
                              reason="set WFSEARCH_TEST_INDUCTOR=1 to compile the zoo with inductor")

# (fc1 predictor, dwconv predictor, fc1 pool): every predictor of both families at least once
BLOCKS = [("none", "none", 2), ("bilateral", "adaptive", 2), ("linear", "gap", 1), ("nonlinear", "ampdir", 3),
          ("deep", "conv", "global"), ("gap", "none", 2), ("none", "adaptive", 2)]


def _zoo() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build(ArchConfig(img_size=(20, 28), patch_size=4, num_classes=10, embed_dim=16,
                             depth=len(BLOCKS), dynamic_blocks="all", drop_path_rate=0.0))
    model.blocks = torch.nn.Sequential(*[
        WeightFormerBlock(16, dynamic=(fc1, dw) != ("none", "none"), fc1_predictor=fc1, dwconv_predictor=dw,
                          fc1_pool=pool, dwconv_pool=1 if dw == "gap" else 3, rank_ratio=4,
                          delta_norm="squash" if i % 2 else "none")
        for i, (fc1, dw, pool) in enumerate(BLOCKS)])
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # predictor weights far from zero, so ΔW matters
        for name, p in model.named_parameters():
            if "predictor" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def _check_compiled_equals_eager(model: torch.nn.Module, x: torch.Tensor, backend: str = "inductor",
                                 train: bool = True) -> None:
    compiled = torch.compile(model, fullgraph=True, dynamic=False, backend=backend)
    model.eval()
    with torch.inference_mode():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)
    if not train:
        return
    model.train()
    grads = {}
    for name, fn in (("compiled", compiled), ("eager", model)):
        out = fn(x)
        out.square().sum().backward()
        grads[name] = {n: p.grad.clone() for n, p in model.named_parameters()}
        grads[name]["out"] = out.detach()
        model.zero_grad(set_to_none=True)
    for n, g in grads["eager"].items():
        torch.testing.assert_close(grads["compiled"][n], g, rtol=1e-3, atol=1e-5, msg=lambda m: f"{n}: {m}")


def test_every_predictor_compiles_fullgraph():
    """One graph, no breaks, for every predictor (dynamo and AOT autograd: the capture inductor gets),
    inference and a training step equal to eager."""
    assert {b[0] for b in BLOCKS} == set(PREDICTORS["fc1"]) and {b[1] for b in BLOCKS} == set(PREDICTORS["dwconv"])
    torch._dynamo.reset()
    _check_compiled_equals_eager(_zoo(), torch.randn(2, 3, 20, 28), backend="aot_eager")  # grid 5 x 7


@inductor
def test_every_predictor_on_inductor():
    """The same model through inductor's C++ kernels (inference: the backward graphs of every predictor
    would cost minutes of compiling; the training step goes through inductor below)."""
    torch._dynamo.reset()
    _check_compiled_equals_eager(_zoo(), torch.randn(2, 3, 20, 28), train=False)


# a placement (block 1 of 2 dynamic), global fc1 pooling
CONFIGURED = ArchConfig(img_size=32, patch_size=8, embed_dim=16, depth=2, num_classes=4, dynamic_blocks=[1],
                        fc1_pool="global")


@inductor
def test_a_configured_model_trains_compiled_on_inductor():
    torch.manual_seed(0)
    torch._dynamo.reset()
    _check_compiled_equals_eager(build(CONFIGURED), torch.randn(2, 3, 32, 32))


def test_measure_arch_with_compile_default(tmp_path, monkeypatch):
    """``throughput.compile: default``: the model is timed compiled, the compile time is reported (not
    timed), a second measurement of the same architecture in the worker reuses the compiled model, and
    the cache keeps compiled and eager figures apart."""
    from wfsearch.proxy import measure as M
    from wfsearch.proxy.cache import MeasureCache

    calls = []
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kw: (calls.append(type(model).__name__), real_compile(model, **kw))[1])
    M.clear_compiled()
    arch = ArchConfig(img_size=32, patch_size=8, embed_dim=16, depth=1, num_classes=4, dynamic_blocks=[0])
    s = ThroughputSpec(img_size=32, batch_size=2, reference=None, device="cpu", warmup=1, repeats=2, iters=1,
                       exclusive=False, compile="default")
    c = M.measure_arch(arch, s, cache=MeasureCache(tmp_path), memory=False)
    assert calls == ["WeightFormer"]
    assert c["compile_seconds"]["model"] > 0 and c["throughput_img_s"] > 0
    again = M.measure_arch(arch, s, cache=MeasureCache(tmp_path), refresh=True, memory=False)
    assert calls == ["WeightFormer"] and again["compile_seconds"] == c["compile_seconds"]  # reused
    eager = M.measure_arch(arch, s.model_copy(update={"compile": "none"}), cache=MeasureCache(tmp_path), memory=False)
    assert "compile_seconds" not in eager and calls == ["WeightFormer"]
    M.clear_compiled()


def test_adaptive_pool_by_bin_matrices_compiles():
    """The GPU formulation of the dwconv predictors' pooling (two products with bin matrices, built from
    tensor ops inside a compiled graph) is captured as one graph and equals torch's adaptive pool."""
    from wfsearch.models.predictors import adaptive_avg_pool

    fn = torch.compile(lambda x: adaptive_avg_pool(x, 3, matmul=True), fullgraph=True, dynamic=False,
                       backend="aot_eager")
    x = torch.randn(2, 4, 11, 17).to(memory_format=torch.channels_last)
    torch.testing.assert_close(fn(x), torch.nn.functional.adaptive_avg_pool2d(x, 3), rtol=1e-5, atol=1e-6)
