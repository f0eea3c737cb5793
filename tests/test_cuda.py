"""On a CUDA device: fast paths against the reference, bf16 autocast training, CUDA-event timing and
the allocator's peak memory, the device lock's GPU identity, and a real out-of-memory as a status.

Skipped where no GPU is present (the CI machine); run on a GPU machine with ``pytest tests/test_cuda.py``.
"""
from __future__ import annotations

import math

import pytest
import torch

import wfsearch.models  # noqa: F401  (registers weightformer_*)
from wfsearch.models import ArchConfig, build, reference_mode
from wfsearch.proxy.cache import MeasureCache
from wfsearch.proxy.data import load_dataset
from wfsearch.proxy.devicelock import device_key, device_lock
from wfsearch.proxy.evaluate import evaluate_arch
from wfsearch.proxy.measure import measure_arch, resolve_device
from wfsearch.proxy.train import seed_everything, train_proxy
from wfsearch.space import DatasetSpec, ProxySpec, ThroughputSpec

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

ARCH = ArchConfig(img_size=32, patch_size=4, embed_dim=32, depth=3, num_classes=4, dynamic_blocks="all")


def test_auto_device_is_the_gpu():
    assert resolve_device("auto").type == "cuda"


@pytest.mark.parametrize("fc1,dw", [("bilateral", "adaptive"), ("linear", "ampdir"), ("deep", "conv"),
                                    ("nonlinear", "none"), ("none", "gap")])
@pytest.mark.parametrize("grid", [(32, 32), (28, 20)])
def test_fast_path_matches_reference_on_gpu(fc1, dw, grid):
    torch.manual_seed(0)
    cfg = ArchConfig(img_size=grid, patch_size=4, embed_dim=48, depth=3, num_classes=10, dynamic_blocks="all",
                     fc1_predictor=fc1, dwconv_predictor=dw)
    model = build(cfg).cuda().eval()
    x = torch.randn(3, 3, *grid, device="cuda")
    with torch.no_grad():
        fast = model(x)
        with reference_mode():
            ref = model(x)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-4)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):  # bf16: the same to bf16 precision
        fast16 = model(x).float()
        with reference_mode():
            ref16 = model(x).float()
    assert (fast16 - ref).abs().max() < 0.05 * ref.abs().max() + 0.05
    assert (ref16 - ref).abs().max() < 0.05 * ref.abs().max() + 0.05


def test_gradients_match_reference_on_gpu():
    torch.manual_seed(0)
    model = build(ARCH).cuda()
    x = torch.randn(4, 3, 32, 32, device="cuda")
    model(x).square().sum().backward()
    fast = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    with reference_mode():
        model(x).square().sum().backward()
    for n, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(fast[n], p.grad, rtol=1e-3, atol=1e-4, msg=lambda m: f"{n}: {m}")


def test_bf16_autocast_training_learns_and_reports():
    # the quick start's proxy (synthetic 4-class task, dim 64, depth 6), twice its epochs
    data = load_dataset(ProxySpec(img_size=32, dataset=DatasetSpec(train_size=3000, val_size=600)))
    arch = ArchConfig(img_size=32, patch_size=4, embed_dim=64, depth=6, num_classes=4)
    seed_everything(0)
    curve = []
    res = train_proxy(build(arch), data, ProxySpec(epochs=6, batch_size=64, warmup_epochs=1),
                      lambda epoch, m: curve.append((epoch, m)))
    assert res.status == "ok", res.reason
    assert [e for e, _ in curve] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(m["loss"]) for _, m in curve)
    print("bf16 curve:", [(e, round(m["accuracy"], 3), round(m["loss"], 3)) for e, m in curve])
    assert curve[-1][1]["loss"] < curve[0][1]["loss"] - 0.02  # it learns
    assert res.accuracy > 0.35  # chance is 0.25
    assert res.images_per_s > 0


def test_measurement_on_gpu_uses_cuda_events_and_the_allocator():
    s = ThroughputSpec(img_size=64, batch_size=8, reference="deit_tiny_patch16_224", warmup=1, repeats=3, iters=2)
    c = measure_arch(ArchConfig(img_size=64, patch_size=8, embed_dim=64, depth=4, num_classes=10), s,
                     cache=MeasureCache())
    assert c["device"].startswith("cuda:") and torch.cuda.get_device_name(0) in c["device"]
    assert c["clock"] == "wall"  # CUDA events
    assert c["throughput_img_s"] > 0 and c["reference_throughput"] > 0 and c["throughput_ratio"] > 0
    assert c["peak_memory_bytes"] > 4 * c["params"]


