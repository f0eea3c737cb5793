"""``wfsearch export``: write the full training recipe of one trial of a study."""
from __future__ import annotations

import argparse
from pathlib import Path

from wfsearch.errors import UserError

from . import add_study_args, check_min
from .output import output_target, write_output

PICK_HELP = """\
selection rules for --pick (over the Pareto front of the search trials; references never count):
  max METRIC | min METRIC  [where METRIC OP NUMBER [and METRIC OP NUMBER ...]]     OP: >= <= > < == !=
  METRIC: an objective (accuracy, throughput), a metric or a cost (params, macs, throughput_ratio ...)
examples:
  wfsearch export studies/predictors --pick "max accuracy where throughput_ratio >= 1.2"
  wfsearch export studies/predictors --pick "min params where accuracy >= 0.8"
  wfsearch export studies/predictors --trial 17 --format timm --img-size 224 --num-classes 1000
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="write a trial's full training recipe (YAML) for `wfsearch train` or timm",
        description="Export one trial of a study to studies/<name>/recipes/trial-<N>.yaml: the architecture as a "
                    "timm name plus overrides, its provenance, ImageFolder data paths and the released 300-epoch "
                    "WeightFormer recipe with launch commands.",
        epilog=PICK_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_args(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, metavar="N", help="export trial number N")
    which.add_argument("--pick", metavar="RULE", help="choose from the front by a rule (see below)")
    p.add_argument("--format", choices=["wfsearch", "timm"], default="wfsearch",
                   help="timm: also write an args file for timm's train.py (default: wfsearch)")
    p.add_argument("--output", metavar="FILE", help="recipe path (default: STUDY/recipes/trial-N.yaml)")
    p.add_argument("--img-size", type=int, metavar="N",
                   help="training resolution (default: the deployed network's, the study's throughput.img_size)")
    p.add_argument("--num-classes", type=int, default=None, metavar="N",
                   help="classes (default: the deployed network's, 1000 unless throughput.arch sets it)")
    p.add_argument("--data", default="/data/imagenet", metavar="DIR",
                   help="ImageFolder root with train/ and val/ written into the recipe (default: /data/imagenet)")
    p.add_argument("--batch-size", type=int, default=256, metavar="N", help="batch per GPU (default: 256)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    p.add_argument("--force", action="store_true", help="overwrite an existing recipe")
    p.set_defaults(func=run)


def _say_noise(snap, picked) -> None:
    """Tell the user when the picked trial cannot be told apart from other front members within noise."""
    from wfsearch.report.data import noise_data

    s = noise_data(snap)
    for group in s.indistinguishable:
        if picked.number in group:
            others = [n for n in group if n != picked.number]
            print(f"note: trial {picked.number} is indistinguishable within noise from trial"
                  f"{'s' if len(others) > 1 else ''} {', '.join(map(str, others))} (90% intervals overlap in every "
                  "objective): the rule's choice among them is not measured")
    if s.within_noise:
        print(f"note: trial{'s' if len(s.within_noise) > 1 else ''} {', '.join(map(str, s.within_noise))} "
              "off the front are plausibly optimal too (dominated only within noise)")


def _scores(snap, trial) -> str:
    """The trial's objectives, each with its unit and what it is (the two speeds apart)."""
    from wfsearch.study.labels import LABELS, paired

    m = snap.metrics(trial)
    out = []
    for k in (k for k in snap.objectives if k in m):
        if k == "accuracy":
            out.append(f"accuracy {m[k]:.4f} (proxy top-1)")
        elif k == "throughput" and paired(trial.costs):
            ref = (snap.user_attrs.get("throughput_scale") or {}).get("img_s")
            how = (f"ratio {m['throughput_ratio']:.3g} x the reference's {ref:.1f} img/s"
                   if ref and "throughput_ratio" in m else "ratio x the reference's img/s")
            out.append(f"{m[k]:.1f} img/s paired (derived: {how})")
        elif k == "throughput":
            out.append(f"{m[k]:.1f} img/s measured")
        else:
            out.append(f"{k} {m[k]:.4g} ({LABELS.get(k, k)})")
    if "throughput" in snap.objectives and paired(trial.costs) and "throughput_img_s" in m:
        out.append(f"{m['throughput_img_s']:.1f} img/s measured")
    return "; ".join(out)


def run(args: argparse.Namespace) -> int:
    from wfsearch.export import (find_trial, parse_pick, recipe_from_trial, recipe_path_for, recipe_to_yaml,
                                 select, timm_args_to_yaml)

    from wfsearch.report.data import chance_flag
    from wfsearch.study import read_study

    check_min(args, 1, "img_size", "num_classes", "batch_size")
    snap = read_study(args.study, storage=args.storage, study_name=args.study_name)
    objectives = snap.objectives
    if args.trial is not None:
        trial = find_trial(snap, args.trial)
        first = snap.repeat_of.get(trial.number)
        if first is not None:
            print(f"note: trial {trial.number} repeats trial {first}'s architecture (its result reused, not trained "
                  f"again): this is trial {first}'s recipe")
    else:
        front = snap.front
        if args.pick is None:
            nums = ", ".join(str(t.number) for t in front) or "none yet"
            raise UserError(f"export: choose a trial with --trial N or --pick RULE "
                            f"(e.g. --pick 'max {objectives[0]}'); trials on the front: {nums}")
        trial = select(front, parse_pick(args.pick), snap.metrics)
        _say_noise(snap, trial)
    path = Path(args.output) if args.output else recipe_path_for(snap, trial)
    timm_path = path.with_name(path.stem + ".timm.yaml")
    for target in [path] + ([timm_path] if args.format == "timm" else []):
        output_target(target, "--output")
        if target.exists() and not args.force:
            raise UserError(f"--output: {str(target)!r}: exists (it may hold your edits); pass --force to overwrite")
    recipe = recipe_from_trial(snap, trial, img_size=args.img_size, num_classes=args.num_classes,
                               data=args.data, batch_size=args.batch_size, seed=args.seed, recipe_path=path)
    write_output(path, recipe_to_yaml(recipe, path), "--output")
    flag = chance_flag(trial, snap.chance, snap.metrics(trial))
    if flag:
        print(f"warning: trial {trial.number} is {flag}")
    print(f"trial {trial.number}: {_scores(snap, trial)} -> {recipe.model.name} at {recipe.data.img_size}px")
    print(f"wrote {path}")
    if args.format == "timm":
        write_output(timm_path, timm_args_to_yaml(recipe, timm_path), "--output")
        print(f"wrote {timm_path}  (timm train.py args; run it through `python -m wfsearch.export.run_timm`)")
    print("train it:")
    for cmd in recipe.launch.values():
        print(f"  {cmd}")
    return 0
