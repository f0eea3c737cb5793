"""A tabulated design space (written by ``benchmarks/tabulate_space.py``): every architecture's measured costs and,
per training seed, its per-epoch validation curve and epoch times (``load_table(folder)``)."""
from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from wfsearch.errors import UserError
from wfsearch.study import Outcome, Proposal, Status
from wfsearch.study.interval import median_interval
from wfsearch.study.outcome import accuracy_metrics, cost_metrics, measured_metrics

COST_COLUMNS = ("params", "macs", "memory", "throughput", "throughput_ratio", "reference_throughput")


@dataclass(frozen=True)
class Epoch:
    epoch: int
    accuracy: float
    loss: float
    seconds: float


@dataclass
class TableArch:
    arch_hash: str
    params: dict[str, Any]  # the knob values that build it
    metrics: dict[str, float]  # measured costs, under the metric names a study uses
    throughput_samples: list[float] = field(default_factory=list)
    throughput_ratio_samples: list[float] = field(default_factory=list)
    measure_seconds: float = 0.0
    device: str | None = None
    clock: str | None = None

    def costs(self) -> dict[str, Any]:
        """Its costs in `measure_arch`'s form (what the table kept of them)."""
        m = self.metrics
        out = {"params": m.get("params"), "macs": m.get("macs"), "peak_memory_bytes": m.get("memory"),
               "throughput_img_s": m.get("throughput"), "throughput_ratio": m.get("throughput_ratio"),
               "reference_throughput": m.get("reference_throughput"), "device": self.device, "clock": self.clock}
        out = {k: v for k, v in out.items() if v is not None and v == v}  # v == v: not NaN
        if self.throughput_samples:
            out["throughput_img_s_samples"] = list(self.throughput_samples)
            out["throughput_img_s_interval"] = median_interval(self.throughput_samples).to_dict()
        if self.throughput_ratio_samples:
            out["ratio_samples"] = list(self.throughput_ratio_samples)
            out["throughput_ratio_interval"] = median_interval(self.throughput_ratio_samples).to_dict()
        return out


