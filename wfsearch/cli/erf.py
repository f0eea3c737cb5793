"""``wfsearch erf``: effective receptive fields of study trials, references, recipes and timm models."""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from wfsearch.errors import UserError

from . import check_min, examples
from .output import write_output

DEFAULT_IMAGES = 16


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "erf", help="effective receptive fields: heat maps and summaries",
        description="The effective receptive field (ERF) of each model: the gradient of the central output "
                    "feature with respect to the input, accumulated over images (the study's proxy validation "
                    "images, or --imagefolder). Writes a heat-map PNG per model, grid.png and erf.json "
                    "(per model: the share of ERF mass outside the static network's theoretical receptive "
                    "field, and the radii holding 50% / 90% of the mass), which `wfsearch report` shows.",
        **examples(
            "wfsearch erf studies/predictors --front --references          # untrained",
            "wfsearch erf studies/predictors --trial 3 --trained           # also after the proxy training",
            "wfsearch erf --model deit_tiny_patch16_224 --img-size 224 --imagefolder ~/imagenet/val",
            "wfsearch erf --recipe studies/predictors/recipes/trial-3.yaml --checkpoint studies/predictors/runs/trial-3/last.pth",
        ))
    p.add_argument("study", nargs="?", metavar="STUDY", help="a study folder (studies/<name>)")
    p.add_argument("--trial", type=int, action="append", default=[], metavar="N", help="a trial of STUDY (repeatable)")
    p.add_argument("--front", action="store_true", help="every trial on STUDY's Pareto front")
    p.add_argument("--references", action="store_true", help="STUDY's references (the released design, all-static ...)")
    p.add_argument("--model", action="append", default=[], metavar="NAME", help="a timm model (repeatable)")
    p.add_argument("--recipe", metavar="RECIPE.yaml", help="an exported recipe's model ...")
    p.add_argument("--checkpoint", metavar="PATH", help="... with these weights (a timm/torch checkpoint)")
    p.add_argument("--trained", action="store_true",
                   help="also measure each study model after training it on the study's proxy (its budget)")
    p.add_argument("--epochs", type=int, metavar="N", help="proxy epochs for --trained (default: the study's budget)")
    p.add_argument("--train-size", type=int, metavar="N",
                   help="for --trained: train on the first N proxy training images only (a cheaper look)")
    p.add_argument("--images", type=int, default=DEFAULT_IMAGES, metavar="N", help=f"images to accumulate over "
                   f"(default {DEFAULT_IMAGES})")
    p.add_argument("--img-size", type=int, metavar="PX",
                   help="input size (default: 3x the proxy's img_size, so the static network's theoretical "
                        "receptive field does not fill the image; 224 without a study)")
    p.add_argument("--imagefolder", metavar="DIR", help="take the images from this folder (any depth) instead")
    p.add_argument("--out", metavar="DIR", help="output folder (default: STUDY/erf, or ./erf)")
    p.set_defaults(func=run)


@dataclasses.dataclass
class Target:
    label: str
    what: Any  # ArchConfig or timm name
    trainable: bool = False  # a study model that --trained may train on the proxy
    checkpoint: str | None = None
    recipe: Any = None


def _study_targets(args: argparse.Namespace) -> tuple[Any, list[Target]]:
    from wfsearch.models import ArchConfig
    from wfsearch.space import spec_from_dict
    from wfsearch.study import read_study

    snap = read_study(args.study)
    stored = snap.user_attrs.get("spec")
    if not stored:
        raise UserError(f"{args.study}: the study stores no spec; it was not written by `wfsearch run`")
    spec = spec_from_dict(stored, source=f"{args.study} (stored spec)")
    trials = {t.number: t for t in snap.trials}
    numbers = list(args.trial)
    if args.front:
        numbers += [t.number for t in snap.front if t.number not in numbers]
    bad = next((n for n in numbers if trials.get(n) is None or not trials[n].arch), None)
    if bad is not None:
        raise UserError(f"--trial: {bad}: no trial with an architecture in study {snap.name!r}")
    targets = [Target(f"trial{n}", ArchConfig.from_dict(trials[n].arch), trainable=True) for n in numbers]
    if args.references:
        targets += [Target(r.name, r.arch if r.arch is not None else r.model, trainable=True)
                    for r in spec.reference_archs()]
    return (spec, snap), targets


def _images(args: argparse.Namespace, spec: Any, img_size: int):
    """(normalized images (N, 3, S, S), description)."""
    import torch

    if args.imagefolder:
        x, mean, std, source = _folder_images(Path(args.imagefolder), args.images, img_size)
    else:
        from wfsearch.proxy.data import load_dataset
        from wfsearch.space import ProxySpec

        proxy = spec.proxy if spec is not None else ProxySpec()
        # only the first validation images are needed: load no more than that of either split
        dataset = proxy.dataset.model_copy(update={"train_size": args.images, "val_size": args.images})
        data = load_dataset(proxy.model_copy(update={"img_size": img_size, "dataset": dataset}))
        x = data.val.images[:args.images].float() / 255.0
        mean, std, source = data.mean, data.std, f"{len(x)} {data.name} validation images"
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1), source


