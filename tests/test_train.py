"""`wfsearch train`: a real (tiny) run from an exported recipe, resume, evaluation, and DDP under torchrun."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from test_export import make_smoke_study
from wfsearch.cli import main
from wfsearch.export import load_recipe
from wfsearch.export.train import initial_model

COMMON = ["--workers", "0", "--device", "cpu"]


def write_image_folder(root: Path, classes: int = 2, per_class: int = 8, size: int = 32, seed: int = 0) -> Path:
    """train/ and val/ ImageFolders of PNGs whose class shows in one colour channel."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                img = rng.integers(0, 128, (size, size, 3), dtype=np.uint8)
                img[..., c % 3] += 100
                Image.fromarray(img).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    """(recipe exported from trial 0 of a smoke study, tiny ImageFolder root)."""
    tmp = tmp_path_factory.mktemp("train")
    study = tmp / "studies" / "smoke"
    make_smoke_study(study)
    assert main(["export", str(study), "--trial", "0"]) == 0
    return study / "recipes" / "trial-0.yaml", write_image_folder(tmp / "data")


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def test_train_resume_evaluate(setup, tmp_path: Path, capsys) -> None:
    """The exported recipe as is (bf16 autocast, RandAugment, Mixup/CutMix, erasing): two epochs at once,
    and the same run interrupted after epoch 1 and resumed, end with the same weights; then evaluate."""
    recipe, data = setup
    run = tmp_path / "run"
    args = ["train", recipe, "--data", data, "--batch-size", "4", "--epochs", "2", *COMMON]
    assert main([str(a) for a in args + ["--output", run]]) == 0
    out = capsys.readouterr().out
    assert "epoch    1" in out and "epoch    2" in out and f"in {run}" in out
    rows = metrics(run)
    assert [(r["epoch"], r["step"], r["global_batch"], r["val_images"]) for r in rows] == [(1, 4, 4, 16), (2, 8, 4, 16)]
    for row in rows:
        assert 0 <= row["top1"] <= 100 and row["top5"] is None  # two classes: every label is in the top 5
        assert np.isfinite(row["train_loss"]) and np.isfinite(row["val_loss"])
    assert {p.name for p in run.iterdir()} >= {"last.pth", "best.pth", "metrics.jsonl", "recipe.yaml"}
    ckpt = torch.load(run / "last.pth", map_location="cpu", weights_only=True)
    assert (ckpt["epoch"], ckpt["global_step"], ckpt["num_classes"], ckpt["classes"]) == (2, 8, 2, ["class0", "class1"])

    # the same two-epoch run, stopped after epoch 1 (its checkpoint is written by then), then resumed
    from wfsearch.export.train import init_distributed, train

    class Stop(Exception):
        pass

    def stop(row: dict) -> None:
        raise Stop

    cut = tmp_path / "cut"
    r = load_recipe(recipe).replace(data__train=str(data / "train"), data__val=str(data / "val"),
                                    train__batch_size=4, schedule__epochs=2, schedule__warmup_epochs=0)
    with pytest.raises(Stop):
        train(r, cut, workers=0, dist_ctx=init_distributed("cpu"), on_epoch=stop)
    assert [m["epoch"] for m in metrics(cut)] == [1]
    assert main([str(a) for a in args + ["--output", cut]]) == 2  # a used folder needs --resume
    assert "pass --resume" in capsys.readouterr().err
    capsys.readouterr()
    assert main([str(a) for a in args + ["--output", cut, "--resume"]]) == 0
    assert f"resumed from epoch 1 (step 4) of {cut / 'last.pth'}" in capsys.readouterr().out
    assert [m["epoch"] for m in metrics(cut)] == [1, 2]
    assert max_diff(weights(run / "last.pth"), weights(cut / "last.pth")) < 1e-6
    assert metrics(cut)[1]["train_loss"] == pytest.approx(rows[1]["train_loss"], abs=1e-6)
    capsys.readouterr()

    # --evaluate reports the checkpoint's numbers, equal to its last metrics line
    assert main([str(a) for a in ["train", recipe, "--data", data, "--output", run, "--evaluate",
                                  "--batch-size", "4", *COMMON]]) == 0
    out = capsys.readouterr().out
    assert f"top1 {rows[1]['top1']:.2f}  loss" in out and "top5" not in out and "(16 images)" in out


