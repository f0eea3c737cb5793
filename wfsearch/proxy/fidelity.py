"""Proxy fidelity: does the proxy separate architectures, beyond its own seed-to-seed noise?

`check_fidelity` trains a few sampled architectures with several seeds each and reports the *seed noise*
(pooled within-architecture std of the final accuracy), the *spread* (std across architectures of the
seed-mean accuracy) and their ratio (3x is the quick start's bar); Kendall's tau of the short budget (the
first rung) against the full one, and between two seeds; and the `ProxyQuality` statistics and verdict.
Finished runs go to a JSON-lines file (``results``), so an interrupted check resumes where it stopped.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import statistics
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .quality import ProxyQuality, proxy_quality

log = logging.getLogger(__name__)


@dataclass
class FidelityRow:
    """One architecture: its label, and per seed the accuracy curve (epoch -> accuracy)."""

    label: str
    target: Any  # ArchConfig dict or timm name
    curves: dict[int, dict[int, float]] = field(default_factory=dict)  # seed -> {epoch: accuracy}
    statuses: dict[int, str] = field(default_factory=dict)
    seconds: dict[int, float] = field(default_factory=dict)
    long_curves: dict[int, dict[int, float]] = field(default_factory=dict)  # the longer budget's runs

    def acc(self, epoch: int) -> list[float]:
        return [c[epoch] for c in self.curves.values() if epoch in c]

    def mean(self, epoch: int) -> float:
        a = self.acc(epoch)
        return statistics.fmean(a) if a else float("nan")


@dataclass
class FidelityReport:
    rows: list[FidelityRow]
    seeds: list[int]
    short_epochs: int
    full_epochs: int
    seed_noise: float = float("nan")
    spread: float = float("nan")
    ratio: float = float("nan")
    tau_short_full: float = float("nan")
    tau_seeds: float = float("nan")
    seconds_per_run: float = float("nan")
    quality: ProxyQuality | None = None
    long_epochs: int | None = None

    def to_dict(self) -> dict[str, Any]:
        keys = ("seeds", "short_epochs", "full_epochs", "long_epochs", "seed_noise", "spread", "ratio",
                "tau_short_full", "tau_seeds", "seconds_per_run")
        return {**{k: getattr(self, k) for k in keys},
                "quality": self.quality.to_dict() if self.quality is not None else None,
                "rows": [dataclasses.asdict(r) for r in self.rows]}


def summarize(rows: list[FidelityRow], seeds: list[int], short_epochs: int, full_epochs: int,
              n_val: int | None = None, num_classes: int | None = None,
              long_epochs: int | None = None) -> FidelityReport:
    """Noise, spread, ratio and rank correlations of finished runs; with ``n_val`` and ``num_classes`` also the
    `ProxyQuality` of the sampled architectures (references, which may stay at chance, left out)."""
    from scipy.stats import kendalltau

    rep = FidelityReport(rows, seeds, short_epochs, full_epochs, long_epochs=long_epochs)
    done = [r for r in rows if len(r.acc(full_epochs)) >= 2]
    if len(done) >= 1:
        rep.seed_noise = math.sqrt(statistics.fmean(statistics.variance(r.acc(full_epochs)) for r in done))
    if len(done) >= 2:
        means = [r.mean(full_epochs) for r in done]
        rep.spread = statistics.stdev(means)
        rep.ratio = rep.spread / rep.seed_noise if rep.seed_noise > 0 else float("inf")
        short = [r.mean(short_epochs) for r in done]
        if all(math.isfinite(v) for v in short):
            rep.tau_short_full = float(kendalltau(short, means).statistic)
        a = [r.curves[seeds[0]][full_epochs] for r in done if seeds[0] in r.curves]
        b = [r.curves[seeds[1]][full_epochs] for r in done if seeds[1] in r.curves]
        if len(a) == len(b) == len(done):
            rep.tau_seeds = float(kendalltau(a, b).statistic)
    secs = [s for r in rows for s in r.seconds.values()]
    rep.seconds_per_run = statistics.median(secs) if secs else float("nan")
    sampled = [r for r in rows if not r.label.startswith("ref:")] or rows  # references are not a sample
    if n_val and num_classes and sampled:
        def grid(curves_of: Callable[[FidelityRow], dict], epoch: int) -> np.ndarray:
            return np.array([[curves_of(r).get(s, {}).get(epoch, np.nan) for s in seeds] for r in sampled], float)

        final, rung1 = grid(lambda r: r.curves, full_epochs), grid(lambda r: r.curves, short_epochs)
        long = grid(lambda r: r.long_curves, long_epochs) if long_epochs else None
        if long is not None and np.isnan(long).all():
            long = None
        rep.quality = proxy_quality(final, rung1=rung1, long=long, n_val=n_val, num_classes=num_classes)
        rep.quality.tau_long_label = f"{long_epochs} epochs"
        if math.isfinite(rep.quality.seed_noise):  # one seed noise: that of the sample, as the verdict's
            rep.seed_noise = rep.quality.seed_noise
            if math.isfinite(rep.spread):
                rep.ratio = rep.spread / rep.seed_noise if rep.seed_noise > 0 else float("inf")
    return rep


def _train_one(target: Any, proxy: dict, seed: int, threads: int | None) -> tuple[dict[int, float], str, float]:
    """One proxy training (no measurement) of the JSON ``proxy`` section; ({epoch: accuracy}, status, seconds)."""
    import torch

    from wfsearch.models import ArchConfig

    from .evaluate import evaluate_arch

    if threads:
        torch.set_num_threads(threads)
    what = ArchConfig.from_dict(target) if isinstance(target, dict) else target
    res = evaluate_arch(what, {**proxy, "seed": seed}, None, measure=False)
    return {c["epoch"]: c["accuracy"] for c in res.curve}, res.status, res.seconds.get("train", float("nan"))


def scaled_budget(proxy: dict, factor: int) -> dict:
    """The proxy section trained ``factor`` x longer: every rung and the warm-up scaled alike."""
    return {**proxy, "epochs": [e * factor for e in proxy["epochs"]],
            "warmup_epochs": proxy.get("warmup_epochs", 0) * factor}


def check_fidelity(spec: Any, n_archs: int = 6, seeds: tuple[int, ...] = (0, 1), sample_seed: int = 0,
                   short_epochs: int | None = None, workers: int = 1, include_references: bool = False,
                   on_result: Callable[[FidelityRow, int], None] | None = None, long_factor: int | None = None,
                   results: str | Path | None = None, long_seeds: int | None = None) -> FidelityReport:
    """Train ``n_archs`` architectures sampled from ``spec`` (``sample_seed``) with every seed in ``seeds`` at
    the full proxy budget (and ``long_factor`` x longer), then `summarize`. ``workers > 1``: that many
    single-threaded processes. ``include_references`` adds the spec's architecture references. ``results``:
    a JSON-lines file of finished runs, read first and appended to.
    """
    rows = sample_rows(spec, n_archs, sample_seed, include_references)
    return train_rows(spec, rows, seeds, short_epochs=short_epochs, workers=workers, on_result=on_result,
                      long_factor=long_factor, results=results, long_seeds=long_seeds)


def sample_rows(spec: Any, n_archs: int, sample_seed: int = 0, include_references: bool = False) -> list[FidelityRow]:
    """The spec's references (with ``include_references``) and ``n_archs`` distinct random architectures."""
    from wfsearch.space import random_samples

    rows: list[FidelityRow] = []
    seen: set[str] = set()
    if include_references:
        for ref in spec.reference_archs():
            if ref.arch is not None and ref.arch.hash not in seen:
                seen.add(ref.arch.hash)
                rows.append(FidelityRow(f"ref:{ref.name}", ref.arch.to_dict()))
    draws = 0
    while sum(not r.label.startswith("ref:") for r in rows) < n_archs and draws < 20 * n_archs:
        batch = random_samples(spec, n_archs * 2, seed=sample_seed + draws)
        draws += len(batch)
        for s in batch:
            if s.arch is None or s.arch.hash in seen:
                continue
            seen.add(s.arch.hash)
            rows.append(FidelityRow(_label(s.params), s.arch.to_dict()))
            if sum(not r.label.startswith("ref:") for r in rows) >= n_archs:
                break
    return rows


