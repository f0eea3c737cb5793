"""The model library: configs, every predictor combination, costs, registry, released parity."""
from __future__ import annotations

import itertools

import pytest
import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

import wfsearch.models  # noqa: F401  (registers weightformer_*)
from wfsearch.models import (PREDICTORS, ArchConfig, DynamicDWConv, DynamicLinear, build,
                             convert_official_state_dict, cost)

from reference_weightformer import random_reference_state_dict, reference_forward

COMBOS = list(itertools.product(PREDICTORS["fc1"], PREDICTORS["dwconv"]))
TEST = dict(img_size=32, patch_size=4, num_classes=10, embed_dim=32, depth=3, dynamic_blocks="all")


def flop_macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def test_predictor_names():
    assert PREDICTORS == {"fc1": ["none", "gap", "linear", "nonlinear", "deep", "bilateral"],
                          "dwconv": ["none", "gap", "adaptive", "ampdir", "conv"]}


@pytest.mark.parametrize("fc1,dw", COMBOS)
def test_every_combination_forward_backward(fc1, dw):
    torch.manual_seed(0)
    cfg = ArchConfig(**TEST, fc1_predictor=fc1, dwconv_predictor=dw)
    model = build(cfg)
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    out.square().sum().backward()
    predictor_params = {n: p for n, p in model.named_parameters() if ".predictor." in n}
    assert bool(predictor_params) == (fc1 != "none" or dw != "none")
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    for name, p in predictor_params.items():
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"
    # analytic cost == parameter count and == torch's flop counter (MACs), at two resolutions
    assert cost(cfg)["params"] == sum(p.numel() for p in model.parameters())
    assert cost(cfg)["macs"] == flop_macs(model, x[:1])
    assert cost(cfg, (48, 64))["macs"] == flop_macs(model, torch.randn(1, 3, 48, 64))


@pytest.mark.parametrize("fc1,dw", COMBOS)
def test_macs_linear_in_tokens(fc1, dw):
    cfg = ArchConfig(fc1_predictor=fc1, dwconv_predictor=dw)  # Tiny width and depth
    ratio = cost(cfg, 448)["macs"] / cost(cfg, 224)["macs"]
    assert 4 * 0.97 <= ratio <= 4 * 1.03, ratio
    ratio = cost(cfg, 896)["macs"] / cost(cfg, 448)["macs"]
    assert 4 * 0.97 <= ratio <= 4 * 1.03, ratio


def test_attention_grows_superlinearly_by_contrast():
    from wfsearch.proxy.measure import count_macs
    small = count_macs(timm.create_model("deit_tiny_patch16_224", img_size=224), 224)
    large = count_macs(timm.create_model("deit_tiny_patch16_224", img_size=448), 448)
    assert large / small > 4 * 1.03


