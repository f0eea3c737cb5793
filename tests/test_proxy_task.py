"""The proxy task and its quality: the synthetic task's geometry needs reach, the `digits` loader, and
the statistics `proxy-check` and `benchmarks/proxy_quality.py` print."""
from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from wfsearch.models import ArchConfig
from wfsearch.proxy.data import load_dataset, needs_reach, static_rf_span, synthetic_gap, synthetic_images
from wfsearch.proxy.quality import above_chance, icc1, proxy_quality
from wfsearch.space import ProxySpec, load_spec

ROOT = Path(__file__).resolve().parents[1]


def _objects(img: np.ndarray) -> np.ndarray:
    """Boolean mask ``(H, W)`` of object pixels: saturated colours on a grey background."""
    x = img.astype(np.int32)
    return (x.max(axis=0) - x.min(axis=0)) > 80


def _gap(mask: np.ndarray) -> int:
    """Distance in pixels between the two objects along the axis that separates them: the largest
    difference between consecutive occupied coordinates, over both axes."""
    best = 0
    for axis in (0, 1):
        occupied = np.flatnonzero(mask.any(axis=1 - axis))
        if len(occupied) > 1:
            best = max(best, int(np.diff(occupied).max()))
    return best


def test_quick_start_task_needs_reach():
    """At the quick start's settings the two objects lie farther apart than the static network's
    receptive field spans (the model's own `static_rf_box`), so no static token sees both."""
    spec = load_spec(str(ROOT / "spaces" / "predictors.yaml"), [])
    S, ds = spec.proxy.img_size, spec.proxy.dataset
    arch = spec.fixed_arch().replace(img_size=S)
    assert ds.name == "synthetic" and ds.layout == "ends"
    span = static_rf_span(arch)
    assert span == (2 * arch.depth * (arch.kernel_size - 1) // 2 + 1) * arch.patch_size
    assert needs_reach(arch, S) and synthetic_gap(S) >= span
    data = synthetic_images(300, S, ds.num_classes, seed=1)
    gaps = [_gap(_objects(im)) for im in data.images.numpy()]
    # measured on the pixels, and the worst case of the training translation (it moves both objects alike)
    assert min(gaps) >= synthetic_gap(S) >= span
    # and the old layout did not: at the old quick start (32 px, depth 6) the field covered the image
    old = ArchConfig(img_size=32, patch_size=4, embed_dim=64, depth=6)
    assert static_rf_span(old) >= 32 and not needs_reach(old, 32)


def test_synthetic_labels_say_which_attributes_are_shared():
    data = synthetic_images(400, 56, 2, seed=3)
    same = data.labels.numpy() == 1
    from wfsearch.proxy.data import PALETTE

    hues = PALETTE / np.linalg.norm(PALETTE, axis=1, keepdims=True)
    colours = []
    for im in data.images.numpy():
        rgb = im[:, _objects(im)].T.astype(float)  # (pixels, 3)
        nearest = np.argmax((rgb / np.linalg.norm(rgb, axis=1, keepdims=True)) @ hues.T, axis=1)
        counts = np.bincount(nearest, minlength=len(PALETTE))
        colours.append(int((counts >= 5).sum()))
    colours = np.array(colours)
    # "same colour" images hold one palette hue, "different" ones two
    assert (colours[same] == 1).all() and (colours[~same] == 2).all()
    assert 0.4 < same.mean() < 0.6


def test_digits_loader_offline(monkeypatch):
    pytest.importorskip("sklearn")

    def refuse(*a, **k):
        raise AssertionError("the digits loader tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    proxy = ProxySpec.model_validate({"dataset": {"name": "digits"}, "img_size": 24})
    data = load_dataset(proxy)
    assert data.name == "digits" and data.classes == [str(i) for i in range(10)]
    assert len(data.train) + len(data.val) == 1797 and 400 <= len(data.val) <= 460
    assert data.train.images.shape[1:] == (3, 24, 24) and data.train.images.dtype.is_floating_point is False
    assert set(data.val.labels.tolist()) == set(range(10))
    # grey images upsampled: the three channels are equal
    assert (data.train.images[:, 0] == data.train.images[:, 2]).all()
    three = load_dataset(ProxySpec.model_validate({"dataset": {"name": "digits", "num_classes": 3}, "img_size": 16}))
    assert three.num_classes == 3 and set(three.train.labels.tolist()) == {0, 1, 2}


def test_digits_spec_needs_no_root():
    spec = load_spec(str(ROOT / "spaces" / "predictors.yaml"), ["proxy.dataset={name: digits}"])
    assert spec.proxy.dataset.name == "digits" and spec.proxy.dataset.root is None
    assert spec.proxy.dataset.num_classes == 10


def test_icc_and_chance():
    # two architectures 0.2 apart, seeds within 0.01: reliability near 1; pure seed noise: near 0 or below
    rng = np.random.default_rng(0)
    arch = rng.uniform(0.3, 0.9, (40, 1))
    assert icc1(arch + rng.normal(0, 0.01, (40, 3))) > 0.98
    assert icc1(0.5 + rng.normal(0, 0.05, (40, 3))) < 0.2
    # textbook value: MSB and MSW of a small table
    x = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]])
    msb = 2 * np.var(x.mean(axis=1), ddof=1)
    msw = np.mean(np.var(x, axis=1, ddof=1))
    assert icc1(x) == pytest.approx((msb - msw) / (msb + msw))
    # 600 images, 4 classes: 0.25 is chance, 0.29 is above it (p < 0.05), 0.27 is not
    assert above_chance(np.array([0.25, 0.27, 0.29, np.nan]), 600, 4).tolist() == [False, False, True, False]


