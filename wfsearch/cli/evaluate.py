"""``wfsearch evaluate SPEC --config CONFIG.yaml``: one trial's evaluation outside any search."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from wfsearch.errors import UserError

from . import add_spec_args, check_min, examples


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate one architecture: costs, then the proxy training",
                       description="Run one trial's evaluation (cost measurement, then proxy training with "
                                   "per-epoch validation) for the architecture in CONFIG, on top of the spec's "
                                   "base, and print its objectives. CONFIG is a YAML mapping of ArchConfig fields "
                                   "(like a reference's arch:), {arch: {...}} or {model: <timm name>}; without "
                                   "it, the spec's base architecture.",
                       **examples("wfsearch evaluate spaces/predictors.yaml        # the spec's base architecture",
                                  'wfsearch evaluate spaces/predictors.yaml --config arch.yaml --json result.json',
                                  'wfsearch evaluate spaces/predictors.yaml --model deit_tiny_patch16_224'))
    add_spec_args(p)
    p.add_argument("--config", metavar="CONFIG.yaml", help="the architecture to evaluate")
    p.add_argument("--model", metavar="NAME", help="evaluate a timm model instead (e.g. deit_tiny_patch16_224)")
    p.add_argument("--no-measure", action="store_true", help="skip the cost and throughput measurement")
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads (default: a trial's, proxy.num_threads or resources.cpus_per_trial, so the "
                        "figures compare with the study's)")
    p.add_argument("--cache-dir", metavar="DIR", help="measurement/dataset cache folder (default: none)")
    p.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    p.set_defaults(func=run)


def load_target(spec: Any, config: str | None, model: str | None) -> Any:
    """The `ArchConfig` (base + CONFIG's fields) or timm model name to evaluate."""
    import yaml

    from wfsearch.models import ArchConfig

    if model and config:
        raise UserError("--config and --model: give one of them")
    if model:
        return model
    fields: dict[str, Any] = {}
    if config:
        try:
            data = yaml.safe_load(Path(config).read_text()) or {}
        except yaml.YAMLError as e:
            raise UserError(f"{config}: not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise UserError(f"{config}: {type(data).__name__}: must be a mapping of ArchConfig fields, "
                            "{arch: {...}} or {model: NAME}")
        if "model" in data:
            return str(data["model"])
        fields = data.get("arch", data)
        if not isinstance(fields, dict):
            raise UserError(f"{config}: arch: {fields!r}: must be a mapping of ArchConfig fields")
        unknown = sorted(set(fields) - set(ArchConfig.field_names()))
        if unknown:
            raise UserError(f"{config}: {unknown[0]}: {fields[unknown[0]]!r}: not an ArchConfig field; "
                            f"fields are {ArchConfig.field_names()}")
    try:
        return spec.fixed_arch(**fields)
    except ValueError as e:
        raise UserError(f"{config or spec.path}: {str(e).splitlines()[0]}") from None


def study_measurement(spec: Any) -> dict[str, Any]:
    """What the spec's study (if it exists) stored about its measurements: the speed objective's scale and
    the proxy's seed noise; else {}."""
    import optuna

    from wfsearch.study import sqlite_path
    from wfsearch.study.naming import default_storage_url

    url = spec.study.storage or default_storage_url(spec.study.name)
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        attrs = optuna.load_study(study_name=spec.study.name, storage=url).user_attrs
    except Exception:  # no such study (or a storage we cannot read): measure on our own
        return {}
    return {k: attrs[k] for k in ("throughput_scale", "seed_noise") if attrs.get(k) is not None}


def measurement_header(device: Any, threads: int, clock: str, dtype: str, batch: int, res: int | str,
                       mode: str = "inference") -> str:
    """One line saying what a throughput figure measured: device, threads, clock, dtype, batch, resolution."""
    from wfsearch.proxy.measure import device_label

    clock_text = "CUDA events" if device.type == "cuda" else \
        {"process": "CPU time of this process", "wall": "wall clock"}.get(clock, clock)
    return (f"# measured on {device_label(device)} ({threads} thread{'s' if threads != 1 else ''}), "
            f"clock: {clock_text}, dtype {dtype}, batch {batch}, resolution {res}, {mode}")


def run(args: argparse.Namespace) -> int:
    import torch

    from wfsearch.proxy.evaluate import evaluate_arch
    from wfsearch.proxy.measure import resolve_device, resolved_clock
    from wfsearch.report.table import Row, describe_arch, header, intervals_of, row_values, text_table
    from wfsearch.space import load_spec
    from wfsearch.study import Status, first_violation

    spec = load_spec(args.spec, args.overrides)
    target = load_target(spec, args.config, args.model)
    check_min(args, 1, "threads")
    # a trial's threads: proxy.num_threads, else what Ray gives a trial (resources.cpus_per_trial, rounded up)
    threads = args.threads or int(spec.proxy.num_threads or max(1, math.ceil(spec.resources.cpus_per_trial)))
    torch.set_num_threads(threads)
    proxy = spec.proxy.model_copy(update={"num_threads": threads})
    measure = spec.throughput
    try:
        device = resolve_device(measure.device)
    except ValueError as e:
        raise UserError(f"{spec.path}: throughput.device: {e}") from None
    known = study_measurement(spec) if not args.no_measure else {}
    scale = (known.get("throughput_scale") or {}).get("img_s")
    name = target if isinstance(target, str) else f"arch {target.hash}"
    print(f"# {name}: proxy {proxy.dataset.name} img {proxy.img_size}, {proxy.max_epochs} epochs"
          + ("" if args.no_measure else "; costs measured first"), flush=True)
    if not args.no_measure:
        print(measurement_header(device, threads, resolved_clock(measure.clock, device), measure.dtype,
                                 measure.batch_size, measure.img_size, "inference"))
        if measure.reference:
            print(f"# speed objective: ratio to {measure.reference} (measured alongside) x "
                  + (f"{scale:.2f} img/s, study {spec.study.name!r}'s pooled reference median" if scale
                     else "this run's reference median (no study to take the scale from)"), flush=True)

    def report(epoch: int, partial) -> None:
        m = partial.metrics
        print(f"epoch {epoch:>3}  accuracy {m['accuracy']:.4f}  loss {m['loss']:.4f}  train loss "
              f"{m.get('train_loss', float('nan')):.4f}  ({m.get('epoch_seconds', float('nan')):.1f}s)", flush=True)

    res = evaluate_arch(target, proxy, None if args.no_measure else spec.throughput, report=report,
                        reject=lambda costs: first_violation(spec.study.constraints, costs),
                        cache_dir=args.cache_dir, reference_img_s=scale, seed_noise=known.get("seed_noise"))
    print(f"status: {res.reason}")
    objectives = spec.objective_names
    values = row_values(res.metrics, objectives)
    spans = {k: iv for k, iv in intervals_of(res.metrics, values).items() if iv[0] < iv[1]}  # one repeat: none
    arch = {"timm_model": target} if isinstance(target, str) else target.to_dict()
    if values:  # the columns, headers and numbers of `run`'s table and `show`
        row = Row(name, None, values, describe_arch(arch, list(spec.space) or None), intervals=spans)
        print("\n".join(text_table([row], "model")))
        raw = res.metrics.get("throughput_img_s")
        print(f"  (objectives: {', '.join(header(o) for o in objectives)}"
              + (f"; {header('throughput')}: the paired speed objective, {raw:.1f} as measured in this run"
                 if raw is not None and "throughput" in values else "")
              + ("; [intervals]: 90%, accuracy: Wilson over the validation images"
                 + (f" and seed noise {known['seed_noise']:.3f}" if known.get("seed_noise") else "")
                 + ", speed: order statistics of the repeats" if spans else "") + ")")
    secs = ", ".join(f"{k} {v:.1f}s" for k, v in res.seconds.items() if k != "train_images_per_s")
    img_s = res.seconds.get("train_images_per_s")
    print(f"time: {secs}" + (f"; training {img_s:.0f} img/s" if img_s else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(res.to_json(), indent=1, default=str))
    return 0 if res.status in (Status.OK, Status.PRUNED) else 1