def train_rows(spec: Any, rows: list[FidelityRow], seeds: tuple[int, ...], *, short_epochs: int | None = None,
               workers: int = 1, on_result: Callable[[FidelityRow, int], None] | None = None,
               long_factor: int | None = None, results: str | Path | None = None,
               long_seeds: int | None = None) -> FidelityReport:
    """Train every row with every seed (the ``long_factor`` budget with the first ``long_seeds``), then
    `summarize`; see `check_fidelity`."""
    from .data import load_dataset

    proxy = spec.proxy.model_dump(mode="json")
    full = spec.proxy.max_epochs
    short = short_epochs or spec.proxy.epochs[0]
    if short == full and len(spec.proxy.epochs) > 1:
        short = spec.proxy.epochs[0]
    budgets = {1: proxy} | ({long_factor: scaled_budget(proxy, long_factor)} if long_factor else {})
    jobs = [(row, seed, f) for f in budgets for row in rows
            for seed in (seeds if f == 1 else seeds[:long_seeds or len(seeds)])]
    done = _read_results(results)
    log.info("proxy check: %d architectures x %d seeds, %d epochs each", len(rows), len(seeds), full)

    def record(row: FidelityRow, seed: int, factor: int, out: tuple) -> None:
        if results is not None and _key(row, seed, budgets[factor]) not in done:
            with open(results, "a") as fh:
                fh.write(json.dumps({"key": _key(row, seed, budgets[factor]), "label": row.label,
                                     "seed": seed, "factor": factor, "out": out}) + "\n")
        _record(row, seed, factor, out, on_result)

    todo = []
    for row, seed, f in jobs:
        prior = done.get(_key(row, seed, budgets[f]))
        if prior is not None:
            record(row, seed, f, prior)
        else:
            todo.append((row, seed, f))
    if workers <= 1:
        for row, seed, f in todo:
            record(row, seed, f, _train_one(row.target, budgets[f], seed, None))
    elif todo:
        import multiprocessing as mp

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(_train_one, row.target, budgets[f], seed, 1): (row, seed, f)
                       for row, seed, f in todo}
            for fut in as_completed(futures):
                row, seed, f = futures[fut]
                record(row, seed, f, fut.result())
    data = load_dataset(spec.proxy)
    return summarize(rows, list(seeds), short, full, n_val=len(data.val), num_classes=data.num_classes,
                     long_epochs=full * long_factor if long_factor else None)


