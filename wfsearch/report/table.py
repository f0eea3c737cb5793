"""The text table of `wfsearch run`'s summary and `show` (units in the headers), and the machine-readable
forms (`show --json`/`--csv`), which carry every trial with raw numbers (`trial_dict`).
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from wfsearch.errors import UserError
from wfsearch.study import StudySnapshot, TrialRecord, loss_sign
from wfsearch.study.labels import MEASURED_SPEED, paired

# metric -> (header with its unit, formatter); the columns of every table, in this order. The two speeds are
# different figures (`wfsearch.study.labels`): the paired objective, derived, and the trial's own measurement
COLUMNS: dict[str, tuple[str, Callable[[float], str]]] = {
    "accuracy": ("accuracy", lambda v: f"{v:.4f}"),
    "throughput": ("img/s paired", lambda v: f"{v:.1f}"),
    "throughput_img_s": ("img/s measured", lambda v: f"{v:.1f}"),
    "throughput_ratio": ("ratio", lambda v: f"{v:.2f}"),
    "params": ("params (M)", lambda v: f"{v / 1e6:.3f}"),
    "macs": ("MACs (G)", lambda v: f"{v / 1e9:.3f}"),
    "memory": ("memory (MB)", lambda v: f"{v / 2**20:.1f}"),
    "latency_highres": ("latency hi-res (ms)", lambda v: f"{v:.2f}"),
}
# counts shown in the unit that fits the table's values (a tiny network's MACs are not 0.002 G)
SCALED = {"params": ("params", 1), "macs": ("MACs", 1)}
PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""))


def column_formats(rows: list[Row], keys: list[str]) -> dict[str, tuple[str, Callable[[Any], str]]]:
    """(header, cell formatter) of each column; ``throughput`` is "img/s measured" where no row is paired."""
    out = {k: column_format(k, [r.values.get(k) for r in rows]) for k in keys}
    if "throughput" in out and not any(r.paired for r in rows if "throughput" in r.values):
        out["throughput"] = (MEASURED_SPEED, out["throughput"][1])
    return out


def column_format(key: str, values) -> tuple[str, Callable[[Any], str]]:
    """(header, cell formatter) of a column: `COLUMNS`' own, but params and MACs take their median's prefix."""
    if key in SCALED:
        shown = sorted(float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v))
        if shown:
            mid = shown[len(shown) // 2]
            scale, prefix = next((s, p) for s, p in PREFIXES if mid >= s or s == 1.0)
            return (f"{SCALED[key][0]} ({prefix or 'count'})",
                    lambda v: MISSING if not _number(v) else f"{float(v) / scale:.3f}" if prefix else f"{v:.0f}")
    return header(key), lambda v: cell(key, v)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# stored names that are the same quantity as a column
ALIASES = {"peak_memory_bytes": "memory", "latency_highres_ms": "latency_highres"}
ARCH_KNOBS = ("fc1_predictor", "dwconv_predictor", "dynamic_blocks", "fc1_pool", "dwconv_pool", "rank_ratio")
MISSING = "-"


@dataclass(frozen=True)
class Row:
    """A row of a table: a trial or a reference, its numbers by metric, its design, how to export it."""
    label: str  # trial number or reference name
    number: int | None
    values: dict[str, float]  # metric -> raw value (objectives and the deployed network's costs)
    arch: str  # the knobs, "key=value ..."
    command: str = ""  # how to export it ("" for references)
    status: str = ""
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)  # 90% intervals of the objectives
    flag: str = ""  # a warning shown in place of the command (a front trial at chance)
    paired: bool = True  # ``throughput`` is the paired objective (else the img/s the trial measured)


def header(key: str) -> str:
    return COLUMNS[key][0] if key in COLUMNS else key


def cell(key: str, v: Any) -> str:
    if not _number(v):
        return MISSING
    return COLUMNS[key][1](float(v)) if key in COLUMNS else f"{v:.4g}"


def row_values(numbers: dict[str, float], objectives: tuple[str, ...] | list[str] = ()) -> dict[str, float]:
    """The numbers a table shows: the columns, then any other objective, under the column names."""
    named = {ALIASES.get(k, k): v for k, v in numbers.items()}
    return {k: named[k] for k in dict.fromkeys((*COLUMNS, *objectives)) if k in named}


def describe_arch(arch: dict | None, knobs: list[str] | None = None) -> str:
    if not arch:
        return ""
    if "timm_model" in arch and len(arch) == 1:
        return f"timm:{arch['timm_model']}"
    keys = [k for k in (knobs or ARCH_KNOBS) if k in arch]
    return " ".join(f"{k.replace('_predictor', '')}={arch[k]}" for k in keys)


def record_row(t: TrialRecord, objectives: tuple[str, ...] | list[str], command: str = "",
               knobs: list[str] | None = None, flag: str = "") -> Row:
    arch = {**(t.arch or {}), **t.params} or ({"timm_model": t.timm_model} if t.timm_model else {})
    numbers = t.numbers(objectives)
    values = row_values(numbers, objectives)
    is_paired = paired(t.costs)
    if not is_paired:
        values.pop("throughput_img_s", None)  # the same figure as throughput
    return Row(label=t.name or str(t.number), number=None if t.kind == "reference" else t.number,
               values=values, arch=describe_arch(arch, knobs), paired=is_paired,
               command=command, status=t.reason, intervals=intervals_of(numbers, objectives or ("accuracy", "throughput")),
               flag=flag)


def intervals_of(numbers: dict[str, float], keys) -> dict[str, tuple[float, float]]:
    """The intervals stored as ``<metric>_low``/``_high`` around the value, by metric (none of zero width)."""
    out = {}
    for k in keys:
        v, lo, hi = numbers.get(k), numbers.get(f"{k}_low"), numbers.get(f"{k}_high")
        if v is not None and lo is not None and hi is not None and lo <= v <= hi and lo < hi:
            out[k] = (lo, hi)
    return out


def columns_of(rows: list[Row]) -> list[str]:
    present = {k for r in rows for k in r.values}
    ordered = [k for k in COLUMNS if k in present]
    return ordered + sorted(present - set(ordered))


def text_table(rows: list[Row], first: str, with_command: bool = False, with_status: bool = False) -> list[str]:
    """Aligned columns: the label, every column known for the rows, the architecture (and export command)."""
    keys = columns_of(rows)
    formats = column_formats(rows, keys)
    head = [first, *(formats[k][0] for k in keys), *(["status"] if with_status else []), "architecture"]
    cells = [[r.label, *(formats[k][1](r.values.get(k)) + (f" [{formats[k][1](r.intervals[k][0])}, "
                                                           f"{formats[k][1](r.intervals[k][1])}]"
                                                           if k in r.intervals else "") for k in keys),
              *([r.status] if with_status else []), r.arch] for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *cells)]
    numeric = [False, *([True] * len(keys)), *([False] if with_status else []), False]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(head), "-" * len(line(head))]
    for r, c in zip(rows, cells):
        out.append(line(c))
        if with_command and (r.command or r.flag):
            out.append(f"    {r.flag or r.command}")
    return out


# --------------------------------------------------------------------------- machine-readable
COST_KEYS = ("throughput", "throughput_ratio", "params", "macs", "memory", "latency_highres")


def trial_dict(snap: StudySnapshot, t: TrialRecord) -> dict[str, Any]:
    """One search trial, every field a reader needs, raw numbers (``show --json``)."""
    numbers = {ALIASES.get(k, k): v for k, v in t.numbers().items()}
    return {
        "number": t.number, "state": t.state.name, "status": t.status.value if t.status else None,
        "group": snap.group(t), "status_reason": t.reason,
        "values": dict(zip(snap.objectives, t.values)) if t.values is not None else None,
        "design": dict(t.params), "proxy_arch": t.arch, "deployed_arch": snap.deployed_arch(t),
        "deployed_costs": {k: numbers[k] for k in COST_KEYS if k in numbers},
        "metrics": t.metrics,
        "arch_hash": t.arch_hash,
    }


def trials_json(snap: StudySnapshot, trials: list[TrialRecord] | None = None) -> str:
    return json.dumps({"study": snap.name, "storage": snap.storage_url, "objectives": list(snap.objectives),
                       "directions": list(snap.directions), "front": sorted(snap.front_numbers),
                       "trials": [trial_dict(snap, t) for t in (snap.trials if trials is None else trials)]},
                      indent=1, default=str)


# measured numbers a CSV row carries with their intervals, besides the objectives
CSV_METRICS = ("throughput_img_s", "throughput_ratio")


def trials_csv(snap: StudySnapshot, trials: list[TrialRecord] | None = None) -> str:
    """One line per trial, flat as Optuna's ``trials_dataframe()`` (``values_<objective>``, ``params_<knob>``,
    ...), with the intervals (``<metric>_low``/``_high``), both speeds and the deployed network's costs."""
    trials = list(snap.trials if trials is None else trials)
    knobs = [k for k in (snap.spec.get("space") or {}) if any(k in t.params for t in trials)]
    knobs += sorted({k for t in trials for k in t.params} - set(knobs))
    extra = [m for m in CSV_METRICS if m not in snap.objectives]
    fields = ["number", "state", "status", "group", "repeat_of", *(f"values_{o}" for o in snap.objectives),
              *(f"{o}{s}" for o in snap.objectives for s in ("_low", "_high")),
              *(f"{m}{s}" for m in extra for s in ("", "_low", "_high")),
              *(f"deployed_{k}" for k in COST_KEYS if k not in ("throughput", "throughput_ratio")),
              "datetime_start", "datetime_complete", "duration_s", *(f"params_{k}" for k in knobs),
              "arch_hash", "status_reason"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for t in trials:
        d = trial_dict(snap, t)
        numbers = {ALIASES.get(k, k): v for k, v in snap.metrics(t).items()}
        start, end = t.datetime_start, t.datetime_complete
        w.writerow({"number": t.number, "state": d["state"], "status": d["status"] or "", "group": d["group"],
                    "repeat_of": snap.repeat_of.get(t.number, ""),
                    **{f"values_{o}": v for o, v in (d["values"] or {}).items()},
                    **{k: v for k, v in numbers.items() if k in fields},
                    **{f"deployed_{k}": v for k, v in d["deployed_costs"].items()},
                    "datetime_start": start or "", "datetime_complete": end or "",
                    "duration_s": (end - start).total_seconds() if start and end else "",
                    **{f"params_{k}": v for k, v in t.params.items()},
                    "arch_hash": t.arch_hash or "", "status_reason": t.reason})
    return buf.getvalue()


def sort_trials(snap: StudySnapshot, trials, key: str | None, top: int | None, reverse: bool = False) -> list:
    """``trials`` best first by ``key`` (trials without it last), the first ``top``; "number" keeps their order."""
    trials = list(trials)
    if key is not None and key != "number":
        known = sorted({k for t in trials for k in snap.metrics(t)} | set(snap.objectives))
        if key not in known:
            raise UserError(f"--sort: {key!r}: unknown; the trials have {known} (or number)")
        # best first: an objective by its direction, any other number largest first
        sign = loss_sign(dict(zip(snap.objectives, snap.directions)).get(key, "maximize")) * (-1 if reverse else 1)
        has = [t for t in trials if key in snap.metrics(t)]
        trials = sorted(has, key=lambda t: (sign * snap.metrics(t)[key], t.number)) + [t for t in trials if t not in has]
    elif reverse:
        trials = trials[::-1]
    if top is not None:
        if top < 1:
            raise UserError(f"--top: {top}: must be >= 1")
        trials = trials[:top]
    return trials
