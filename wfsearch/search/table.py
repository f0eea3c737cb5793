"""A tabulated design space (written by ``benchmarks/tabulate_space.py``): every architecture's measured
costs and, per training seed, its per-epoch validation curve and epoch times.

    table = load_table("benchmarks/tables/predictors")
    table.archs["774858df099c"].metrics     # params, macs, memory, throughput, throughput_ratio
    table.runs["774858df099c"][0]           # seed 0: [Epoch(epoch=1, accuracy=..., loss=..., seconds=...), ...]
    table.mean_objectives(["accuracy", "throughput"])   # per architecture, accuracy averaged over seeds
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wfsearch.errors import UserError

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
        total = 0.0
        for h, per in self.runs.items():
            total += sum(sum(e.seconds for e in curve) for curve in per.values()) / max(1, len(per))
            total += self.archs[h].measure_seconds if h in self.archs else 0.0
        return total

    def metrics_at(self, arch_hash: str, seed: int, epoch: int | None = None) -> dict[str, float]:
        """The costs with the accuracy and loss of ``seed`` after ``epoch`` (default: the last)."""
        curve = self.runs[arch_hash][seed]
        e = curve[-1] if epoch is None else next(x for x in curve if x.epoch == epoch)
        return {**self.archs[arch_hash].metrics, "accuracy": e.accuracy, "loss": e.loss, "epochs": e.epoch}

    def mean_objectives(self, names: list[str]) -> dict[str, list[float]]:
        """Per architecture (trained by every seed without failure), the objectives with accuracy and
        loss averaged over seeds: the table's true values."""
        out = {}
        for h, per in self.runs.items():
            if h not in self.archs or any(s != "ok" for s in self.status[h].values()):
                continue
            finals = [curve[-1] for curve in per.values()]
            avg = {"accuracy": sum(e.accuracy for e in finals) / len(finals),
                   "loss": sum(e.loss for e in finals) / len(finals)}
            m = {**self.archs[h].metrics, **avg}
            out[h] = [float(m[n]) for n in names]
        return out


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
                _num(row.get("measure_seconds", "")) if row.get("measure_seconds") else 0.0)
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
