"""Knobs that measure one thing each (issue 17): the fc1 compression's scale and border tokens,
re-normalization placement, per-family activations and the canonical form, the dwconv summary grid,
and the preprocessing config. The released parity itself is `test_models.test_official_checkpoint_parity`."""
from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F

import wfsearch.models  # noqa: F401  (registers weightformer_*)
from wfsearch.models import ArchConfig, build, cost
from wfsearch.models.predictors import mean_raw_delta_norm, pool_tokens

SMALL = dict(patch_size=4, embed_dim=32, depth=3, num_classes=4, dynamic_blocks="all")


def _images(img: int, n: int = 4, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.randn(n, 3, 8, 8, generator=g), size=img, mode="bilinear")


def _raw_delta_norms(mode: str, img: int) -> dict:
    """Mean raw ‖ΔW‖ (before the squash) of the fc1 predictors at init, per fc1_pool, same weights."""
    out = {}
    for pool in (1, 2, 4, "global"):
        torch.manual_seed(0)
        model = build(ArchConfig(img_size=img, fc1_pool=pool, fc1_pool_mode=mode, **SMALL)).eval()
        out[pool] = mean_raw_delta_norm(model, _images(img))
    return out


@pytest.mark.parametrize("img", [32, 56])  # 8x8 and 14x14 token grids (pool 4 does not divide 14)
def test_delta_scale_does_not_depend_on_the_pool(img):
    cover = _raw_delta_norms("cover", img)
    assert max(cover.values()) / min(cover.values()) < 5, cover  # same order for every pool
    released = _raw_delta_norms("released", img)  # the released 1/N: shrinks as M/N ~ 1/s²
    assert released[1] / released["global"] > 50, released
    assert cover[2] == pytest.approx(released[2], rel=1e-6)  # identical at the released 2x2 pool


def test_cover_pool_sees_border_tokens():
    x = torch.randn(2, 14, 14, 8)
    floor, ceil = pool_tokens(x, 4), pool_tokens(x, 4, cover=True)
    assert floor.shape[1] == 9 and ceil.shape[1] == 16
    # every cell is the mean of the tokens it holds, the partial ones included
    torch.testing.assert_close(ceil.view(2, 4, 4, 8)[:, 3, 3], x[:, 12:, 12:].mean(dim=(1, 2)))
    torch.testing.assert_close(ceil.view(2, 4, 4, 8)[:, 0, 3], x[:, :4, 12:].mean(dim=(1, 2)))
    border = x.clone()
    border[:, 13, 13] += 1.0
    assert torch.equal(pool_tokens(border, 4), floor)  # the released pool never sees it
    assert not torch.equal(pool_tokens(border, 4, cover=True), ceil)
    for pool in (2, 7):  # pools that divide the grid: the two modes are the same
        torch.testing.assert_close(pool_tokens(x, pool), pool_tokens(x, pool, cover=True))


@pytest.mark.parametrize("img,same", [(32, True), (28, False)])  # 8x8 grid / 7x7 grid at pool 2
def test_modes_agree_exactly_where_the_released_pool_tiles_the_grid(img, same):
    cfg = ArchConfig(img_size=img, **SMALL)
    torch.manual_seed(0)
    cover = build(cfg).eval()
    released = build(cfg.replace(fc1_pool_mode="released")).eval()
    released.load_state_dict(cover.state_dict())
    x = _images(img, 2)
    with torch.no_grad():
        a, b = cover(x), released(x)
    if same:
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)
    else:  # (ΔW is ~1e-4 of W0 at init, so the outputs differ only slightly)
        assert not torch.equal(a, b)
    assert (cfg.hash == cfg.replace(fc1_pool_mode="released").hash) == same
    assert cost(cfg)["macs"] >= cost(cfg.replace(fc1_pool_mode="released"))["macs"]


@pytest.mark.parametrize("renorm,norms", [
    ("dynamic", {1}), ("placement", {1}), ("all", {0, 1, 2}), ("none", set())])
def test_renorm_places_norm1(renorm, norms):
    for fc1, dw in (("bilateral", "adaptive"), ("none", "none")):
        cfg = ArchConfig(img_size=16, **{**SMALL, "dynamic_blocks": [1]}, fc1_predictor=fc1,
                         dwconv_predictor=dw, renorm=renorm)
        model = build(cfg)
        has = {i for i, b in enumerate(model.blocks) if isinstance(b.norm1, torch.nn.LayerNorm)}
        expect = set() if (renorm == "dynamic" and fc1 == "none") else norms
        assert has == expect == set(cfg.norm_indices), (fc1, renorm)
        assert cost(cfg)["params"] == sum(p.numel() for p in model.parameters())
    # the default is the released pattern: norm1 exactly in the dynamic blocks
    assert ArchConfig().norm_indices == ArchConfig().dynamic_indices == (1, 4, 7, 10, 13, 16)
    # a static network with the released re-normalization is a network of its own
    static = ArchConfig(fc1_predictor="none", dwconv_predictor="none")
    assert static.replace(renorm="placement").hash != static.hash
    assert static.replace(renorm="placement").norm_indices == ArchConfig().norm_indices