def test_quality_verdict_and_bootstrap_intervals():
    rng = np.random.default_rng(1)
    truth = rng.uniform(0.4, 0.9, 24)
    good = truth[:, None] + rng.normal(0, 0.01, (24, 3))
    q = proxy_quality(good, rung1=good - 0.05, long=good + 0.02, n_val=600, num_classes=4, resamples=200)
    assert q.passed() and q.verdict().startswith("PASS")
    assert q.icc.low <= q.icc.value <= q.icc.high and q.icc.value > 0.95 and q.tau_long.value > 0.8
    assert q.above_chance.value == 1.0
    noisy = np.full((24, 3), 0.25) + rng.normal(0, 0.01, (24, 3))
    q = proxy_quality(noisy, n_val=600, num_classes=4, resamples=200)
    assert not q.passed() and q.verdict().startswith("FAIL") and "train longer" in q.verdict()


def test_verdict_line_matches_the_proxy_it_was_measured_on():
    from wfsearch.study.verdict import VERDICT_ATTR, proxy_key, verdict_line, verdict_passed

    proxy = load_spec(str(ROOT / "spaces" / "predictors.yaml"), []).proxy.model_dump(mode="json")
    assert verdict_passed({}, proxy) is None and "none recorded" in verdict_line({}, proxy, "spaces/predictors.yaml")
    assert "proxy-check spaces/predictors.yaml" in verdict_line({}, proxy, "spaces/predictors.yaml")
    attrs = {VERDICT_ATTR: {"passed": False, "line": "FAIL: the proxy cannot tell designs apart (...)",
                            "proxy_key": proxy_key(proxy)}}
    assert verdict_passed(attrs, proxy) is False and verdict_line(attrs, proxy).startswith("proxy check: FAIL")
    # where it runs does not change the verdict; what it trains does
    assert proxy_key({**proxy, "device": "cuda", "num_threads": 4}) == proxy_key(proxy)
    longer = {**proxy, "epochs": [1, 8]}
    assert verdict_passed(attrs, longer) is None and "another proxy setting" in verdict_line(attrs, longer)
