"""The fast paths compute what the reference formulation computes: layers, blocks and whole models,
every predictor combination, both ΔW normalizations, forward and gradients, odd and non-square grids."""
from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import wfsearch.models  # noqa: F401  (registers weightformer_*)
from wfsearch.models import PREDICTORS, ArchConfig, DynamicDWConv, DynamicLinear, build, cost, reference_mode
from wfsearch.models.layers import fast_path_enabled, plan_dynamic_linear
from wfsearch.models.predictors import DWCONV_PREDICTORS, FC1_PREDICTORS

FC1 = [p for p in PREDICTORS["fc1"] if p != "none"]
DW = [p for p in PREDICTORS["dwconv"] if p != "none"]
PLANS = list(itertools.product(["tokens", "rank"], ["materialize", "lowrank"]))
GRIDS = [(7, 5), (4, 6), (9, 9), (3, 3)]  # odd, non-square, square, smallest the 3x3 dwconv pool allows


pytestmark = pytest.mark.usefixtures("one_thread")


def _grads(module: torch.nn.Module, x: torch.Tensor, out: torch.Tensor) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)  # the same random cotangent for both paths
    g = torch.randn(out.shape, generator=gen, dtype=out.dtype)
    names, tensors = zip(*[(n, p) for n, p in module.named_parameters()], ("x", x))
    return dict(zip(names, torch.autograd.grad(out, tensors, g, allow_unused=True)))


def _assert_grads_close(fast: dict, ref: dict, **tol) -> None:
    assert fast.keys() == ref.keys()
    for name in ref:
        if ref[name] is None:
            assert fast[name] is None, name
        else:
            torch.testing.assert_close(fast[name], ref[name], msg=lambda m: f"{name}: {m}", **tol)


def _loud(module: torch.nn.Module, std: float = 0.5) -> torch.nn.Module:
    """Large predictor weights (as in the released-checkpoint parity test) so ΔW is far from zero."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "predictor" in name:
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return module


# ---------------------------------------------------------------------------------- DynamicLinear
@pytest.mark.parametrize("fc1", FC1)
@pytest.mark.parametrize("delta_norm", ["squash", "none"])
def test_dynamic_linear_every_plan_matches_reference(fc1, delta_norm):
    torch.manual_seed(0)
    c_in, c_out, pool = 16, 64, 2
    layer = _loud(DynamicLinear(c_in, c_out, FC1_PREDICTORS[fc1](c_in, c_out, 4, pool, "silu"), delta_norm))
    for (h, w), plan in itertools.product(GRIDS, PLANS):
        # float64: the same function to rounding; float32: within fp32 tolerance
        layer64, x64 = layer.double(), torch.randn(2, h, w, c_in, dtype=torch.float64, requires_grad=True)
        ref, fast = layer64.forward_reference(x64), layer64.forward_fast(x64, plan=plan)
        torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
        _assert_grads_close(_grads(layer64, x64, fast), _grads(layer64, x64, ref), rtol=1e-9, atol=1e-9)
        layer32, x32 = layer.float(), x64.detach().float().requires_grad_()
        ref, fast = layer32.forward_reference(x32), layer32.forward_fast(x32, plan=plan)
        torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
        _assert_grads_close(_grads(layer32, x32, fast), _grads(layer32, x32, ref), rtol=1e-4, atol=1e-4)


def test_dynamic_linear_default_init_and_static():
    torch.manual_seed(0)
    layer = DynamicLinear(32, 128, FC1_PREDICTORS["bilateral"](32, 128))
    x = torch.randn(3, 5, 7, 32)
    torch.testing.assert_close(layer(x), layer.forward_reference(x), rtol=1e-5, atol=1e-6)
    static = DynamicLinear(32, 128)
    torch.testing.assert_close(static(x), static.forward_reference(x))


def test_plan_is_linear_in_tokens_and_picks_the_cheap_order():
    tiny = dict(c_in=192, c_out=768, rank_a=48, rank_b=192, squash_norm=True)
    assert plan_dynamic_linear(196, 49, **tiny) == ("rank", "lowrank")  # 224: N ~ C_in·C_out/(C_in+C_out)
    assert plan_dynamic_linear(3136, 784, **tiny) == ("rank", "materialize")  # 896: M ∝ N, materialize
    assert plan_dynamic_linear(196, 1, **tiny)[0] == "tokens"  # gap: a rank-1 ΔW
    small = dict(c_in=384, c_out=1536, rank_a=96, rank_b=384, squash_norm=True)
    assert plan_dynamic_linear(196, 49, **small) == ("tokens", "lowrank")
    # whatever the plan, the work grows linearly with the tokens (M = N/4) at high resolution
    for n in (4096, 16384, 65536):
        assert plan_dynamic_linear(n, n // 4, **tiny)[0] == "rank"
    # a hooked predictor offers only the tokens' factors: materialized ΔW at high resolution
    no_rank = {**tiny, "rank_a": None, "rank_b": None}
    assert plan_dynamic_linear(3136, 784, **no_rank) == ("tokens", "materialize")
    assert plan_dynamic_linear(196, 1, **no_rank) == ("tokens", "lowrank")  # gap: rank 1


def _fast_order_macs(module, x, monkeypatch) -> int:
    """MACs of the path ``module`` takes (the flop counter would otherwise switch it to the reference)."""
    from wfsearch.models import fast_path
    with monkeypatch.context() as m:
        m.setattr(fast_path, "_flop_counting", lambda: False)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(x)
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("delta_norm", ["squash", "none"])
def test_a_forward_hook_keeps_the_cost_linear(monkeypatch, delta_norm):
    """A no-op hook on the fc1 predictor (a profiler, a feature extractor) must not switch the layer
    to an order whose cost grows with N²: the hooked layer's MACs grow like the tokens, stay within a
    small factor of the unhooked layer's, and the output is the same."""
    torch.manual_seed(0)
    c_in, c_out = 16, 64
    layer = _loud(DynamicLinear(c_in, c_out, FC1_PREDICTORS["bilateral"](c_in, c_out, 4, 2, "silu"), delta_norm))
    seen = []
    macs = {}
    for side in (8, 64):  # 64 -> 4096 tokens (M = 1024 pooled)
        x = torch.randn(1, side, side, c_in)
        macs["free", side] = _fast_order_macs(layer, x, monkeypatch)
        free = layer(x)
        handle = layer.predictor.register_forward_hook(lambda m, i, o: seen.append(o[0].shape))
        try:
            macs["hooked", side] = _fast_order_macs(layer, x, monkeypatch)
            hooked = layer(x)
        finally:
            handle.remove()
        torch.testing.assert_close(hooked, free, rtol=1e-5, atol=1e-5)
        with reference_mode():
            torch.testing.assert_close(hooked, layer(x), rtol=1e-5, atol=1e-5)
    assert len(seen) == 4  # the hook saw Φa every time
    growth = (64 / 8) ** 2
    for kind in ("free", "hooked"):
        assert macs[kind, 64] <= 1.2 * growth * macs[kind, 8], (kind, macs)
    assert macs["hooked", 64] <= 2 * macs["free", 64], macs


