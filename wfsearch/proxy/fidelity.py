"""Proxy fidelity: does the proxy separate architectures, beyond its own seed-to-seed noise?

`check_fidelity` trains a handful of architectures sampled from a spec with several seeds each
and reports:

- *seed noise*: the pooled within-architecture standard deviation of the final accuracy,
  ``sqrt(mean_a var_seeds(acc_a))``;
- *spread*: the standard deviation across architectures of their seed-mean accuracy;
- their ratio (a proxy that ranks architectures needs a spread well above the noise; 3x is the
  bar for the shipped quick start);
- Kendall's tau between the seed-mean accuracy at a short budget (by default the first rung,
  read from the same runs, which is what successive halving sees when it stops trials) and at
  the full budget; and between the rankings of two seeds.
"""
from __future__ import annotations

import logging
import math
import statistics
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger(__name__)


@dataclass
class FidelityRow:
    """One architecture: its label, and per seed the accuracy curve (epoch -> accuracy)."""

    label: str
    target: Any  # ArchConfig dict or timm name
    curves: dict[int, dict[int, float]] = field(default_factory=dict)  # seed -> {epoch: accuracy}
    statuses: dict[int, str] = field(default_factory=dict)
    seconds: dict[int, float] = field(default_factory=dict)

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

    def to_dict(self) -> dict[str, Any]:
        return {"seeds": self.seeds, "short_epochs": self.short_epochs, "full_epochs": self.full_epochs,
                "seed_noise": self.seed_noise, "spread": self.spread, "ratio": self.ratio,
                "tau_short_full": self.tau_short_full, "tau_seeds": self.tau_seeds,
                "seconds_per_run": self.seconds_per_run,
                "rows": [{"label": r.label, "target": r.target, "curves": r.curves, "statuses": r.statuses,
                          "seconds": r.seconds} for r in self.rows]}


def summarize(rows: list[FidelityRow], seeds: list[int], short_epochs: int, full_epochs: int) -> FidelityReport:
    """Noise, spread, their ratio and the rank correlations of finished runs."""
    from scipy.stats import kendalltau

    rep = FidelityReport(rows, seeds, short_epochs, full_epochs)
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
    return rep


def _train_one(target: Any, proxy: dict, seed: int, threads: int | None) -> tuple[dict[int, float], str, float]:
    """One proxy training (no cost measurement) in a worker; returns ({epoch: accuracy}, status, seconds)."""
    import torch

    from wfsearch.models import ArchConfig

    from .evaluate import evaluate_arch

    if threads:
        torch.set_num_threads(threads)
    what = ArchConfig.from_dict(target) if isinstance(target, dict) else target
    res = evaluate_arch(what, {**proxy, "seed": seed}, None, measure=False)
    return {c["epoch"]: c["accuracy"] for c in res.curve}, res.status, res.seconds.get("train", float("nan"))


def check_fidelity(spec: Any, n_archs: int = 6, seeds: tuple[int, ...] = (0, 1), sample_seed: int = 0,
                   short_epochs: int | None = None, workers: int = 1, include_references: bool = False,
                   on_result: Callable[[FidelityRow, int], None] | None = None) -> FidelityReport:
    """Train ``n_archs`` architectures sampled from ``spec`` (random sampler, ``sample_seed``) with
    every seed in ``seeds`` for the spec's full proxy budget, then `summarize`.

    ``workers > 1`` trains in that many processes with one thread each. ``include_references``
    adds the spec's architecture references (not timm models) to the sampled ones.
    """
    from wfsearch.space import random_samples

    proxy = spec.proxy.model_dump(mode="json")
    full = spec.proxy.max_epochs
    short = short_epochs or spec.proxy.epochs[0]
    if short == full and len(spec.proxy.epochs) > 1:
        short = spec.proxy.epochs[0]
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
    jobs = [(row, seed) for row in rows for seed in seeds]
    log.info("proxy check: %d architectures x %d seeds, %d epochs each", len(rows), len(seeds), full)
    if workers <= 1:
        for row, seed in jobs:
            _record(row, seed, _train_one(row.target, proxy, seed, None), on_result)
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(_train_one, row.target, proxy, seed, 1): (row, seed) for row, seed in jobs}
            for fut in as_completed(futures):
                row, seed = futures[fut]
                _record(row, seed, fut.result(), on_result)
    return summarize(rows, list(seeds), short, full)


def _record(row: FidelityRow, seed: int, out: tuple[dict[int, float], str, float],
            on_result: Callable[[FidelityRow, int], None] | None) -> None:
    curve, status, seconds = out
    row.curves[seed], row.statuses[seed], row.seconds[seed] = curve, status, seconds
    if on_result is not None:
        on_result(row, seed)


def _label(params: dict[str, Any]) -> str:
    short = {"fc1_predictor": "fc1", "dwconv_predictor": "dw", "dynamic_blocks": "dyn", "fc1_pool": "pool",
             "dwconv_pool": "dwpool", "rank_ratio": "r"}
    return " ".join(f"{short.get(k, k)}={v}" for k, v in params.items())
