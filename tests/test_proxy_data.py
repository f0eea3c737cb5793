"""Proxy data: the synthetic relational task, CIFAR and image-folder loaders, caches, tensor batches."""
from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn as nn

from wfsearch.errors import UserError
from wfsearch.proxy import data as D
from wfsearch.proxy.data import TensorBatches, load_dataset, synthetic_images
from wfsearch.space import DatasetSpec, ProxySpec, spec_from_dict


def _proxy(img_size: int = 32, **dataset) -> ProxySpec:
    """The spec's proxy section with ``dataset`` options at ``img_size``."""
    return ProxySpec(img_size=img_size, dataset=DatasetSpec(**dataset))


pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- synthetic
def test_synthetic_same_seed_same_bytes():
    a, b = synthetic_images(64, 32, 4, seed=3), synthetic_images(64, 32, 4, seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    c = synthetic_images(64, 32, 4, seed=4)
    assert not torch.equal(a.images, c.images)
    assert a.images.dtype == torch.uint8 and a.images.shape == (64, 3, 32, 32)


@pytest.mark.parametrize("size,classes", [(16, 2), (32, 4), (64, 16), (48, 5)])
def test_synthetic_sizes_and_balanced_labels(size, classes):
    d = synthetic_images(800, size, classes, seed=0)
    assert d.images.shape == (800, 3, size, size)
    counts = torch.bincount(d.labels, minlength=classes)
    assert len(counts) == classes and counts.min() > 800 / classes * 0.6


def test_synthetic_class_names_name_the_shared_attributes():
    assert D.synthetic_class_names(4) == ["none_shared", "same_color", "same_shape", "same_color_shape"]
    assert len(D.synthetic_class_names(16)) == 16


def test_each_object_alone_carries_no_label_information():
    """The colour of one object (the pixel with the most saturated colour in the top-left quadrant's
    objects) is spread evenly over both labels: only the relation between the two objects decides."""
    d = synthetic_images(4000, 32, 2, seed=1, layout="quadrants")  # the default layout: test_proxy_task.py
    x = d.images.float()
    sat = x.max(1).values - x.min(1).values  # (N, H, W) colourfulness
    # colour of the most saturated pixel in the left half vs the right half
    colours = []
    for half in (slice(0, 16), slice(16, 32)):
        s = sat[:, :, half].flatten(1)
        idx = s.argmax(1)
        rgb = x[:, :, :, half].flatten(2)[torch.arange(len(x)), :, idx]  # (N, 3)
        colours.append(rgb.argmax(1) + 3 * (rgb[:, 1] > 150) * (rgb[:, 0] > 150))  # 4 palette entries
    same_colour = d.labels == 1
    for c in range(4):  # P(same | left object has colour c) stays near 1/2
        sel = colours[0] == c
        if sel.sum() > 100:
            assert abs(same_colour[sel].float().mean().item() - 0.5) < 0.1


@pytest.mark.slow
def test_local_model_stays_at_chance_where_a_global_model_learns():
    """A network whose features each see one 4x4 patch (then mean pooling and a linear head) cannot
    tell 'same colour' from 'different colour'; a WeightFormer with dynamic (global) blocks can."""
    from wfsearch.models import ArchConfig, build
    from wfsearch.proxy.train import seed_everything, train_proxy

    data = load_dataset(_proxy(num_classes=2, train_size=3000, val_size=500))
    settings = ProxySpec(epochs=3, batch_size=64, warmup_epochs=0.2, device="cpu")

    class PatchLocal(nn.Module):
        def __init__(self, d: int = 48):
            super().__init__()
            self.f = nn.Sequential(nn.Conv2d(3, d, 4, 4), nn.GELU(), nn.Conv2d(d, d, 1), nn.GELU(),
                                   nn.Conv2d(d, d, 1), nn.GELU())
            self.head = nn.Linear(d, 2)

        def forward(self, x):
            return self.head(self.f(x).mean((2, 3)))

    seed_everything(0)
    local = train_proxy(PatchLocal(), data, settings)
    seed_everything(0)
    arch = ArchConfig(img_size=32, patch_size=4, embed_dim=32, depth=2, num_classes=2, dynamic_blocks="all")
    glob = train_proxy(build(arch), data, settings)
    assert local.accuracy < 0.56
    assert glob.accuracy > local.accuracy + 0.1, (local.accuracy, glob.accuracy)


# --------------------------------------------------------------------------- settings and caches
def test_dataset_errors_are_one_line_user_errors():
    """The spec checks the dataset options (the loaders take the checked `ProxySpec`)."""
    for dataset, message in (({"num_classes": 17}, r"proxy\.dataset\.num_classes: 17: the synthetic task has 2\.\.16"),
                             ({"bogus": 1}, r"spec\.yaml: proxy\.dataset\.bogus: 'bogus': unknown key"),
                             ({"name": "imagenet"}, r"proxy\.dataset\.name: 'imagenet': must be one of")):
        with pytest.raises(UserError, match=message):
            spec_from_dict({"study": {"name": "x"}, "proxy": {"dataset": dataset}}, "spec.yaml")


def test_load_dataset_caches_in_memory():
    s = _proxy(train_size=64, val_size=32, seed=7)
    a = load_dataset(s)
    b = load_dataset(s)
    assert a.train.images is b.train.images
    assert a.num_classes == 4 and len(a.train) == 64 and len(a.val) == 32
    assert not torch.equal(a.train.images[:32], a.val.images)  # the splits come from different streams


# --------------------------------------------------------------------------- image folders
def _write_folder(root, classes=("ant", "bee", "cat"), n_train=5, n_val=2, size=(40, 30)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(arr).save(root / split / c / f"{i}.{'png' if i % 2 else 'jpg'}")


def test_imagefolder_loads_resizes_and_subsets(tmp_path):
    _write_folder(tmp_path / "ds")
    s = _proxy(name="imagefolder", root=str(tmp_path / "ds"), img_size=16, classes=("cat", "ant"),
               samples_per_class=3)
    d = load_dataset(s, cache_dir=tmp_path / "cache")
    assert d.classes == ["cat", "ant"] and d.num_classes == 2
    assert d.train.images.shape == (6, 3, 16, 16) and d.train.images.dtype == torch.uint8
    assert sorted(d.train.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    assert d.val.images.shape == (4, 3, 16, 16)
    files = list((tmp_path / "cache").glob("data-*.pt"))
    assert len(files) == 1
    D.clear_memory_cache()
    again = load_dataset(s, cache_dir=tmp_path / "cache")  # from disk
    assert torch.equal(again.train.images, d.train.images) and again.classes == d.classes


def test_imagefolder_num_classes_and_val_cap(tmp_path):
    _write_folder(tmp_path / "ds", n_val=3)
    d = load_dataset(_proxy(name="imagefolder", root=str(tmp_path / "ds"), img_size=8, num_classes=2,
                            val_size=4))
    assert d.classes == ["ant", "bee"] and len(d.val) == 4 and len(d.train) == 10


def test_imagefolder_errors_name_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(UserError, match=rf"proxy\.dataset\.root: '{missing}': no such folder"):
        load_dataset(_proxy(name="imagefolder", root=str(missing)))
    (tmp_path / "half" / "train" / "a").mkdir(parents=True)
    with pytest.raises(UserError, match="has no val/ folder"):
        load_dataset(_proxy(name="imagefolder", root=str(tmp_path / "half")))
    _write_folder(tmp_path / "ds")
    with pytest.raises(UserError, match=r"proxy\.dataset\.classes: .*'dog' is not a class"):
        load_dataset(_proxy(name="imagefolder", root=str(tmp_path / "ds"), classes=("ant", "dog")))


# --------------------------------------------------------------------------- CIFAR (faked torchvision class)
class FakeCIFAR:
    classes = [f"c{i}" for i in range(10)]

    def __init__(self, root, train=True, download=False):
        n = 50 if train else 20
        rng = np.random.default_rng(int(train))
        self.data = rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
        self.targets = [i % 10 for i in range(n)]


def test_cifar_subsets_and_resizes(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR)
    d = load_dataset(_proxy(name="cifar10", root=str(tmp_path), img_size=24, classes=("c3", "c1"),
                            samples_per_class=4))
    assert d.classes == ["c3", "c1"] and d.train.images.shape == (8, 3, 24, 24)
    assert sorted(d.train.labels.tolist()) == [0] * 4 + [1] * 4
    assert len(d.val) == 4 and d.mean == D.CIFAR_MEAN


def test_cifar_missing_without_download_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"proxy\.dataset\.root: .*download: true"):
        load_dataset(_proxy(name="cifar10", root=str(tmp_path / "none")))
    with pytest.raises(UserError, match=r"cifar100 not found there"):
        load_dataset(_proxy(name="cifar100", root=str(tmp_path)))


# --------------------------------------------------------------------------- batches
def test_tensor_batches_normalize_shuffle_and_augment():
    split = synthetic_images(100, 16, 2, seed=0)
    plain = TensorBatches(split, (0.5,) * 3, (0.25,) * 3, 32)
    x, y = next(iter(plain))
    assert x.dtype == torch.float32 and x.shape == (32, 3, 16, 16)
    assert torch.allclose(x, (split.images[:32].float() / 255 - 0.5) / 0.25, atol=1e-5)
    assert torch.equal(y, split.labels[:32]) and len(plain) == 4
    aug = lambda seed: list(TensorBatches(split, (0.5,) * 3, (0.25,) * 3, 32, shuffle=True, augment=True,
                                          pad=2, seed=seed, drop_last=True))
    a, b, c = aug(1), aug(1), aug(2)
    assert len(a) == 3
    assert all(torch.equal(p[0], q[0]) for p, q in zip(a, b))
    assert not torch.equal(a[0][0], c[0][0])
    # augmentation only moves and mirrors pixels: the multiset of labels is kept
    assert sorted(torch.cat([t[1] for t in a]).tolist()) != [] and a[0][0].shape == (32, 3, 16, 16)