# ---------------------------------------------------------------------------------- DynamicDWConv
@pytest.mark.parametrize("dw", DW)
@pytest.mark.parametrize("delta_norm", ["squash", "none"])
def test_dynamic_dwconv_matches_reference(dw, delta_norm):
    torch.manual_seed(0)
    dim = 12
    conv = _loud(DynamicDWConv(dim, 3, DWCONV_PREDICTORS[dw](dim, 3, 1 if dw == "gap" else 3, "gelu"), delta_norm))
    for h, w in GRIDS:
        x_BHWC = torch.randn(3, h, w, dim, requires_grad=True)
        x = x_BHWC.permute(0, 3, 1, 2)  # the channels-last view the block feeds it
        ref, fast = conv.forward_reference(x), conv(x)
        torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
        _assert_grads_close(_grads(conv, x_BHWC, fast), _grads(conv, x_BHWC, ref), rtol=1e-4, atol=1e-4)
        x_nchw = torch.randn(2, dim, h, w)  # a plain NCHW input works as well
        torch.testing.assert_close(conv(x_nchw), conv.forward_reference(x_nchw), rtol=1e-5, atol=1e-5)
        res = conv.forward_residual(x_BHWC)  # what the block calls: x + conv(x) on (B, H, W, C) tokens
        torch.testing.assert_close(res, x_BHWC + ref.permute(0, 2, 3, 1), rtol=1e-5, atol=1e-5)