def _key(row: FidelityRow, seed: int, proxy: dict) -> str:
    return json.dumps([row.target, seed, proxy], sort_keys=True)


def _read_results(path: str | Path | None) -> dict[str, tuple]:
    if path is None or not Path(path).is_file():
        return {}
    out = {}
    for line in Path(path).read_text().splitlines():
        try:
            rec = json.loads(line)
            curve, status, secs = rec["out"]
            out[rec["key"]] = ({int(k): v for k, v in curve.items()}, status, secs)
        except (ValueError, KeyError, TypeError):  # a line cut by an interruption
            continue
    return out


def _record(row: FidelityRow, seed: int, factor: int, out: tuple[dict[int, float], str, float],
            on_result: Callable[[FidelityRow, int], None] | None) -> None:
    curve, status, seconds = out
    if factor != 1:
        row.long_curves[seed] = curve
        return
    row.curves[seed], row.statuses[seed], row.seconds[seed] = curve, status, seconds
    if on_result is not None:
        on_result(row, seed)


def _label(params: dict[str, Any]) -> str:
    short = {"fc1_predictor": "fc1", "dwconv_predictor": "dw", "dynamic_blocks": "dyn", "fc1_pool": "pool",
             "dwconv_pool": "dwpool", "rank_ratio": "r"}
    return " ".join(f"{short.get(k, k)}={v}" for k, v in params.items())
