"""timm's backbone API for every registered size, tested as timm tests its own models:
`feature_info`, `forward_intermediates`, `prune_intermediate_layers` and ``features_only=True``."""
from __future__ import annotations

import pytest
import timm
import torch

import wfsearch.models  # noqa: F401  (registers weightformer_*)

# the 17-block sizes take seconds each to build on a CPU
NAMES = [pytest.param(n, marks=pytest.mark.slow) if n in ("weightformer_small", "weightformer_base") else n
         for n in sorted(timm.list_models("weightformer*"))]
IMG = 64  # every size at a small input: the API does not depend on the resolution


@pytest.fixture(scope="module", params=NAMES)
def model(request):
    torch.manual_seed(0)
    return request.param, timm.create_model(request.param, pretrained=False, img_size=IMG).eval()


def test_forward_intermediates(model):
    name, m = model
    x = torch.randn(2, 3, IMG, IMG)
    info = m.feature_info
    assert len(info) == len(m.blocks) and all(f["num_chs"] == m.num_features for f in info)
    with torch.no_grad():
        final, inter = m.forward_intermediates(x)
        torch.testing.assert_close(final, m.forward_features(x))  # the same network, the same output
        assert len(inter) == len(info)
        for f, y in zip(info, inter):
            assert y.shape == (2, f["num_chs"], IMG // f["reduction"], IMG // f["reduction"]), (name, f)
        last = m.forward_intermediates(x, indices=[-1], output_fmt="NHWC", intermediates_only=True, norm=True)
        torch.testing.assert_close(last[0], final)  # the last block, normalized, is forward_features
        nlc = m.forward_intermediates(x, indices=2, output_fmt="NLC", intermediates_only=True, stop_early=True)
        assert [t.shape for t in nlc] == [(2, (IMG // info[0]["reduction"]) ** 2, m.num_features)] * 2
        torch.testing.assert_close(nlc[-1], inter[-1].flatten(2).transpose(1, 2))
    with pytest.raises(ValueError, match="output_fmt"):
        m.forward_intermediates(x, output_fmt="NDHW")


def test_features_only(model):
    name, _ = model
    torch.manual_seed(0)
    feat = timm.create_model(name, pretrained=False, img_size=IMG, features_only=True, out_indices=(0, -1))
    x = torch.randn(1, 3, IMG, IMG)
    with torch.no_grad():
        outs = feat(x)
    assert len(outs) == 2 == len(feat.feature_info.channels())
    for c, r, y in zip(feat.feature_info.channels(), feat.feature_info.reduction(), outs):
        assert y.shape == (1, c, IMG // r, IMG // r)
    if name == "weightformer_test":
        default = timm.create_model(name, pretrained=False, img_size=IMG, features_only=True)
        assert default.feature_info.out_indices == (1, 2, 3)  # the last three blocks, as timm's ViT


def test_prune_intermediate_layers():
    torch.manual_seed(0)
    full = timm.create_model("weightformer_test").eval()
    pruned = timm.create_model("weightformer_test").eval()
    pruned.load_state_dict(full.state_dict())
    kept = pruned.prune_intermediate_layers(indices=[1, 2], prune_norm=True)
    assert kept == [1, 2] and len(pruned.blocks) == 3 and pruned.num_classes == 0
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours = pruned.forward_intermediates(x, indices=[1, 2], intermediates_only=True)
        ref = full.forward_intermediates(x, indices=[1, 2], intermediates_only=True)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b)
    assert pruned(x).shape == (2, 8, 8, 32)  # no head, no pooling: the tokens (NHWC)


# every predictor at least once, global and partial pooling, the released pooling, a non-square grid
FX_DESIGNS = [dict(fc1_predictor="bilateral", dwconv_predictor="adaptive"),
              dict(fc1_predictor="deep", dwconv_predictor="conv", fc1_pool="global", dwconv_pool=1),
              dict(fc1_predictor="gap", dwconv_predictor="ampdir", fc1_pool=4, dynamic_blocks="all"),
              dict(fc1_predictor="linear", dwconv_predictor="gap", fc1_pool_mode="released"),
              dict(fc1_predictor="nonlinear", dwconv_predictor="none")]


@pytest.mark.parametrize("design", FX_DESIGNS, ids=lambda d: f"{d['fc1_predictor']}-{d['dwconv_predictor']}")
def test_fx_feature_extraction(design):
    """torchvision's FX feature extraction (and timm's wrapper of it) trace every predictor and give
    the eager features: the model follows its plain formulation while torch.fx traces it."""
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    torch.manual_seed(0)
    m = timm.create_model("weightformer_test", pretrained=False, **design).eval()
    x = torch.randn(2, 3, 64, 48)
    train_nodes, eval_nodes = get_graph_node_names(m)
    assert any(n.startswith("blocks.1.") for n in eval_nodes) and any(n.startswith("norm") for n in eval_nodes)
    fe = create_feature_extractor(m, return_nodes={"blocks.1": "b1", "norm": "out"})
    with torch.no_grad():
        feats = fe(x)
        _, inter = m.forward_intermediates(x, indices=[1], output_fmt="NHWC")
        torch.testing.assert_close(feats["out"], m.forward_features(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(feats["b1"], inter[0], atol=1e-5, rtol=1e-5)
        timm_fe = timm.models.create_feature_extractor(m, return_nodes=["norm"])
        torch.testing.assert_close(timm_fe(x)["norm"], feats["out"])