def test_device_lock_names_the_physical_gpu():
    key = device_key("cuda")
    assert key.startswith("cuda-") and key == device_key(torch.device("cuda", 0))
    assert device_lock("cuda").drain is not None  # queued kernels finish before a measurement starts
    with device_lock("cuda").exclusive():
        with torch.no_grad():
            torch.ones(4, device="cuda").sum().item()


def test_real_gpu_out_of_memory_is_a_status_and_the_process_survives():
    free, _ = torch.cuda.mem_get_info()
    torch.cuda.set_per_process_memory_fraction(0.002)  # ~280 MB of an H200: too little for this batch
    try:
        data = load_dataset(ProxySpec(img_size=64, dataset=DatasetSpec(train_size=256, val_size=64)))
        res = train_proxy(build(ArchConfig(img_size=64, patch_size=2, embed_dim=256, depth=6, num_classes=4)),
                          data, ProxySpec(epochs=1, batch_size=256, warmup_epochs=0))
        assert res.status == "oom" and res.reason.startswith("oom:"), res.reason
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    x = torch.ones(1024, device="cuda")  # the device is still usable
    assert x.sum().item() == 1024


def test_evaluate_arch_end_to_end_on_gpu():
    proxy = {"dataset": {"name": "synthetic", "train_size": 256, "val_size": 128}, "img_size": 32, "epochs": [1, 2],
             "batch_size": 64}
    throughput = {"img_size": 64, "batch_size": 8, "reference": "deit_tiny_patch16_224", "warmup": 1, "repeats": 2,
                  "iters": 1}
    res = evaluate_arch(ARCH, proxy, throughput)
    assert res.status == "ok", res.reason
    assert res.metrics["accuracy"] >= 0 and res.metrics["throughput_ratio"] > 0
    assert res.costs["device"].startswith("cuda:")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_predictor_pool_matches_torch_on_gpu(dtype):
    from wfsearch.models.predictors import adaptive_avg_pool

    x = torch.randn(4, 192, 56, 57, device="cuda", dtype=dtype).to(memory_format=torch.channels_last)
    got, ref = adaptive_avg_pool(x, 3), torch.nn.functional.adaptive_avg_pool2d(x, 3)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(got.float(), ref.float(), rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", ["default", "max-autotune"])
def test_compiled_model_on_gpu_matches_eager_in_bf16(mode):
    """fullgraph compile on CUDA (inductor's Triton kernels; CUDA graphs under max-autotune) of every
    predictor pair, bf16 autocast inference and a training step, against eager."""
    import sys
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from test_compile import _zoo

    torch._dynamo.reset()
    model = _zoo().cuda()
    x = torch.randn(4, 3, 20, 28, device="cuda")
    compiled = torch.compile(model, mode=None if mode == "default" else mode, fullgraph=True, dynamic=False)
    model.eval()
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        ref = model(x).float()
        for _ in range(3):  # CUDA graphs record on a later call
            torch.compiler.cudagraph_mark_step_begin()
            out = compiled(x).float().clone()
    assert (out - ref).abs().max() < 0.05 * ref.abs().max() + 0.05
    model.train()
    torch.compiler.cudagraph_mark_step_begin()
    compiled(x).float().square().sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    model(x).float().square().sum().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, rtol=1e-3, atol=1e-4, msg=lambda m: f"{n}: {m}")


def test_measure_arch_compiled_on_gpu(tmp_path):
    s = ThroughputSpec(img_size=64, batch_size=8, reference="deit_tiny_patch16_224", device="cuda",
                       dtype="bfloat16", warmup=1, repeats=3, iters=2, compile="max-autotune")
    c = measure_arch(ARCH, s, cache=MeasureCache(tmp_path), memory=False)
    assert c["compile_seconds"]["model"] > 0 and c["compile_seconds"]["reference"] > 0
    assert c["throughput_img_s"] > 0 and c["throughput_ratio"] > 0
