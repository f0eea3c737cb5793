"""Damaged image folders: bad files are skipped and named, links are followed safely, class sets checked."""
from __future__ import annotations

import logging
import os
import struct
import zlib

import numpy as np
import pytest

from wfsearch.errors import UserError
from wfsearch.proxy import data as D
from wfsearch.proxy.data import load_dataset
from wfsearch.space import DatasetSpec, ProxySpec

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _fresh_cache():
    D.clear_memory_cache()
    yield
    D.clear_memory_cache()


def _image(path, seed=0, size=(20, 16), fmt=None):
    from PIL import Image

    arr = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)


def _folder(root, classes=("a", "b"), n_train=6, n_val=2, val_classes=None):
    for split, n, cls in (("train", n_train, classes), ("val", n_val, val_classes or classes)):
        for c in cls:
            for i in range(n):
                _image(root / split / c / f"{i}.{'png' if i % 2 else 'jpg'}", seed=hash((split, c, i)) % 1000)
    return root


def _bomb_png(path, side=20000):
    """A valid 1x1 PNG whose header claims ``side x side`` pixels (what Pillow's bomb check reads)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    b = bytearray(buf.getvalue())
    ihdr = b[12:16 + 13]  # chunk type + data
    ihdr[4:12] = struct.pack(">II", side, side)
    b[12:16 + 13] = ihdr
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(b))


def _settings(root, **kw):
    return ProxySpec(img_size=8, dataset=DatasetSpec(name="imagefolder", root=str(root), **kw))


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def _broken_folder(tmp_path):
    """An image folder whose class a holds a truncated JPEG, random bytes and an empty file."""
    root = _folder(tmp_path / "ds", n_train=30)
    a = root / "train" / "a"
    _image(a / "big.jpg", size=(64, 64))
    good = (a / "big.jpg").read_bytes()
    (a / "trunc.jpg").write_bytes(good[: len(good) * 2 // 3])
    (a / "noise.png").write_bytes(np.random.default_rng(1).bytes(500))
    (a / "empty.jpg").write_bytes(b"")
    return root


def test_unreadable_files_are_skipped_and_named_in_one_warning(tmp_path, caplog):
    root = _broken_folder(tmp_path)
    _bomb_png(root / "train" / "b" / "bomb.png")
    with caplog.at_level(logging.WARNING):
        d = load_dataset(_settings(root))
    assert len(d.train) == 61 and sorted(set(d.train.labels.tolist())) == [0, 1]
    msgs = _warnings(caplog)
    assert len(msgs) == 1, msgs
    assert "skipped 4 entries" in msgs[0]
    assert msgs[0].count("' (") == 3 and msgs[0].endswith(" and 1 more")  # the first three names, with why


def test_each_reason_is_named(tmp_path, caplog):
    root = _broken_folder(tmp_path)
    with caplog.at_level(logging.WARNING):
        load_dataset(_settings(root))
    [msg] = _warnings(caplog)
    assert "'a/empty.jpg' (empty file)" in msg and "'a/noise.png' (not an image)" in msg
    assert "'a/trunc.jpg' (image file is truncated" in msg


def test_bomb_png_reason(tmp_path, caplog):
    root = _folder(tmp_path / "ds", n_train=12)
    _bomb_png(root / "train" / "b" / "bomb.png")
    with caplog.at_level(logging.WARNING):
        d = load_dataset(_settings(root))
    assert len(d.train) == 24
    [msg] = _warnings(caplog)
    assert "'b/bomb.png' (over Pillow's decompression-bomb limit" in msg


def test_too_many_unreadable_files_stop_with_one_line(tmp_path):
    root = _folder(tmp_path / "ds", n_train=4)
    for i in range(3):
        (root / "train" / "b" / f"bad{i}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match=r"proxy\.dataset\.root: .*: 3 of 11 train images cannot be read "
                                        r"\(more than 10%\): 'b/bad0\.jpg' \(not an image\)") as e:
        load_dataset(_settings(root))
    assert "\n" not in str(e.value)


def test_a_class_left_without_images_stops(tmp_path):
    root = _folder(tmp_path / "ds", classes=("a", "b", "c"), n_train=20)
    for f in (root / "val" / "c").iterdir():
        f.write_bytes(b"")
    with pytest.raises(UserError, match=r"class 'c' has no readable images in .*val/c"):
        load_dataset(_settings(root, val_size=100))
    (root / "train" / "d").mkdir()
    (root / "val" / "d").mkdir()
    with pytest.raises(UserError, match=r"class 'd' has no readable images in .*train/d"):
        load_dataset(_settings(root))


def test_link_loops_and_dangling_links_neither_multiply_nor_relabel(tmp_path, caplog):
    root = _folder(tmp_path / "ds")
    a = root / "train" / "a"
    os.symlink("..", a / "up")  # -> train/: would re-read a/ and read b/ as class a
    os.symlink(".", a / "self")  # -> a/ itself
    os.symlink("nowhere.jpg", a / "dangling.jpg")
    os.symlink("loop2.jpg", a / "loop1.jpg")
    os.symlink("loop1.jpg", a / "loop2.jpg")
    os.symlink("0.jpg", a / "copy.jpg")  # the same file twice
    with caplog.at_level(logging.WARNING):
        d = load_dataset(_settings(root))
    assert len(d.train) == 12
    assert d.train.labels.tolist().count(0) == 6 and d.train.labels.tolist().count(1) == 6
    [msg] = _warnings(caplog)
    assert "skipped 6 entries" in msg


def test_links_into_other_classes_or_out_of_root(tmp_path, caplog):
    root = _folder(tmp_path / "ds")
    outside = tmp_path / "elsewhere"
    _image(outside / "x.jpg")
    _image(root / "extra" / "y.jpg", seed=3)
    a = root / "train" / "a"
    os.symlink(root / "train" / "b" / "0.jpg", a / "from_b.jpg")
    os.symlink(root / "val" / "a" / "0.jpg", a / "from_val.jpg")
    os.symlink(root / "extra" / "y.jpg", a / "y.jpg")  # inside root, outside every class: followed
    os.symlink(outside / "x.jpg", a / "x.jpg")
    with caplog.at_level(logging.WARNING):
        d = load_dataset(_settings(root))
    assert d.train.labels.tolist().count(0) == 7
    [msg] = _warnings(caplog)
    assert "link into another class or split" in msg and "follow_links: true" in msg
    D.clear_memory_cache()
    d = load_dataset(_settings(root, follow_links=True))
    assert d.train.labels.tolist().count(0) == 8


def test_linked_class_folders_are_fine(tmp_path):
    store = _folder(tmp_path / "store")
    root = tmp_path / "ds"
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        for c in ("a", "b"):
            os.symlink(store / split / c, root / split / c)
    d = load_dataset(_settings(root))
    assert len(d.train) == 12 and len(d.val) == 4


@pytest.mark.parametrize("val_classes,shown", [
    (("c", "d"), r"only in .*train: \['a', 'b'\]; only in .*val: \['c', 'd'\]"),
    (("a",), r"only in .*train: \['b'\]\)"),
    (("a", "b", "c"), r"only in .*val: \['c'\]\)"),
])
def test_train_and_val_class_sets_must_agree(tmp_path, val_classes, shown):
    root = _folder(tmp_path / "ds", val_classes=val_classes)
    with pytest.raises(UserError, match=r"proxy\.dataset\.root: .*: train and val have different class folders \("
                                        + shown):
        load_dataset(_settings(root))


def test_chosen_classes_need_only_be_in_both(tmp_path):
    root = _folder(tmp_path / "ds", classes=("a", "b", "c"), val_classes=("a", "b"))
    d = load_dataset(_settings(root, classes=("b", "a")))
    assert d.classes == ["b", "a"] and len(d.val) == 4
    with pytest.raises(UserError, match=r"only in .*train: \['c'\]"):
        load_dataset(_settings(root, classes=("a", "c")))


# --------------------------------------------------------------------------- the full trainer's folders
def _recipe(root):
    from wfsearch.export.recipe import DataSection, Recipe

    return Recipe(data=DataSection(train=str(root / "train"), val=str(root / "val"), img_size=16, workers=0))


def test_trainer_skips_a_file_that_fails_to_decode(tmp_path, caplog):
    from wfsearch.export.data import build_datasets

    root = _folder(tmp_path / "ds", n_train=10)
    a = root / "train" / "a"
    (a / "1.png").write_bytes(b"garbage")  # index 1 of the sorted list
    os.symlink("..", a / "up")
    (root / "train" / "b" / "z.jpg").write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        train, val = build_datasets(_recipe(root), "recipe.yaml", augment=False)
    assert len(train) == 20 and train.classes == ["a", "b"] and train.targets.count(0) == 10
    assert "'b/z.jpg' (empty file)" in " ".join(_warnings(caplog))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        x, y = train[1]  # unreadable: the next image takes its place
        train[1]
    assert tuple(x.shape) == (3, 16, 16) and y == 0
    [msg] = _warnings(caplog)
    assert "1.png: skipped while training: not an image" in msg


def test_trainer_class_sets_must_agree(tmp_path):
    from wfsearch.export.data import build_datasets

    root = _folder(tmp_path / "ds", classes=("a", "b", "c"), n_train=1, n_val=1, val_classes=("a", "b"))
    with pytest.raises(UserError, match=r"recipe\.yaml: data\.val: .*train and val have different class folders "
                                        r"\(only in .*train: \['c'\]\)"):
        build_datasets(_recipe(root), "recipe.yaml", augment=False)