@dataclass
class Table:
    path: Path
    meta: dict[str, Any]
    archs: dict[str, TableArch]
    runs: dict[str, dict[int, list[Epoch]]]  # arch hash -> seed -> epochs in order
    status: dict[str, dict[int, str]]  # arch hash -> seed -> ok | diverged | ...

    @property
    def seeds(self) -> list[int]:
        return sorted({s for per in self.runs.values() for s in per})

    def total_train_seconds(self) -> float:
        """Seconds to train every architecture once (the mean over seeds), measurement included."""
        return sum(sum(sum(e.seconds for e in curve) for curve in per.values()) / max(1, len(per))
                   + (self.archs[h].measure_seconds if h in self.archs else 0.0) for h, per in self.runs.items())

    @cached_property
    def reference_img_s(self) -> float | None:
        """The scale of the paired speed objective: the median reference images/s over the table's measurements."""
        refs = [a.metrics["reference_throughput"] for a in self.archs.values()
                if a.metrics.get("reference_throughput", math.nan) == a.metrics.get("reference_throughput")]
        return statistics.median(refs) if refs else None

    def mean_objectives(self, names: list[str]) -> dict[str, list[float]]:
        """The table's true objectives per architecture trained by every seed (accuracy and loss seed-averaged)."""
        out = {}
        for h, per in self.runs.items():
            if h not in self.archs or any(s != Status.OK for s in self.status[h].values()):
                continue
            avg = _average([curve[-1] for curve in per.values()])
            m = {**self.archs[h].metrics, **cost_metrics(self.archs[h].costs(), self.reference_img_s), **avg}
            out[h] = [float(m[n]) for n in names]
        return out

    def front_frequency(self, names: list[str], directions: list[str], draws: int = 200,
                        seed: int = 0) -> dict[str, float]:
        """Per architecture of `mean_objectives`, the share of ``draws`` bootstrap draws (seeds and throughput
        repeats resampled with replacement) in which it is on the Pareto front: 1.0 whatever the noise, 0.1 by
        the luck of one measurement."""
        import random

        rng = random.Random(seed)
        truth = {h: dict(zip(names, v)) for h, v in self.mean_objectives(names).items()}
        finals = {h: [curve[-1] for curve in self.runs[h].values()] for h in truth}  # read once, drawn from often
        count = dict.fromkeys(truth, 0)
        for _ in range(draws):
            values = {}
            for h, runs in finals.items():
                avg = _average([rng.choice(runs) for _ in runs])
                ratios = self.archs[h].throughput_ratio_samples
                if ratios and self.reference_img_s:
                    ratio = statistics.median(rng.choice(ratios) for _ in ratios)
                    avg.update(throughput=ratio * self.reference_img_s, throughput_ratio=ratio)
                values[h] = [float(avg.get(n, truth[h][n])) for n in names]
            for h in _front_keys(values, directions):
                count[h] += 1
        return {h: n / draws for h, n in count.items()}

    def quality(self, n_val: int, num_classes: int) -> tuple[Any, int]:
        """`proxy_quality` of the final and first-rung accuracies of the architectures run with every seed, and
        their count; None (and the count) with fewer than two seeds or three such architectures."""
        import numpy as np

        from wfsearch.proxy.quality import proxy_quality

        seeds = self.seeds
        archs = [h for h, per in self.runs.items() if all(per.get(s) for s in seeds)]
        if len(seeds) < 2 or len(archs) < 3:
            return None, len(archs)
        return proxy_quality(np.array([[self.runs[h][s][-1].accuracy for s in seeds] for h in archs]),
                             rung1=np.array([[self.runs[h][s][0].accuracy for s in seeds] for h in archs]),
                             n_val=n_val, num_classes=num_classes), len(archs)

    def missing(self, arch_hash: str | None, seed: int) -> str | None:
        """Why the table cannot answer for ``arch_hash`` trained with ``seed`` (None when it can)."""
        if arch_hash not in self.archs or arch_hash not in self.runs:
            return f"error: architecture {arch_hash} is not in the table"
        if seed not in self.runs[arch_hash]:
            return f"error: architecture {arch_hash} has no run of seed {seed} in the table (seeds {self.seeds})"
        return None

    def curve(self, p: Proposal) -> list[Epoch]:
        """The epochs of ``p``'s run (its ``proxy.seed``) within its budget (``proxy.epochs[-1]``)."""
        return [e for e in self.runs[p.arch_hash][p.proxy["seed"]] if e.epoch <= p.proxy["epochs"][-1]]

    def outcome(self, p: Proposal, epoch: int | None, settings: dict) -> Outcome:
        """What `wfsearch run` stores for ``p``: pruned after ``epoch``, or (None) at the end of its run."""
        seed = p.proxy["seed"]
        why = self.missing(p.arch_hash, seed)
        if why:
            return Outcome(Status.ERROR, why)
        curve = [e for e in self.curve(p) if epoch is None or e.epoch <= epoch]
        costs = self.archs[p.arch_hash].costs()
        metrics = measured_metrics(costs, self.reference_img_s)
        if curve:
            n_val = int((p.proxy.get("dataset") or {}).get("val_size") or 0)
            metrics.update(accuracy_metrics(curve[-1].accuracy, curve[-1].loss, curve[-1].epoch, n_val,
                                            settings.get("seed_noise")))
        points = [{"epoch": e.epoch, "accuracy": e.accuracy, "loss": e.loss} for e in curve]
        if epoch is not None:
            return Outcome(Status.PRUNED, f"pruned at epoch {epoch}", metrics=metrics, costs=costs, curve=points)
        status = self.status[p.arch_hash][seed]
        if status == Status.OK and curve and curve[-1].epoch >= p.proxy["epochs"][-1]:
            return Outcome(Status.OK, metrics=metrics, costs=costs, curve=points)
        failed = Status.of(status) if status != Status.OK else None
        reason = f"{status if status != Status.OK else 'error: the run ended early'} (table seed {seed})"
        return Outcome(failed or Status.ERROR, reason, metrics=metrics, costs=costs, curve=points)

    def replay(self, p: Proposal, settings: dict, report: Any = None) -> Outcome:
        """``p`` evaluated from the table, reporting after every epoch as a training does (for `TuneEvaluator`)."""
        if not self.missing(p.arch_hash, p.proxy["seed"]) and report is not None:
            for e in self.curve(p)[:-1]:
                partial = self.outcome(p, e.epoch, settings)
                if report(e.epoch, partial):
                    return partial
        return self.outcome(p, None, settings)