def test_static_dwconv_residual_fold():
    torch.manual_seed(0)
    conv = DynamicDWConv(12, 3)
    for h, w in GRIDS:
        x = torch.randn(2, h, w, 12, requires_grad=True)
        ref = x + conv.forward_reference(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        fast = conv.forward_residual(x)
        assert fast.is_contiguous()  # the conv kept the tokens' layout
        torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-6)
        _assert_grads_close(_grads(conv, x, fast), _grads(conv, x, ref), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------- whole models
COMBOS = list(itertools.product(PREDICTORS["fc1"], PREDICTORS["dwconv"]))
SMALL = dict(img_size=(24, 40), patch_size=4, num_classes=10, embed_dim=16, depth=2, dynamic_blocks="all")


@pytest.mark.parametrize("fc1,dw", COMBOS)
def test_model_fast_equals_reference(fc1, dw):
    """Eval (the fused inference ops) and train mode (drop path on), outputs and every gradient."""
    torch.manual_seed(0)
    model = _loud(build(ArchConfig(**SMALL, fc1_predictor=fc1, dwconv_predictor=dw, drop_path_rate=0.5,
                                   delta_norm=["squash", "none"][COMBOS.index((fc1, dw)) % 2])), std=0.3)
    x = torch.randn(2, 3, 28, 44)  # grid 7 x 11: odd, non-square, not the configured size
    model.eval()
    with torch.inference_mode():
        fast = model(x)
        with reference_mode():
            ref = model(x)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    model.train()
    grads = {}
    for mode in ("fast", "reference"):
        torch.manual_seed(1)  # the same drop-path masks
        with reference_mode(mode == "reference"):
            out = model(x)
        out.square().sum().backward()
        grads[mode] = {n: p.grad.clone() for n, p in model.named_parameters()}
        grads[mode]["out"] = out.detach()
        model.zero_grad(set_to_none=True)
    _assert_grads_close(grads["fast"], grads["reference"], rtol=1e-4, atol=1e-5)


def test_fused_inference_matches_at_tiny_width():
    """The released Tiny widths, a non-square input: the oneDNN-fused MLP and the fast dynamic layers."""
    torch.manual_seed(0)
    model = build(ArchConfig(embed_dim=192, depth=3, img_size=(64, 96), num_classes=10)).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.inference_mode():
        fast = model(x)
        with reference_mode():
            ref = model(x)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------- switches
def test_reference_mode_nests_and_flop_counter_sees_the_reference():
    assert fast_path_enabled()
    with reference_mode():
        assert not fast_path_enabled()
        with reference_mode(False):
            assert not fast_path_enabled()
        assert not fast_path_enabled()
    assert fast_path_enabled()
    cfg = ArchConfig(**{**SMALL, "img_size": 32})
    model = build(cfg)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        assert not fast_path_enabled()
        model(torch.randn(1, 3, 32, 32))
    assert counter.get_total_flops() // 2 == cost(cfg)["macs"]


def test_forward_hooks_still_fire():
    torch.manual_seed(0)
    model = build(ArchConfig(**{**SMALL, "dynamic_blocks": [1]})).eval()
    seen = []
    for name, m in model.named_modules():
        if name.endswith(("mlp.fc1", "mlp.fc2", "token_mixer", "mlp")):
            m.register_forward_hook(lambda mod, inp, out, name=name: seen.append(name))
    x = torch.randn(1, 3, 24, 40)
    with torch.inference_mode():
        fast = model(x)
        n = len(seen)
        with reference_mode():
            ref = model(x)
    assert n == len(seen) - n == 2 * 4
    torch.testing.assert_close(fast, ref)


def test_single_threaded_restores_the_thread_count():
    from wfsearch.models.layers import single_threaded
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError), torch.no_grad():
            with single_threaded():
                assert torch.get_num_threads() == 1
                raise RuntimeError("inside")
        assert torch.get_num_threads() == 2
        with single_threaded():  # under autograd (training) the thread count is left alone
            assert torch.get_num_threads() == 2
        with single_threaded(enabled=False):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("shape,g", [((2, 8, 56, 56), 3), ((1, 4, 20, 28), 3), ((2, 3, 7, 5), 3), ((1, 2, 9, 9), 2),
                                     ((1, 5, 4, 4), 4)])
def test_adaptive_pool_by_bin_matrices_equals_torch(shape, g):
    from wfsearch.models.predictors import adaptive_avg_pool

    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    xl = x.detach().to(memory_format=torch.channels_last).requires_grad_()
    with torch.inference_mode():  # the averaging matrices are cached: first built here, reused under autograd
        adaptive_avg_pool(x.detach(), g, matmul=True)
    ref = torch.nn.functional.adaptive_avg_pool2d(x, g)
    got = adaptive_avg_pool(xl, g, matmul=True)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    gy = torch.randn(ref.shape, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(got, xl, gy)[0], torch.autograd.grad(ref, x, gy)[0])
    assert adaptive_avg_pool(x, g) is not None and torch.equal(adaptive_avg_pool(x, g), ref)  # CPU: torch's own