def test_missing_data_is_one_line_and_exit_2(setup, tmp_path: Path, capsys) -> None:
    recipe, data = setup
    assert main(["train", str(recipe), "--data", str(tmp_path / "nowhere")] + COMMON) == 2
    err = capsys.readouterr().err
    assert err.startswith("wfsearch: error: --data: ") and "no such folder" in err and len(err.splitlines()) == 1
    assert main(["train", str(recipe), "--output", str(tmp_path / "o")] + COMMON) == 2  # placeholders untouched
    err = capsys.readouterr().err
    assert "data.train: '/data/imagenet/train': no such folder; pass --data DIR" in err and len(err.splitlines()) == 1
    (tmp_path / "half" / "train").mkdir(parents=True)
    assert main(["train", str(recipe), "--data", str(tmp_path / "half"), "--output", str(tmp_path / "o")] + COMMON) == 2
    assert "holds no class sub-folders" in capsys.readouterr().err
    assert main(["train", str(recipe), "--data", str(data), "--batch-size", "64", "--output", str(tmp_path / "o")]
                + COMMON) == 2
    assert "exceeds the 16 training images" in capsys.readouterr().err


def test_divergence_is_one_line_and_exit_1(setup, tmp_path: Path, capsys) -> None:
    recipe, data = setup
    r = yaml.safe_load(recipe.read_text())
    r["optimizer"]["lr_base"] = 5e4  # the largest a recipe takes: 400 at this batch of 4
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(r))
    assert main(["train", str(bad), "--data", str(data), "--epochs", "1", "--batch-size", "4", "--no-augment",
                 "--output", str(tmp_path / "o"), *COMMON]) == 1
    err = capsys.readouterr().err
    assert err.startswith("wfsearch: error: training diverged: ") and "lower optimizer.lr_base" in err


def test_posterize_at_full_magnitude_does_not_crash() -> None:
    """rand-m9-mstd0.5 can reach magnitude 10, where timm keeps 0 bits; newer Pillow rejects that."""
    from timm.data import auto_augment

    from wfsearch.export import Recipe
    from wfsearch.export.data import build_transforms

    train_tf, _ = build_transforms(Recipe().replace(data__img_size=32), augment=True)
    ra = next(t for t in train_tf.transforms if isinstance(t, auto_augment.RandAugment))
    op = next(o for o in ra.ops if o.name == "PosterizeIncreasing")
    img = Image.new("RGB", (8, 8), (200, 100, 50))
    assert np.asarray(op.aug_fn(img, 0)).max() == 0  # black, as older Pillow gave
    assert np.asarray(op.aug_fn(img, 2)).tolist() == np.asarray(img.point(lambda v: v & 0xC0)).tolist()


@pytest.mark.slow
def test_torchrun_two_processes_match_one(setup, tmp_path: Path) -> None:
    """torchrun --nproc_per_node=2 (gloo, CPU) with batch 4 per process equals one process with batch 8."""
    recipe, data = setup
    # no random augmentation and fp32 so both runs see identical inputs; a larger lr so weights move
    r = yaml.safe_load(recipe.read_text())
    r["optimizer"]["lr_base"] = 0.05
    fast = tmp_path / "fast.yaml"
    fast.write_text(yaml.safe_dump(r))
    flags = ["--data", str(data), "--epochs", "2", "--no-augment", "--precision", "fp32", "--ema", *COMMON]

    one = tmp_path / "one"
    assert main(["train", str(fast), "--batch-size", "8", "--output", str(one), *flags]) == 0

    two = tmp_path / "two"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "wfsearch",
         "train", str(fast), "--batch-size", "4", "--output", str(two), *flags],
        capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("epoch    2") == 1  # only the main process prints

    m1, m2 = metrics(one), metrics(two)
    assert [m["world_size"] for m in m2] == [2, 2] and [m["global_batch"] for m in m1 + m2] == [8] * 4
    for a, b in zip(m1, m2):
        assert a["step"] == b["step"] and a["lr"] == pytest.approx(b["lr"], rel=1e-9)
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5)
        assert (a["top1"], a["top5"], a["val_images"]) == (b["top1"], b["top5"], b["val_images"])
        assert a["ema_val_loss"] == pytest.approx(b["ema_val_loss"], abs=1e-5)
    w1, w2 = weights(one / "last.pth"), weights(two / "last.pth")
    init = initial_model(load_recipe(fast), num_classes=2).state_dict()  # what both runs started from
    diff = max_diff(w1, w2)
    travel = max_diff(w1, init)
    print(f"single vs 2-process: max |dw| = {diff:.2e}, max |w - w0| = {travel:.2e}")
    assert travel > 1e-3 and diff < 1e-5, (diff, travel)