def _folder_images(root: Path, n: int, size: int):
    """(images in [0, 1], mean, std, description) of the first ``n`` images under ``root``."""
    import numpy as np
    import torch
    from PIL import Image
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    from wfsearch.proxy.imagefolder import quiet_pillow

    if not root.is_dir():
        raise UserError(f"--imagefolder: {root}: no such folder")
    quiet_pillow()
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp"))[:n]
    if not files:
        raise UserError(f"--imagefolder: {root}: holds no .jpg/.jpeg/.png/.bmp/.webp images")
    arrays = []
    for f in files:
        try:
            with Image.open(f) as im:
                arrays.append(np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC), dtype=np.float32))
        except OSError as e:
            raise UserError(f"--imagefolder: {f}: not a readable image ({e})") from None
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 255.0
    return x, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, f"{len(files)} images from {root}"


def run(args: argparse.Namespace) -> int:
    import torch

    from wfsearch.models import ArchConfig
    from wfsearch.models import erf as E
    from wfsearch.proxy.measure import build_target

    check_min(args, 1, "images")
    if (args.trial or args.front or args.references or args.trained) and not args.study:
        raise UserError("--trial/--front/--references/--trained need a STUDY folder (studies/<name>)")
    if bool(args.recipe) != bool(args.checkpoint):
        raise UserError("--recipe and --checkpoint go together: the recipe builds the model, the checkpoint fills it")
    spec = opened = None
    targets: list[Target] = []
    if args.study:
        (spec, opened), targets = _study_targets(args)
    targets += [Target(name, name) for name in args.model]
    if args.recipe:
        from wfsearch.export.recipe import load_recipe
        recipe = load_recipe(args.recipe)
        targets.append(Target(Path(args.recipe).stem, recipe.model.name, checkpoint=args.checkpoint, recipe=recipe))
    if not targets:
        raise UserError("nothing to measure: give --trial N, --front, --references (with a STUDY), --model NAME "
                        "or --recipe R --checkpoint C")
    proxy_size = spec.proxy.img_size if spec is not None else None
    img_size = args.img_size or (3 * proxy_size if proxy_size else 224)
    out = Path(args.out) if args.out else (opened.folder / "erf" if opened is not None else Path("erf"))
    _check_out(out, args, img_size)
    images, source = _images(args, spec, img_size)
    static_arch = spec.fixed_arch(fc1_predictor="none", dwconv_predictor="none").replace(img_size=img_size) \
        if spec is not None else None
    print(f"# ERF at {img_size}x{img_size} px over {source}; central output token; "
          f"static RF: {'the spec base network, all static' if static_arch else 'each WeightFormer, all static'}")

    data = proxy = None
    if args.trained:
        from wfsearch.proxy.data import load_dataset
        proxy = spec.proxy
        if args.epochs is not None:
            if args.epochs < 1 or 0 < proxy.warmup_epochs >= args.epochs:
                raise UserError(f"--epochs: {args.epochs}: must be >= 1 and above the spec's proxy.warmup_epochs="
                                f"{proxy.warmup_epochs:g}")
            proxy = proxy.model_copy(update={"epochs": [args.epochs]})
        check_min(args, 1, "train_size")
        if args.train_size is not None:
            dataset = proxy.dataset.model_copy(update={"train_size": args.train_size})
            proxy = proxy.model_copy(update={"dataset": dataset})
        data = load_dataset(proxy, origin=str(spec.path))

    results = []
    for t in targets:
        states = ["untrained"] + (["trained"] if args.trained and t.trainable else [])
        for state in states:
            torch.manual_seed(0)
            if t.recipe is not None:
                model = t.recipe.model.create(img_size=img_size) if t.recipe.model.name.startswith("weightformer") \
                    else t.recipe.model.create()
                _load_checkpoint(model, t.checkpoint)
                state = "checkpoint"
            else:
                size = proxy_size or img_size
                num_classes = (data.num_classes if data is not None else
                               (spec.proxy.dataset.num_classes if spec is not None else 1000))
                extra = {"dynamic_img_size": True} if state == "trained" and isinstance(t.what, str) else {}
                try:  # trained at the proxy's size, measured at img_size (any size for WeightFormer)
                    model = build_target(t.what, size if state == "trained" else img_size,
                                         num_classes=num_classes, **extra)[0]
                except ValueError as e:
                    raise UserError(f"{t.label}: cannot build it at {img_size} px: {e}") from None
                if state == "trained":
                    from wfsearch.proxy.train import train_proxy
                    print(f"  training {t.label} on the proxy ({proxy.max_epochs} epoch(s)) ...", flush=True)
                    tr = train_proxy(model, data, proxy)
                    print(f"    accuracy {tr.accuracy:.3f}", flush=True)
            arch = getattr(model, "arch", None)
            patch = arch.patch_size if isinstance(arch, ArchConfig) else _patch(model)
            m = E.erf_map(model, images.split(4))
            ref = static_arch or (arch.replace(img_size=img_size) if isinstance(arch, ArchConfig) else None)
            box = E.static_rf_box(ref, (img_size, img_size)) if ref is not None else None
            s = E.summarize(m, patch, box)
            label = f"{t.label} ({state})"  # untrained: random initial weights, the architecture's reach only
            results.append({"label": label, "model": t.label, "state": state,
                            "what": t.what if isinstance(t.what, str) else t.what.to_dict(),
                            "patch_size": patch, "static_rf_box": list(box) if box else None,
                            **s.to_dict(), "map": _small(E.display(m))})
            _save_png(E.heatmap_rgb(m, box=box).numpy(), out / (re.sub(r"[^\w.-]+", "_", label).strip("_") + ".png"))
            print(f"{label:<28} outside static RF {_pct(s.outside_static_rf)}   r50 {s.r50:6.1f} px   "
                  f"r90 {s.r90:6.1f} px", flush=True)
    _write_grid(results, out / "grid.png")
    write_output(out / "erf.json", json.dumps({"img_size": img_size, "images": source, "models": results}), "--out")
    print(f"wrote {out}/grid.png, one PNG per model and {out}/erf.json")
    return 0