# ---------------------------------------------------------------------------------- packed weights
@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="oneDNN is not in this torch build")
def test_packed_weights_follow_every_weight_change():
    """The fused MLP's cached oneDNN weights: reused while unchanged, rebuilt after an optimizer step,
    ``load_state_dict`` or a plain in-place edit; never in a state dict; the model still pickles."""
    import copy
    import io
    import pickle

    from wfsearch.models import fast_path as layers

    torch.manual_seed(0)
    model = build(ArchConfig(embed_dim=32, depth=2, img_size=32, patch_size=8, num_classes=5,
                             dynamic_blocks=[1])).eval()
    x = torch.randn(2, 3, 32, 32)

    def fast_and_ref():
        with torch.inference_mode():
            fast = model(x)
            with reference_mode():
                return fast, model(x)

    fast, ref = fast_and_ref()
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    fc1 = model.blocks[0].mlp.fc1.weight
    packed = layers._packed.get(fc1)
    assert packed is not None and packed[1].is_mkldnn  # the static block's fc1 took the fused path
    fast_and_ref()
    assert layers._packed.get(fc1)[1] is packed[1]  # reused, not re-blocked

    # an optimizer step (in place, under no_grad)
    model.train()
    model(x).square().sum().backward()
    torch.optim.SGD(model.parameters(), lr=1.0).step()
    model.eval()
    fast, ref = fast_and_ref()
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    assert layers._packed.get(fc1)[1] is not packed[1]

    # load_state_dict and a direct in-place edit of one weight
    other = build(ArchConfig(embed_dim=32, depth=2, img_size=32, patch_size=8, num_classes=5, dynamic_blocks=[1]))
    model.load_state_dict(other.state_dict())
    fast, ref = fast_and_ref()
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        model.blocks[1].mlp.fc2.weight.mul_(3.0)
    fast, ref = fast_and_ref()
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)

    assert set(model.state_dict()) == set(other.state_dict())
    clone = pickle.loads(pickle.dumps(model))
    torch.save(model, io.BytesIO())
    with torch.inference_mode():
        torch.testing.assert_close(clone(x), model(x))
        torch.testing.assert_close(copy.deepcopy(model)(x), model(x))

    # a model built under inference mode has inference-tensor weights: not cached, still exact
    with torch.inference_mode():
        frozen = build(ArchConfig(embed_dim=32, depth=1, img_size=32, patch_size=8, num_classes=5,
                                  dynamic_blocks=[])).eval()
        out = frozen(x)
        assert layers._packed.get(frozen.blocks[0].mlp.fc1.weight) is None
        with reference_mode():
            torch.testing.assert_close(out, frozen(x), rtol=1e-5, atol=1e-5)


def test_predictor_threads_by_work(monkeypatch):
    """CPU inference: the predictor's small math runs on one thread, its down-projection on every
    thread once it reaches `PARALLEL_MIN_MACS`; under autograd the thread count is never touched."""
    from wfsearch.models import layers
    torch.manual_seed(0)
    c_in, c_out = 16, 64
    layer = DynamicLinear(c_in, c_out, FC1_PREDICTORS["bilateral"](c_in, c_out, 4, 2, "silu"))
    seen = {}
    layer.predictor.down.register_forward_pre_hook(lambda m, a: seen.__setitem__("down", torch.get_num_threads()))
    layer.predictor.act_fn.register_forward_pre_hook(lambda m, a: seen.__setitem__("act", torch.get_num_threads()))
    x = torch.randn(2, 8, 8, c_in)
    down_macs = 2 * 16 * c_in * (4 + 16)  # B * M * C_in * (C_in/r + C_out/r)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for threshold, expect in ((down_macs, 2), (down_macs + 1, 1)):
            monkeypatch.setattr(layers, "PARALLEL_MIN_MACS", threshold)
            with torch.inference_mode():
                out = layer(x)
            assert seen == {"down": expect, "act": 1}, threshold
            assert torch.get_num_threads() == 2
            with torch.inference_mode(), reference_mode():
                torch.testing.assert_close(out, layer(x), rtol=1e-5, atol=1e-6)
        layer(x)
        assert seen == {"down": 2, "act": 2}
    finally:
        torch.set_num_threads(before)


def test_module_trackers_do_not_switch_off_the_fast_path(monkeypatch):
    """MemTracker hooks every module to attribute memory; that must not send the model down the
    unfused paths kept for observing hooks, or the peak it reports is that of a path training never
    takes (the dynamic fc1 through Φa, Φb instead of the rank order: +7% at 896). A user's global
    hook still counts."""
    from torch.distributed._tools.mem_tracker import MemTracker

    from wfsearch.models.layers import hooked
    torch.manual_seed(0)
    model = build(ArchConfig(**{**SMALL, "dynamic_blocks": [1]})).train()
    pred = model.blocks[1].mlp.fc1.predictor
    calls = []
    original = type(pred).forward
    monkeypatch.setattr(type(pred), "forward", lambda self, x: (calls.append(1), original(self, x))[1])
    x = torch.randn(2, 3, 24, 40)
    with MemTracker() as tracker:
        assert not hooked(pred)
        model(x).sum().backward()
    assert calls == []  # the codes/rank path, as without the tracker
    assert tracker.get_tracker_snapshot("peak")
    handle = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
    try:
        assert hooked(pred)
        model(x)
        assert calls  # an observing hook: pred(x) runs so the hook sees its output
    finally:
        handle.remove()
