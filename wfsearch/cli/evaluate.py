"""``wfsearch evaluate SPEC --config CONFIG.yaml``: one trial's evaluation outside any search."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate one architecture: costs, then the proxy training",
                       description="Run one trial's evaluation (cost measurement, then proxy training with "
                                   "per-epoch validation) for the architecture in CONFIG, on top of the spec's "
                                   "base, and print its objectives. CONFIG is a YAML mapping of ArchConfig fields "
                                   "(like a reference's arch:), {arch: {...}} or {model: <timm name>}; without "
                                   "it, the spec's base architecture.")
    p.add_argument("spec", metavar="SPEC", help="design-space YAML, e.g. spaces/predictors.yaml")
    p.add_argument("--config", metavar="CONFIG.yaml", help="the architecture to evaluate")
    p.add_argument("--model", metavar="NAME", help="evaluate a timm model instead (e.g. deit_tiny_patch16_224)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a key of the spec, the value read as YAML (repeatable)")
    p.add_argument("--no-measure", action="store_true", help="skip the cost and throughput measurement")
    p.add_argument("--cache-dir", metavar="DIR", help="measurement/dataset cache folder (default: none)")
    p.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    p.set_defaults(func=run)


def load_target(spec: Any, config: str | None, model: str | None) -> Any:
    """The `ArchConfig` (base + CONFIG's fields) or timm model name to evaluate."""
    import yaml

    from wfsearch.errors import UserError
    from wfsearch.models import ArchConfig

    if model and config:
        raise UserError("--config and --model: give one of them")
    if model:
        return model
    fields: dict[str, Any] = {}
    if config:
        path = Path(config)
        try:
            data = yaml.safe_load(path.read_text()) or {}
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


def run(args: argparse.Namespace) -> int:
    from wfsearch.proxy.evaluate import ProxySettings, evaluate_arch
    from wfsearch.space import load_spec

    spec = load_spec(args.spec, args.overrides)
    target = load_target(spec, args.config, args.model)
    proxy = ProxySettings.from_spec(spec.proxy, origin=str(spec.path))
    name = target if isinstance(target, str) else f"arch {target.hash}"
    print(f"# {name}: proxy {proxy.data.name} img {proxy.data.img_size}, {proxy.train.epochs} epochs; "
          f"throughput img {spec.throughput.img_size} x batch {spec.throughput.batch_size} on "
          f"{spec.throughput.device}" + ("" if args.no_measure else " (measuring first)"), flush=True)

    from wfsearch.study import first_violation

    def report(epoch: int, metrics: dict[str, float]) -> None:
        print(f"epoch {epoch:>3}  accuracy {metrics['accuracy']:.4f}  loss {metrics['loss']:.4f}  "
              f"train loss {metrics.get('train_loss', float('nan')):.4f}  "
              f"({metrics.get('epoch_seconds', float('nan')):.1f}s)", flush=True)

    res = evaluate_arch(target, proxy, None if args.no_measure else spec.throughput, report=report,
                        reject=lambda costs: first_violation(spec.study.constraints, costs),
                        cache_dir=args.cache_dir)
    print(f"status: {res.reason}")
    objectives = spec.objective_names
    shown = objectives + [m for m in ("accuracy", "throughput", "throughput_ratio", "params", "macs", "memory",
                                      "latency_highres") if m not in objectives]
    for m in shown:
        if m in res.metrics:
            mark = "*" if m in objectives else " "
            print(f"{mark} {m:<18} {_fmt(m, res.metrics[m])}")
    secs = ", ".join(f"{k} {v:.1f}s" for k, v in res.seconds.items())
    print(f"time: {secs}" + (f"; training {res.train_images_per_s:.0f} img/s" if res.train_images_per_s else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(res.to_dict(), indent=1, default=str))
    return 0 if res.status in ("ok", "pruned") else 1


def _fmt(metric: str, v: Any) -> str:
    if metric == "accuracy":
        return f"{v:.4f}"
    if metric == "throughput":
        return f"{v:.1f} img/s"
    if metric == "throughput_ratio":
        return f"{v:.3f}x reference"
    if metric == "memory":
        return f"{v / 2**20:.1f} MiB"
    if metric == "macs":
        return f"{v / 1e9:.3f} G"
    if metric == "params":
        return f"{v / 1e6:.3f} M"
    if metric == "latency_highres":
        return f"{v:.1f} ms/image"
    return f"{v}"