def _check_out(out: Path, args: argparse.Namespace, img_size: int) -> None:
    """Refuse, before any work, an output that is not a folder (or new) and images larger than memory."""
    from wfsearch.space.checks import machine_memory

    from .output import output_target

    if out.exists() and not out.is_dir():
        raise UserError(f"--out: {str(out)!r}: not a folder; erf writes a folder of PNGs and erf.json")
    output_target(out / "erf.json", "--out")
    have, kind = machine_memory()
    need = 16 * args.images * 3 * img_size * img_size * 4  # the images, their gradients and a model's activations
    if need > have:
        flag = "--img-size" if args.img_size else "--images"
        raise UserError(f"{flag}: {args.img_size or args.images}: {args.images} images at {img_size} px need about "
                        f"{need / 2**30:.3g} GiB, more than this machine's {have / 2**30:.3g} GiB of {kind}; "
                        "use fewer or smaller images")


def _load_checkpoint(model: Any, path: str) -> None:
    """``path``'s weights into ``model`` (timm's loader, tensors only); a missing or foreign file is one line."""
    import timm

    if not Path(path).is_file():
        raise UserError(f"--checkpoint: {path!r}: {'not a regular file' if Path(path).exists() else 'no such file'}")
    try:
        timm.models.load_checkpoint(model, path, strict=False)
    except Exception as e:  # a damaged, foreign or crafted file: torch and timm raise many kinds
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        raise UserError(f"--checkpoint: {path!r}: not a checkpoint of this model ({type(e).__name__}: {reason})") \
            from None


def _patch(model: Any) -> int:
    size = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    return int(size[0] if isinstance(size, (tuple, list)) else size or 16)


def _pct(v: float | None) -> str:
    return "   n/a" if v is None else f"{100 * v:5.1f}%"


def _small(d: Any, size: int = 48) -> list[list[float]]:
    """The display map, at most ``size`` pixels a side, rounded (for erf.json and the report)."""
    import torch.nn.functional as F

    if d.shape[0] > size:
        d = F.adaptive_avg_pool2d(d[None, None], size)[0, 0]
    return [[round(float(v), 3) for v in row] for row in d]


def _save_png(image: Any, path: Path) -> None:
    """``image`` (a PIL image or an RGB array) as a PNG file, through `write_output`."""
    import io

    from PIL import Image

    image = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    write_output(path, buf.getvalue(), "--out")


def panel_box(result: dict, side: int) -> tuple[int, int, int, int] | None:
    """A result's static receptive-field box (pixels of its image) scaled to a ``side``-pixel panel."""
    box, size = result.get("static_rf_box"), result.get("img_size")
    if not box or not size:
        return None
    return tuple(round(v * side / size) for v in box)  # type: ignore[return-value]


def _write_grid(results: list[dict], path: Path, tile: int = 192) -> None:
    import torch
    from PIL import Image, ImageDraw

    from wfsearch.models.erf import colorize

    cols = min(4, len(results))
    rows = -(-len(results) // cols)
    caption = 30
    side = tile - 8  # every panel square and the same size
    grid = Image.new("RGB", (cols * tile, rows * (tile + caption)), "white")
    draw = ImageDraw.Draw(grid)
    for i, r in enumerate(results):
        img = Image.fromarray(colorize(torch.tensor(r["map"])).numpy()).resize((side, side), Image.NEAREST)
        x, y = (i % cols) * tile, (i // cols) * (tile + caption)
        grid.paste(img, (x + 4, y + caption))
        box = panel_box(r, side)
        if box is not None:  # the static network's theoretical receptive field, as in each PNG
            top, bottom, left, right = box
            draw.rectangle((x + 4 + left, y + caption + top, x + 4 + right - 1, y + caption + bottom - 1),
                           outline="white")
        draw.text((x + 4, y + 2), r["label"][:30], fill="black")
        caption_text = f"out {_pct(r['outside_static_rf']).strip()} r50 {r['r50']:.0f} r90 {r['r90']:.0f}px"
        draw.text((x + 4, y + 15), caption_text, fill="black")
    _save_png(grid, path)
