"""timm's backbone API for every registered size, tested as timm tests its own models:
`feature_info`, `forward_intermediates`, `prune_intermediate_layers` and ``features_only=True``."""
from __future__ import annotations

import pytest
import timm
import torch

import wfsearch  # noqa: F401  (registers weightformer_*)

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