def test_activations_are_split_per_family():
    model = build(ArchConfig(img_size=16, **SMALL, fc1_act="relu", dwconv_act="identity"))
    block = model.blocks[0]

    def name(m):
        return type(m).__name__

    assert (name(block.mlp.fc1.predictor.act_fn), name(block.token_mixer.predictor.act)) == ("ReLU", "Identity")
    default = build(ArchConfig(img_size=16, **SMALL)).blocks[0]
    assert (name(default.mlp.fc1.predictor.act_fn), name(default.token_mixer.predictor.act)) == ("SiLU", "GELU")
    # records written before the split (one predictor_act, released pooling) still load as they were
    old = {k: v for k, v in ArchConfig().to_dict().items() if k not in ("fc1_act", "dwconv_act", "fc1_pool_mode")}
    legacy = ArchConfig.from_dict({**old, "predictor_act": "relu"})
    assert (legacy.fc1_act, legacy.dwconv_act, legacy.fc1_pool_mode) == ("relu", "relu", "released")
    legacy = ArchConfig.from_dict({**old, "predictor_act": "default"})
    assert (legacy.fc1_act, legacy.dwconv_act, legacy.fc1_pool_mode) == ("silu", "gelu", "released")


@pytest.mark.parametrize("same", [
    [dict(fc1_predictor="linear"), dict(fc1_predictor="bilateral", fc1_act="identity"),
     dict(fc1_predictor="nonlinear", fc1_act="identity"), dict(fc1_predictor="linear", fc1_act="relu")],
    [dict(fc1_predictor="gap"), dict(fc1_predictor="bilateral", fc1_pool="global")],
    [dict(fc1_predictor="gap", fc1_act="identity"), dict(fc1_predictor="linear", fc1_pool="global")],
])
def test_canonical_form_merges_networks_that_compute_the_same_function(same):
    cfgs = [ArchConfig(img_size=16, **SMALL, **kw) for kw in same]
    assert len({c.hash for c in cfgs}) == 1
    torch.manual_seed(0)
    first = build(cfgs[0]).eval()
    x = _images(16, 2)
    with torch.no_grad():
        ref = first(x)
        for cfg in cfgs[1:]:
            other = build(cfg).eval()
            other.load_state_dict(first.state_dict())  # same parameters ...
            torch.testing.assert_close(other(x), ref, rtol=1e-5, atol=1e-6)  # ... same function


def test_canonical_form_keeps_different_networks_apart():
    base = ArchConfig(img_size=16, **SMALL)
    variants = [base, base.replace(fc1_predictor="nonlinear"), base.replace(fc1_predictor="linear"),
                base.replace(fc1_predictor="deep", fc1_act="identity"), base.replace(fc1_pool="global"),
                base.replace(fc1_predictor="gap", fc1_pool_mode="released"),
                base.replace(fc1_pool="global", fc1_pool_mode="released"), base.replace(dwconv_act="relu")]
    assert len({c.hash for c in variants}) == len(variants)


def test_dwconv_summary_grid_follows_the_kernel():
    for k in (3, 5):
        cfg = ArchConfig(img_size=32, **SMALL, kernel_size=k)
        assert cfg.dwconv_grid == k and cfg.dwconv_pool is None
        model = build(cfg)
        assert model.blocks[0].token_mixer.predictor.pool == k
        assert cfg.hash == cfg.replace(dwconv_pool=k).hash
        assert cfg.replace(dwconv_pool=1).hash != cfg.hash
    with pytest.raises(ValueError, match="kernel_size=5"):
        ArchConfig(kernel_size=5, dwconv_pool=3)


def test_pretrained_cfg_matches_the_released_preprocessing():
    from wfsearch.export.recipe import DataSection
    recipe = DataSection()
    for name in ("weightformer_tiny", "weightformer_small", "weightformer_base", "weightformer_test"):
        data = timm.data.resolve_model_data_config(timm.create_model(name, pretrained=False))
        assert list(data["mean"]) == pytest.approx(recipe.mean) and list(data["std"]) == pytest.approx(recipe.std)
        assert data["crop_mode"] == recipe.crop_mode == "squash"
        assert data["interpolation"] == recipe.interpolation
