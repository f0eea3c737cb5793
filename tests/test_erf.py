"""Effective receptive fields: exact locality of the static network, global reach of the dynamic one
and of DeiT, the summary scalars, and `wfsearch erf` end to end."""
from __future__ import annotations

import json

import pytest
import timm
import torch

import wfsearch.models  # noqa: F401  (registers weightformer_*)
from wfsearch.cli import main
from wfsearch.models import ArchConfig, build
from wfsearch.models import erf as E

IMG = 64
NET = dict(img_size=IMG, patch_size=4, embed_dim=16, depth=2, num_classes=4)  # 16x16 tokens


def _batches(n: int = 4):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, IMG, IMG, generator=g).split(2)


def test_static_erf_is_exactly_zero_outside_its_theoretical_rf():
    cfg = ArchConfig(**NET, fc1_predictor="none", dwconv_predictor="none")
    torch.manual_seed(0)
    m = E.erf_map(build(cfg), _batches())
    t, b, l, r = E.static_rf_box(cfg)
    assert (t, b, l, r) == (24, 44, 24, 44)  # the central token (8, 8), grown by 2 blocks x 1 token
    inside = m[t:b, l:r]
    outside = m.clone()
    outside[t:b, l:r] = 0
    assert torch.count_nonzero(outside) == 0 and inside.sum() > 0
    assert (inside > 0).float().mean() > 0.5  # the box is reached, not just the central patch
    s = E.summarize(m, 4, (t, b, l, r))
    assert s.outside_static_rf == 0.0 and 0 < s.r50 <= s.r90 <= 20 * 2 ** 0.5


def test_dynamic_erf_reaches_every_pixel():
    cfg = ArchConfig(**NET, dynamic_blocks="all")
    torch.manual_seed(0)
    model = build(cfg)
    assert (E.erf_map(model, _batches(), rectify=False) > 0).all()  # every pixel moves the centre
    m = E.erf_map(model, _batches())  # (the positive part: a pixel may push only down in 4 images)
    assert (m > 0).float().mean() > 0.99
    s = E.summarize(m, 4, E.static_rf_box(cfg.replace(fc1_predictor="none", dwconv_predictor="none")))
    assert s.outside_static_rf > 0


def test_deit_erf_is_global():
    torch.manual_seed(0)
    deit = timm.create_model("deit_tiny_patch16_224", img_size=IMG, depth=2, pretrained=False)
    assert (E.erf_map(deit, _batches(), rectify=False) > 0).all()
    assert (E.erf_map(deit, _batches()) > 0).float().mean() > 0.99


def test_display_and_picture():
    m = torch.zeros(8, 8, dtype=torch.float64)
    m[3, 4] = 9.0
    d = E.display(m)
    assert d.max() == 1.0 and d.min() == 0.0
    rgb = E.heatmap_rgb(m, size=32, box=(2, 6, 2, 6))
    assert rgb.shape == (32, 32, 3) and rgb.dtype == torch.uint8
    assert rgb[8, 8:24].eq(255).all()  # the box outline, scaled 4x
    assert E.colorize(torch.tensor([[0.0, 1.0]]))[0].tolist() == [[68, 1, 84], [253, 231, 37]]


def test_erf_command_writes_pictures_and_summaries(tmp_path, capsys):
    out = tmp_path / "erf"
    assert main(["erf", "--model", "weightformer_test", "--img-size", "32", "--images", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "weightformer_test" in text and "r50" in text
    data = json.loads((out / "erf.json").read_text())
    (entry,) = data["models"]
    assert entry["label"] == "weightformer_test (untrained)" and data["img_size"] == 32
    assert 0 <= entry["outside_static_rf"] <= 1 and entry["r50"] <= entry["r90"]
    assert (out / "weightformer_test_untrained.png").stat().st_size > 0 and (out / "grid.png").stat().st_size > 0


@pytest.mark.parametrize("argv,words", [
    (["erf"], ["nothing to measure"]),
    (["erf", "--front"], ["need a STUDY"]),
    (["erf", "--recipe", "r.yaml"], ["--recipe and --checkpoint go together"]),
    (["erf", "--model", "weightformer_test", "--images", "0"], ["--images: 0"]),
    (["erf", "--model", "weightformer_test", "--imagefolder", "/no/such/dir"], ["--imagefolder", "no such folder"]),
])
def test_erf_command_errors_are_one_line(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wfsearch: error:") and "\n" not in err, err
    for w in words:
        assert w in err


def test_report_section_reads_what_the_command_wrote(tmp_path, capsys):
    from wfsearch.report.erf import erf_section

    intro, fig = erf_section(tmp_path, "wfsearch erf studies/x")
    assert fig is None and "wfsearch erf studies/x --front --references --trained" in intro
    out = tmp_path / "erf"
    assert main(["erf", "--model", "weightformer_test", "--img-size", "32", "--images", "2", "--out", str(out)]) == 0
    intro, fig = erf_section(tmp_path, "wfsearch erf studies/x")
    assert "outside the static network" in intro and fig is not None
    (heat,) = fig.data
    assert heat.type == "heatmap" and len(heat.z) == 32 and max(max(r) for r in heat.z) == 1.0
    assert "weightformer_test (untrained)" in fig.layout.annotations[0].text


def test_the_map_is_the_mean_over_images_as_replknet_takes_it():
    """RepLKNet averages the per-image maps (an AverageMeter over batches of one) before log10(1 + m) / max;
    the log is not linear, so a sum would display differently."""
    import math

    import numpy as np

    model = build(ArchConfig(**NET, fc1_predictor="bilateral", dwconv_predictor="adaptive"))
    images = torch.cat(list(_batches()))
    per_image = [E.erf_map(model, [x[None]]).numpy() for x in images]
    mean = np.mean(per_image, axis=0)
    np.testing.assert_allclose(E.erf_map(model, images.split(3)).numpy(), mean, rtol=1e-4)  # any batching
    expect = np.log10(1 + mean) / np.log10(1 + mean).max()
    np.testing.assert_allclose(E.display(E.erf_map(model, _batches())).numpy(), expect, rtol=1e-4)
    assert not math.isclose(float(np.abs(np.log10(1 + 4 * mean) / np.log10(1 + 4 * mean).max() - expect).max()), 0)


def test_grid_and_report_show_the_static_box_state_and_square_panels(tmp_path):
    from PIL import Image

    from wfsearch.cli.erf import panel_box
    from wfsearch.report.erf import erf_section

    out = tmp_path / "erf"
    assert main(["erf", "--model", "weightformer_test", "--model", "deit_tiny_patch16_224", "--img-size", "64",
                 "--images", "2", "--out", str(out)]) == 0
    data = json.loads((out / "erf.json").read_text())
    wf = data["models"][0]
    assert wf["static_rf_box"] and wf["state"] == "untrained"
    grid = Image.open(out / "grid.png").convert("RGB")
    top, bottom, left, right = panel_box(wf, 192 - 8)
    assert grid.getpixel((4 + left, 30 + top)) == (255, 255, 255)  # the box's corner, inside the panel
    assert grid.getpixel((4 + left + 1, 30 + top + 1)) != (255, 255, 255)  # a map pixel inside it
    intro, fig = erf_section(tmp_path, "wfsearch erf studies/x")
    assert "Every map here is of an untrained network" in intro
    assert [a.text.split("<br>")[0] for a in fig.layout.annotations] == [
        "weightformer_test (untrained)", "deit_tiny_patch16_224 (untrained)"]
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == sum(1 for m in data["models"] if m["static_rf_box"]) >= 1
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis2.scaleanchor == "x2"  # each panel square