def _average(finals: list[Epoch]) -> dict[str, float]:
    n = len(finals)
    return {"accuracy": sum(e.accuracy for e in finals) / n, "loss": sum(e.loss for e in finals) / n}


def _front_keys(values: dict[str, list[float]], directions: list[str]) -> list[str]:
    """The keys of the non-dominated values (an exact tie is on the front with its twin)."""
    from wfsearch.study import nondominated_ranks

    keys = list(values)
    return [k for k, r in zip(keys, nondominated_ranks([values[k] for k in keys], directions)) if r == 0]


def enumerate_space(spec: Any) -> list[tuple[str, dict[str, Any]]]:
    """(arch hash, decoded knob values) for every distinct buildable architecture of ``spec``, in grid order."""
    import itertools

    from wfsearch.space.sampling import arch_from_params

    grid = spec.grid()
    names = list(grid)
    seen: dict[str, dict[str, Any]] = {}
    for values in itertools.product(*(grid[n] for n in names)):
        s = arch_from_params(spec, dict(zip(names, values)))
        if s.feasible and s.arch.hash not in seen:
            seen[s.arch.hash] = s.params
    return list(seen.items())


def _num(v: str) -> float:
    return float(v) if v not in ("", None) else math.nan


def load_table(folder: str | Path) -> Table:
    """Read ``archs.csv``, ``runs.csv`` and ``table.json`` from ``folder``; a clear error when absent."""
    path = Path(folder)
    for name in ("archs.csv", "runs.csv"):
        if not (path / name).is_file():
            raise UserError(f"{path}: --table: no {name} here; give the folder benchmarks/tabulate_space.py wrote "
                            "(for example benchmarks/tables/predictors)")
    meta = json.loads((path / "table.json").read_text()) if (path / "table.json").is_file() else {}
    archs: dict[str, TableArch] = {}
    with open(path / "archs.csv", newline="") as f:
        for row in csv.DictReader(f):
            metrics = {k: _num(row[k]) for k in COST_COLUMNS if row.get(k) not in (None, "")}
            archs[row["arch_hash"]] = TableArch(
                row["arch_hash"], json.loads(row["params_json"]), metrics,
                [float(x) for x in row.get("throughput_samples", "").split()],
                [float(x) for x in row.get("throughput_ratio_samples", "").split()],
                _num(row.get("measure_seconds", "")) if row.get("measure_seconds") else 0.0,
                row.get("device") or None, row.get("clock") or None)
    runs: dict[str, dict[int, list[Epoch]]] = {}
    status: dict[str, dict[int, str]] = {}
    with open(path / "runs.csv", newline="") as f:
        for row in csv.DictReader(f):
            h, seed = row["arch_hash"], int(row["seed"])
            status.setdefault(h, {})[seed] = row["status"]
            curve = runs.setdefault(h, {}).setdefault(seed, [])
            if row["accuracy"] != "":
                curve.append(Epoch(int(row["epoch"]), float(row["accuracy"]), float(row["loss"]),
                                   float(row["epoch_seconds"])))
    for per in runs.values():
        for curve in per.values():
            curve.sort(key=lambda e: e.epoch)
    return Table(path, meta, archs, runs, status)