@pytest.mark.slow
def test_logging_tensorboard_interrupt_and_finished_resume(setup, tmp_path: Path, capsys, monkeypatch) -> None:
    """Off a terminal a line every --log-every steps; TensorBoard events readable back; the as-run recipe
    names the data's classes; Ctrl-C prints the resume command, which finishes the run; resuming a
    finished run says there is nothing left to do."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    recipe, data = setup
    run = tmp_path / "run"
    args = [str(a) for a in ["train", recipe, "--data", data, "--batch-size", "4", "--epochs", "2", "--log-every",
                             "2", "--no-augment", "--output", run, *COMMON]]

    from wfsearch.tracking import RunTrackers

    logged = RunTrackers.step

    def interrupt(self, info: dict) -> None:  # Ctrl-C in the second epoch, after its step 6 was logged
        logged(self, info)
        if info["step"] == 6:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunTrackers, "step", interrupt)
    assert main(args) == 130
    out, err = capsys.readouterr()
    assert "# smoke-trial-0: " in out and ", 2 epochs (" in out
    assert "epoch 1/2  step 2/4  loss " in out and "step 4/4" in out and " img/s" in out and "step 2/4" in out
    resume = err.strip().splitlines()[-1].split()
    assert "interrupted; continue from the last finished epoch with:" in err
    assert resume[:2] == ["wfsearch", "train"] and resume[-3:] == ["--output", str(run), "--resume"]
    monkeypatch.undo()
    assert main(resume[1:]) == 0
    out = capsys.readouterr().out
    assert "resumed from epoch 1 (step 4)" in out and "done: 2 epochs" in out
    assert [m["epoch"] for m in metrics(run)] == [1, 2]

    as_run = yaml.safe_load((run / "recipe.yaml").read_text())
    assert as_run["model"]["kwargs"]["num_classes"] == 2  # the data's classes, not the export's 1000

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"train/loss", "train/lr", "train/images_per_s", "epoch/top1", "epoch/val_loss"} <= set(tags)
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6, 8]  # both sessions, step 6 once
    assert [e.step for e in events.Scalars("epoch/top1")] == [4, 8]
    assert [e.value for e in events.Scalars("epoch/top1")] == pytest.approx([m["top1"] for m in metrics(run)])

    assert main(resume[1:]) == 0
    out = capsys.readouterr().out
    assert "nothing left to do: " in out and "finished all 2 epochs" in out and "--epochs N with N > 2" in out


def test_workers_are_capped_at_the_cpus() -> None:
    from wfsearch.export.data import usable_workers

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert usable_workers(10_000) == cpus
    assert usable_workers(0) == 0 and usable_workers(1) == 1


def test_wandb_asked_for_but_missing_is_one_line(setup, tmp_path: Path, capsys, monkeypatch) -> None:
    recipe, data = setup
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    assert main([str(a) for a in ["train", recipe, "--data", data, "--batch-size", "4", "--epochs", "1",
                                  "--wandb", "--output", tmp_path / "w", *COMMON]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wfsearch: error: --wandb: the wandb package is not installed") and len(err.splitlines()) == 1