def test_attention_macs_do_not_depend_on_the_kernel():
    """DeiT-Tiny is 1.25 GMACs at 224 (timm's table) whichever SDPA kernel the device would run:
    fused kernels without a flop formula must not drop the attention term. The report's scaling
    plot counts on the meta device through the same function."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from wfsearch.proxy.measure import count_macs
    from wfsearch.report.scaling import _counted_macs

    model = timm.create_model("deit_tiny_patch16_224")
    macs = count_macs(model, 224)
    assert abs(macs / 1.25e9 - 1) < 0.01, macs
    backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    with sdpa_kernel(backends):  # the caller's preference does not change the count
        assert count_macs(model, 224) == macs
    assert _counted_macs("deit_tiny_patch16_224", 224) == macs


def test_released_sizes():
    counts = {n: sum(p.numel() for p in timm.create_model(n).parameters())
              for n in ("weightformer_tiny", "weightformer_small", "weightformer_base")}
    assert counts["weightformer_tiny"] == 7_074_184
    assert abs(counts["weightformer_small"] - 27.49e6) < 0.01e6
    assert counts["weightformer_base"] == counts["weightformer_small"]
    assert round(cost(ArchConfig())["macs"] / 1e9, 2) == 1.12
    assert round(cost(ArchConfig(embed_dim=384))["macs"] / 1e9, 2) == 4.43
    assert round(cost(ArchConfig(embed_dim=384, img_size=448))["macs"] / 1e9, 2) == 17.66
    tiny = timm.create_model("weightformer_tiny")
    assert [i for i, b in enumerate(tiny.blocks) if b.dynamic] == [1, 4, 7, 10, 13, 16]
    assert timm.create_model("weightformer_base").arch.img_size == 448


def test_fresh_model_starts_as_static_counterpart():
    """fc1's ΔW starts ~1e-5 against ~0.3 for W0 (docs/MODEL.md). The dwconv predictor keeps the released
    init (PyTorch's default for its 1x1 convs), so its ΔK starts at a few tenths: that is measured too."""
    torch.manual_seed(0)
    model = timm.create_model("weightformer_tiny").eval()
    deltas = []

    def capture(module, inputs, output):
        x = inputs[0]
        if isinstance(module, DynamicLinear):
            deltas.append((module.delta(x).norm(dim=-2).max(), module.weight.norm(dim=1).min()))
        else:
            deltas.append((module.delta(x).flatten(2).norm(dim=-1).max(),
                           module.weight.flatten(1).norm(dim=1).min()))

    for m in model.modules():
        if isinstance(m, (DynamicLinear, DynamicDWConv)) and m.predictor is not None:
            m.register_forward_hook(capture)
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    assert len(deltas) == 12
    fc1 = deltas[1::2]  # hooks fire token_mixer then fc1 in each dynamic block
    for delta, base in fc1:
        assert delta < 1e-3 and base > 0.2, (delta, base)  # median ~1e-5
    for delta, _ in deltas[0::2]:
        assert 0 < delta < 1.0  # bounded below norm 1 by the squash


@pytest.mark.parametrize("img,grid_in", [((32, 48), (32, 48)), (32, (28, 36)), (32, (20, 44))])
def test_non_square_and_odd_grids(img, grid_in):
    torch.manual_seed(0)
    for fc1, dw in [("bilateral", "adaptive"), ("deep", "conv"), ("gap", "ampdir")]:
        model = build(ArchConfig(**{**TEST, "img_size": img}, fc1_predictor=fc1, dwconv_predictor=dw))
        out = model(torch.randn(2, 3, *grid_in))
        assert out.shape == (2, 10) and torch.isfinite(out).all()
        assert model.forward_features(torch.randn(1, 3, *grid_in)).shape == (1, grid_in[0] // 4, grid_in[1] // 4, 32)


def test_registry_round_trip():
    names = timm.list_models("weightformer*")
    assert set(names) == {"weightformer_tiny", "weightformer_small", "weightformer_base", "weightformer_test"}
    overrides = dict(embed_dim=64, depth=5, fc1_predictor="deep", dwconv_predictor="ampdir",
                     dynamic_blocks=[0, 3], fc1_pool="global", dwconv_pool=1, rank_ratio=8,
                     fc1_act="relu", dwconv_act="identity", delta_norm="none", renorm="all",
                     img_size=(64, 96), num_classes=7)
    model = timm.create_model("weightformer_tiny", **overrides)
    cfg = ArchConfig(**overrides, fc1_pool_mode="released")  # the registered sizes pool as released
    assert model.arch == cfg
    rebuilt = build(ArchConfig.from_dict(cfg.to_dict()))
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in rebuilt.state_dict().items()}
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(1, 3, 64, 96)
    torch.testing.assert_close(model.eval()(x), rebuilt.eval()(x))
    for name in names:
        m = timm.create_model(name, img_size=64, num_classes=3)
        assert m(torch.randn(1, 3, 64, 64)).shape == (1, 3)


def test_unknown_override_is_rejected():
    with pytest.raises(TypeError):
        timm.create_model("weightformer_test", no_such_knob=1)
    with pytest.raises(ValueError, match="fc1_predictor"):
        timm.create_model("weightformer_test", fc1_predictor="attention")


@pytest.mark.parametrize("kwargs,words", [
    (dict(fc1_predictor="mlp"), ["fc1_predictor", "'mlp'", "must be one of"]),
    (dict(dwconv_predictor="big"), ["dwconv_predictor", "'big'"]),
    (dict(embed_dim=190), ["rank_ratio", "embed_dim=190", "divisible"]),
    (dict(rank_ratio=0), ["rank_ratio", "in [1, 65536]"]),
    (dict(img_size=100), ["img_size", "patch_size=16"]),
    (dict(img_size=32, fc1_pool=4), ["fc1_pool", "larger than the token grid 2x2"]),
    (dict(img_size=32, dwconv_pool=3), ["dwconv_pool", "token grid"]),
    (dict(fc1_pool="half"), ["fc1_pool", "'half'", "global"]),
    (dict(kernel_size=4), ["kernel_size", "odd"]),
    (dict(dynamic_blocks="every:0"), ["dynamic_blocks", "K must be >= 1"]),
    (dict(dynamic_blocks="every:3:3"), ["dynamic_blocks", "OFFSET"]),
    (dict(dynamic_blocks="first:20"), ["dynamic_blocks", "depth=17"]),
    (dict(dynamic_blocks=[1, 17]), ["dynamic_blocks", "[17]"]),
    (dict(dynamic_blocks=[1, 1]), ["dynamic_blocks", "repeat"]),
    (dict(dynamic_blocks="sometimes"), ["dynamic_blocks", "every:K"]),
    (dict(fc1_act="tanh"), ["fc1_act", "'tanh'"]),
    (dict(dwconv_act="default"), ["dwconv_act", "'default'"]),
    (dict(dwconv_pool=2), ["dwconv_pool", "1 (one global summary) or kernel_size=3"]),
    (dict(kernel_size=5, dwconv_pool=3), ["dwconv_pool", "kernel_size=5"]),
    (dict(fc1_pool_mode="floor"), ["fc1_pool_mode", "'floor'", "cover"]),
    (dict(renorm="some"), ["renorm", "'some'", "dynamic"]),
    (dict(delta_norm="l2"), ["delta_norm", "squash"]),
    (dict(drop_path_rate=1.5), ["drop_path_rate", "[0, 1)"]),
    (dict(depth=0), ["depth", "in [1, 4096]"]),
    (dict(depth=10**7), ["depth", "in [1, 4096]"]),
    (dict(mlp_ratio=-1), ["mlp_ratio", "in (0, 64]"]),
    (dict(mlp_ratio=float("inf")), ["mlp_ratio", "in (0, 64]"]),
    (dict(img_size=(224,)), ["img_size", "pair"]),
    (dict(embed_dim=True), ["embed_dim", "integer"]),
])
def test_config_validation_messages(kwargs, words):
    with pytest.raises(ValueError) as info:
        ArchConfig(**kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, (w, msg)


def test_hash_identifies_architecture():
    a = ArchConfig()
    assert a.hash == ArchConfig.from_dict(a.to_dict()).hash and len(a.hash) == 12
    assert a.hash == ArchConfig(dynamic_blocks=[1, 4, 7, 10, 13, 16]).hash  # same blocks, other spelling
    assert a.hash == ArchConfig(drop_path_rate=0.1).hash  # regularization is not architecture
    assert a.hash != ArchConfig(fc1_pool=4).hash
    static = ArchConfig(fc1_predictor="none", dwconv_predictor="none")
    assert static.hash == ArchConfig(fc1_predictor="none", dwconv_predictor="none", rank_ratio=8, fc1_pool=1).hash
    assert static.hash == ArchConfig(dynamic_blocks="none").hash  # no dynamic block at all
    assert ArchConfig(fc1_predictor="none").hash == ArchConfig(fc1_predictor="none", rank_ratio=16).hash
    assert ArchConfig(fc1_predictor="gap").hash == ArchConfig(fc1_predictor="gap", fc1_pool=1).hash


@pytest.mark.parametrize("dim,depth,img,patch", [(32, 4, 64, 16), (48, 5, 96, 16), (32, 3, 56, 8)])
def test_official_checkpoint_parity(dim, depth, img, patch):
    sd = random_reference_state_dict(dim, depth, patch=patch, num_classes=10, seed=dim + depth)
    model = timm.create_model("weightformer_tiny", embed_dim=dim, depth=depth, img_size=img, patch_size=patch,
                              num_classes=10).double().eval()
    model.load_state_dict(convert_official_state_dict(sd), strict=True)
    x = torch.randn(2, 3, img, img, dtype=torch.float64)
    with torch.no_grad():
        ours, ref = model(x), reference_forward(sd, x, depth, patch)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    # the dynamic parts matter at these weights: the static model gives something else
    static_sd = {k: v for k, v in sd.items()}
    for k in list(static_sd):
        if ".wfm." in k:
            static_sd[k] = torch.zeros_like(static_sd[k])
    assert (reference_forward(static_sd, x, depth, patch) - ref).abs().max() > 1e-3
    # float32 agrees to 1e-5 as well
    model32 = model.float()
    with torch.no_grad():
        torch.testing.assert_close(model32(x.float()).double(), ref, rtol=1e-5, atol=1e-5)


def test_convert_accepts_wrappers_and_rejects_foreign_keys():
    sd = random_reference_state_dict(32, 2, seed=1)
    direct = convert_official_state_dict(sd)
    wrapped = convert_official_state_dict({"model": {f"module.{k}": v for k, v in sd.items()}})
    assert direct.keys() == wrapped.keys()
    assert direct["blocks.1.mlp.fc1.weight"].shape == (128, 32)  # C_in x C_out stored transposed
    assert convert_official_state_dict(direct).keys() == direct.keys()  # already converted: unchanged
    with pytest.raises(ValueError, match="blocks.0.attn.qkv.weight"):
        convert_official_state_dict({**sd, "blocks.0.attn.qkv.weight": torch.zeros(1)})
