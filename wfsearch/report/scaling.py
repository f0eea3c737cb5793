"""Cost against resolution for the front and the references: linear in tokens N (∝ resolution²), or quadratic.

Per model: analytic MACs per image (`wfsearch.arch.cost`, or a flop count on the meta device for timm models)
and, unless skipped, the measured throughput (the models interleaved at each resolution).
"""
from __future__ import annotations

import gc
import logging
import math
from dataclasses import dataclass
from typing import Callable

from wfsearch.study import StudySnapshot
from wfsearch.study.record import finite

log = logging.getLogger(__name__)

DEFAULT_RESOLUTIONS = (224, 448, 896)


@dataclass(frozen=True)
class ScalingSeries:
    label: str  # "trial 12" or a reference's name
    kind: str  # "front" | "reference"
    macs: tuple[float | None, ...]  # per image, one per resolution (None: not buildable there)
    throughput: tuple[float | None, ...] = ()  # images/s, one per resolution; () when not measured


@dataclass(frozen=True)
class ScalingData:
    resolutions: tuple[int, ...]
    series: tuple[ScalingSeries, ...]
    measured: bool
    batch_size: int
    device: str
    note: str = ""

    def exponent(self, series: ScalingSeries, what: str = "macs") -> float | None:
        """k in cost per image ∝ N^k (N tokens ∝ resolution²) between the two largest resolutions."""
        ys = series.macs if what == "macs" else series.throughput
        pts = [(r, y) for r, y in zip(self.resolutions, ys) if y is not None and y > 0]
        if len(pts) < 2:
            return None
        (r0, y0), (r1, y1) = pts[-2], pts[-1]
        k = math.log(y1 / y0) / math.log((r1 / r0) ** 2)
        return k if what == "macs" else -k  # throughput is the inverse of the cost per image


def scaling_targets(view: StudySnapshot, max_front: int = 8) -> list[tuple[str, str, dict | str]]:
    """(label, kind, arch dict or timm name): up to ``max_front`` front trials spread along the front (their
    deployed networks), then the references."""
    front = [t for t in view.front if t.arch]
    if len(front) > max_front > 0:
        front.sort(key=lambda t: t.values[0])
        step = (len(front) - 1) / (max_front - 1) if max_front > 1 else 0
        front = [front[round(i * step)] for i in range(max_front)]
    out: list[tuple[str, str, dict | str]] = [(f"trial {t.number}", "front", view.deployed_arch(t))
                                              for t in sorted(front, key=lambda t: t.number)]
    return out + [(str(r.name or f"reference {r.number}"), "reference", r.arch or r.timm_model)
                  for r in view.references if r.arch or r.timm_model]


def macs_at(target: dict | str, img_size: int) -> float | None:
    """MACs of one image at ``img_size``; None when the model cannot be built at that size."""
    try:
        if isinstance(target, dict):
            from wfsearch.arch import ArchConfig, cost

            return float(cost(ArchConfig.from_dict(target), img_size)["macs"])
        return float(_counted_macs(target, img_size))
    except Exception as e:  # not divisible by the patch size, a model without that resolution ...
        log.info("MACs of %s at %d px: %s", target if isinstance(target, str) else "arch", img_size, e)
        return None


def _counted_macs(name: str, img_size: int) -> int:
    """A timm model's MACs (`count_macs`) built on the meta device (no memory, no compute)."""
    import torch
    from wfsearch.proxy.measure import count_macs, create_model_at

    with torch.device("meta"):
        model = create_model_at(name, img_size).eval()
    return count_macs(model, img_size, getattr(model, "in_chans", 3))


def _measure_at(targets: list[tuple[str, str, dict | str]], img_size: int, batch_size: int, device: str,
                dtype: str, repeats: int, clock: str) -> dict[str, float]:
    """Images/s of every target buildable at ``img_size``, interleaved; one at a time after an error (OOM)."""
    from wfsearch.proxy.measure import build_target, measure_throughput

    models = {}
    for label, _, target in targets:
        try:
            models[label] = build_target(target, img_size)[0]
        except Exception as e:
            log.info("%s at %d px: cannot build (%s)", label, img_size, e)
    kw = dict(img_size=img_size, batch_size=batch_size, device=device, dtype=dtype, warmup=1, repeats=repeats,
              iters=1, alternate=True, clock=clock)
    try:
        return {k: v.median for k, v in measure_throughput(models, **kw).items()} if models else {}
    except (RuntimeError, MemoryError) as e:
        log.warning("throughput at %d px (all models together): %s; measuring one at a time", img_size, e)
    out = {}
    for label, model in models.items():
        try:
            out[label] = measure_throughput({label: model}, **kw)[label].median
        except (RuntimeError, MemoryError) as e:
            log.warning("throughput of %s at %d px: %s", label, img_size, str(e).splitlines()[0])
        gc.collect()
    return out


def scaling_data(view: StudySnapshot, resolutions: tuple[int, ...] = DEFAULT_RESOLUTIONS, measure: bool = True,
                 batch_size: int = 1, device: str | None = None, dtype: str | None = None, max_front: int = 8,
                 repeats: int = 3, threads: int | None = 1,
                 on_progress: Callable[[str], None] | None = None) -> ScalingData:
    """MACs (and, with ``measure``, throughput) of the front and the references at each resolution. On a CPU
    with one thread (``threads``) it counts process CPU time, so a shared machine still gives a clean slope."""
    tp = view.spec.get("throughput") or {}
    device = device or tp.get("device") or "auto"
    dtype = dtype or tp.get("dtype") or "float32"
    resolutions = tuple(sorted(set(resolutions)))
    targets = scaling_targets(view, max_front)
    n_front = sum(1 for t in view.front if t.arch)
    note = f"{sum(k == 'front' for _, k, _ in targets)} of {n_front} front trials shown" if n_front > max_front else ""
    macs = {label: tuple(macs_at(target, r) for r in resolutions) for label, _, target in targets}
    tput: dict[str, list[float | None]] = {label: [] for label, _, _ in targets}
    if measure and targets:
        import torch
        from wfsearch.proxy.measure import resolve_device

        dev = resolve_device(device)
        previous_threads = torch.get_num_threads()
        cpu_threads = threads if dev.type == "cpu" and threads else None
        clock = "process" if cpu_threads == 1 else "wall"
        device = str(dev) + (f", {cpu_threads} thread{'s' if cpu_threads > 1 else ''}" if cpu_threads else "")
        if clock == "process":
            device += ", CPU time"
        try:
            if cpu_threads:
                torch.set_num_threads(cpu_threads)
            for r in resolutions:
                if on_progress:
                    on_progress(f"measuring throughput at {r} px ({len(targets)} models, batch {batch_size}, {device})")
                got = _measure_at(targets, r, batch_size, str(dev), dtype, repeats, clock)
                for label in tput:
                    v = got.get(label)
                    tput[label].append(v if finite(v) else None)
        finally:
            torch.set_num_threads(previous_threads)
    series = tuple(ScalingSeries(label=label, kind=kind, macs=macs[label],
                                 throughput=tuple(tput[label]) if measure else ())
                   for label, kind, _ in targets)
    return ScalingData(resolutions=resolutions, series=series, measured=bool(measure and targets),
                       batch_size=batch_size, device=device, note=note)
