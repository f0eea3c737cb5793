"""What the report draws, computed from a `StudySnapshot` as small frozen dataclasses (tested by equality).

Nothing here imports plotly: `figures.py` draws these, `page.py` lays them out.
"""
from __future__ import annotations

import importlib.util
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from wfsearch.study import StudySnapshot, TrialRecord, loss_sign
from wfsearch.study.hypervolume import HypervolumeBox, stored_box, study_box
from wfsearch.study.labels import paired
from wfsearch.study.snapshot import at_chance
from wfsearch.study.noise import NoiseSummary, noise_summary
from wfsearch.study.record import finite

from .table import Row, describe_arch, record_row, row_values

log = logging.getLogger(__name__)

COST_KEYS = ("throughput_ratio", "params", "macs", "peak_memory_bytes", "latency_highres_ms")
MISSING = "n/a"  # a conditional knob a trial did not sample


# --------------------------------------------------------------------------- the Pareto plot
@dataclass(frozen=True)
class Point:
    """One marker of the Pareto plot: a search trial (``number``) or a reference (``number`` None)."""

    group: str  # front | dominated | infeasible | pruned | failed | reference
    number: int | None
    label: str  # "trial 12" or the reference's name
    x: float
    y: float
    fc1: str  # fc1 predictor ("" for a timm reference)
    dwconv: str
    arch: dict
    costs: dict
    status: str
    # the 90% interval of each coordinate (`<metric>_low/_high` of the trial), None when it has none
    x_low: float | None = None
    x_high: float | None = None
    y_low: float | None = None
    y_high: float | None = None


def _bounds(m: dict, name: str, value: float) -> tuple[float | None, float | None]:
    lo, hi = m.get(f"{name}_low"), m.get(f"{name}_high")
    return (lo, hi) if finite(lo) and finite(hi) and lo <= value <= hi else (None, None)


@dataclass(frozen=True)
class ParetoData:
    x: str  # metric on the x axis (throughput by default)
    y: str  # metric on the y axis (accuracy by default)
    x_direction: str | None  # the objective's direction, None when the axis is not an objective
    y_direction: str | None
    points: tuple[Point, ...]
    unplotted: dict[str, int]  # trials per group that have no (x, y) to plot (failed before scoring ...)
    n_objectives: int = 2  # with more than the two axes, the front is not a staircase in this plane
    chance: float | None = None  # chance accuracy of the proxy task, drawn on an accuracy axis
    paired: bool = True  # is ``throughput`` the paired objective (else the img/s measured in each trial)
    deployed: str = ""  # the deployed network's scale, e.g. "224 px, 1000 classes"

    def group(self, name: str) -> list[Point]:
        return [p for p in self.points if p.group == name]


def axes_of(view: StudySnapshot) -> tuple[str, str]:
    """(x, y): throughput against accuracy when they are objectives, else the first two objectives."""
    objs = list(view.objectives)
    y = "accuracy" if "accuracy" in objs else objs[0]
    rest = [o for o in objs if o != y]
    x = "throughput" if "throughput" in rest or not rest else rest[0]
    return x, y


def _coords(view: StudySnapshot, t: TrialRecord, x: str, y: str) -> tuple[float, float] | None:
    m = view.metrics(t)
    curve = t.curve
    for name in (x, y):  # a pruned trial's score so far is the last point of its curve
        if name not in m and curve and finite(curve[-1].get(name)):
            m[name] = float(curve[-1][name])
    return (m[x], m[y]) if x in m and y in m else None


def _costs(view: StudySnapshot, t: TrialRecord) -> dict:
    m = view.metrics(t)
    return {k: m[k] for k in ("accuracy", "throughput", "throughput_img_s", *COST_KEYS, "memory") if k in m}


def _predictors(arch: dict | None) -> tuple[str, str]:
    """(fc1, dwconv) predictors of an architecture, "" where it has none (a timm model)."""
    arch = arch or {}
    return str(arch.get("fc1_predictor", "")), str(arch.get("dwconv_predictor", ""))


def speed_paired(view: StudySnapshot) -> bool:
    """Is the study's ``throughput`` the paired objective (its trials kept per-repeat ratios)?"""
    return any(paired(t.costs) for t in view.trials if t.costs)


def pareto_data(view: StudySnapshot) -> ParetoData:
    x, y = axes_of(view)
    directions = dict(zip(view.objectives, view.directions))
    points: list[Point] = []
    unplotted: dict[str, int] = {}
    for t in view.trials:
        group = view.group(t)
        if group == "repeat":  # the same point as the trial it repeats
            continue
        xy = _coords(view, t, x, y) if group != "running" else None
        if xy is None or (group == "infeasible" and not all(finite(v) and abs(v) < 1e29 for v in xy)):
            unplotted[group] = unplotted.get(group, 0) + 1
            continue
        m = view.metrics(t) if group in ("front", "dominated") else {}
        (xl, xh), (yl, yh) = _bounds(m, x, xy[0]), _bounds(m, y, xy[1])
        points.append(Point(group, t.number, f"trial {t.number}", *xy, *_predictors(t.arch), t.arch or {},
                            _costs(view, t), t.reason, x_low=xl, x_high=xh, y_low=yl, y_high=yh))
    for r in view.references:
        xy = _coords(view, r, x, y)
        name = str(r.name or r.timm_model or f"reference {r.number}")
        if xy is None:
            unplotted["reference"] = unplotted.get("reference", 0) + 1
            continue
        same = [t.number for t in view.trials if r.arch_hash and t.arch_hash == r.arch_hash and t.trained]
        points.append(Point("reference", None, name, *xy, *_predictors(r.arch), r.arch or {"timm_model": r.timm_model},
                            _costs(view, r), "reference" + (f" (the architecture of trial {same[0]})" if same else "")))
    return ParetoData(x=x, y=y, x_direction=directions.get(x), y_direction=directions.get(y),
                      points=tuple(points), unplotted=unplotted, n_objectives=len(view.objectives),
                      chance=view.chance, paired=speed_paired(view), deployed=_deployed_scale(view))


def _deployed_scale(view: StudySnapshot) -> str:
    tp = view.throughput
    classes = (tp.get("arch") or {}).get("num_classes", 1000)
    return f"{tp['img_size']} px, {classes} classes" if tp.get("img_size") else ""


# --------------------------------------------------------------------------- hypervolume over the search
@dataclass(frozen=True)
class HypervolumeStep:
    finished: int  # search trials finished so far (complete, pruned or failed; repeats not counted)
    number: int  # the trial that just finished
    seconds: float | None  # since the first trial started
    hypervolume: float


@dataclass(frozen=True)
class HypervolumeData:
    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    box: HypervolumeBox | None  # the normalized hypervolume's box (None before a trained trial)
    steps: tuple[HypervolumeStep, ...]

    def describe(self) -> str:
        """How the hypervolume is normalized, in words."""
        if self.box is None:
            return "normalized; no trained trial yet"
        if self.box.fixed:
            return (f"normalized in a box fixed for the whole study, so it never falls: each axis scored 0..1 "
                    f"({self.box.describe()}; v is the trial's value)")
        return (f"normalized: each objective scaled from its worst to its best feasible value ({self.box.describe()}), "
                f"reference point {100 * self.box.margin:.0f}% of each range beyond the worst; 1 = one trial best in all")

    @property
    def final(self) -> float:
        return self.steps[-1].hypervolume if self.steps else 0.0


def distinct_trained(view: StudySnapshot) -> list[TrialRecord]:
    """The trained search trials, one per architecture (a re-sample that reused a result is not another point)."""
    out, seen = [], set()
    for t in sorted(view.finished(), key=lambda t: t.number):
        h = t.arch_hash
        if h is None or h not in seen:
            out.append(t)
            seen.add(h)
    return out


def noise_data(view: StudySnapshot) -> NoiseSummary:
    """Which trials are plausibly optimal and which front members are indistinguishable within noise."""
    trials = [t for t in distinct_trained(view) if t.values and all(finite(v) for v in t.values)]
    return noise_summary([(t.number, tuple(t.values), view.metrics(t)) for t in trials], view.objectives,
                         view.directions, [t.number for t in view.front])


def intervals_text(view: StudySnapshot) -> str:
    """What the intervals shown are: their coverage as stored (fewer than 5 repeats: the whole range, under 90%)."""
    seen = set()
    for t in distinct_trained(view):
        iv = t.costs.get("throughput_img_s_interval")
        if isinstance(iv, dict) and finite(iv.get("level")):
            seen.add((round(float(iv["level"]), 3), len(t.costs.get("throughput_img_s_samples") or ())))
    if not seen and not any("accuracy_low" in t.metrics for t in distinct_trained(view)):
        return ""  # a study that stores no interval (a simulated one)
    speed = [("none (1 repeat)" if n <= 1 else f"{level:.0%} (the whole range of {n} repeats; 5 or more reach 90%)"
              if level < 0.9 else f"{level:.0%} (order statistics of {n} repeats)") for level, n in sorted(seen)]
    return ("intervals: accuracy 90% (Wilson, over the validation images); speed "
            + ("; ".join(speed) if speed else "90% (order statistics of the repeats)"))


def hypervolume_data(view: StudySnapshot) -> HypervolumeData:
    distinct = distinct_trained(view)
    feasible = {t.number for t in distinct}
    done = [t for t in view.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
            and t.number not in view.repeat_of]  # a repeat spent no budget and added no point
    done.sort(key=lambda t: (t.datetime_complete is None, t.datetime_complete or 0, t.number))
    box = stored_box(view.user_attrs, view.objectives) or study_box(
        view.objectives, view.directions, chance=view.chance,
        reference_img_s=(view.user_attrs.get("throughput_scale") or {}).get("img_s"),
        first=tuple(distinct[0].values) if distinct else None)
    starts = [t.datetime_start for t in view.trials if t.datetime_start is not None]
    t0 = min(starts) if starts else None
    history = box.history([tuple(t.values) if t.number in feasible else None for t in done]) if box else [0.0] * len(done)
    steps = []
    for i, (t, hv) in enumerate(zip(done, history), 1):
        seconds = (t.datetime_complete - t0).total_seconds() if t0 and t.datetime_complete else None
        steps.append(HypervolumeStep(finished=i, number=t.number, seconds=seconds, hypervolume=hv))
    return HypervolumeData(objectives=view.objectives, directions=view.directions, box=box, steps=tuple(steps))


# --------------------------------------------------------------------------- parameter importances
@dataclass(frozen=True)
class Importances:
    objective: str
    importances: tuple[tuple[str, float], ...]  # (knob, importance), most important first
    note: str = ""  # why there are none, or which knobs were left out
    evaluator: str = ""


def _evaluator() -> tuple[Any, str]:
    """fANOVA (Optuna's default) with scikit-learn installed, else PED-ANOVA."""
    if importlib.util.find_spec("sklearn") is not None:
        return optuna.importance.FanovaImportanceEvaluator(seed=0), "fANOVA"
    return optuna.importance.PedAnovaImportanceEvaluator(), "PED-ANOVA"


class _FixedTrials(optuna.storages.InMemoryStorage):
    """An in-memory storage whose one study holds ``trials`` as given (read-only, never copied)."""

    def __init__(self, trials: list[optuna.trial.FrozenTrial]) -> None:
        super().__init__()
        self.fixed = trials

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Any = None) -> list[optuna.trial.FrozenTrial]:
        return [t for t in self.fixed if states is None or t.state in states]


def _scratch_study(directions: list[str], trials: list[optuna.trial.FrozenTrial]) -> optuna.Study:
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" line
    try:
        return optuna.create_study(storage=_FixedTrials(trials), directions=directions)
    finally:
        optuna.logging.set_verbosity(verbosity)


def importance_data(view: StudySnapshot) -> list[Importances]:
    """Knob importances for each objective over the trained trials (`optuna.importance`)."""
    trials = [t for t in view.finished() if t.params and all(finite(v) for v in t.values)
              and t.number not in view.repeat_of]  # a re-sample told a known result is no new data
    if len(trials) < 2:
        note = f"needs at least 2 trained trials with sampled knobs; the study has {len(trials)}"
        return [Importances(o, (), note) for o in view.objectives]
    # knobs every trial sampled from the same distribution (conditional ones are not comparable)
    dists = [t.trial.distributions for t in trials]
    common = [p for p, d in dists[0].items() if all(ds.get(p) is d or ds.get(p) == d for ds in dists)]
    constant = [p for p in common if len({repr(t.params[p]) for t in trials}) < 2]
    conditional = sorted({p for t in trials for p in t.params} - set(common))
    knobs = [p for p in common if p not in constant]
    left_out = "; ".join(s for s in (f"constant over these trials: {', '.join(constant)}" if constant else "",
                                     f"not sampled by every trial: {', '.join(conditional)}" if conditional else "")
                         if s)
    if not knobs:
        return [Importances(o, (), "no knob takes two values over the trained trials" +
                            (f" ({left_out})" if left_out else "")) for o in view.objectives]
    # the trials handed to Optuna as read: `add_trials` deep-copies each (3 s of a 10,000-trial report)
    scratch = _scratch_study(list(view.directions), [t.trial for t in trials])
    evaluator, name = _evaluator()
    out = []
    for i, obj in enumerate(view.objectives):
        if len({t.values[i] for t in trials}) < 2:
            out.append(Importances(obj, (), f"{obj} is the same for every trained trial", name))
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                imp = optuna.importance.get_param_importances(scratch, evaluator=evaluator, params=knobs,
                                                              target=lambda t, i=i: t.values[i])
        except (ValueError, RuntimeError) as e:  # too few distinct trials for the evaluator, ...
            log.warning("importances for %s: %s", obj, e)
            out.append(Importances(obj, (), f"could not be computed: {str(e).splitlines()[0]}", name))
            continue
        ranked = tuple(sorted(((k, float(v)) for k, v in imp.items()), key=lambda kv: -kv[1]))
        out.append(Importances(obj, ranked, left_out, name))
    return out


# --------------------------------------------------------------------------- parallel coordinates
@dataclass(frozen=True)
class Axis:
    name: str
    values: tuple[float, ...]  # one per trial; a category's index for categorical axes
    categories: tuple[str, ...] = ()  # tick labels of a categorical axis (index -> label)


@dataclass(frozen=True)
class ParallelData:
    numbers: tuple[int, ...]  # trained trials, the front last (drawn on top)
    on_front: tuple[bool, ...]
    axes: tuple[Axis, ...]  # the knobs, then the objectives


def knob_names(view: StudySnapshot, trials: list[TrialRecord]) -> list[str]:
    """The spec's searched fields in spec order, then any other sampled parameter."""
    names = [k for k in (view.spec.get("space") or {}) if any(k in t.params for t in trials)]
    return names + sorted({p for t in trials for p in t.params} - set(names))


def _knob_axis(name: str, trials: list[TrialRecord]) -> Axis:
    """A categorical axis for a choice (``rank_ratio`` 2/4/8: three values, not a range), numeric for a range."""
    values = [t.params.get(name, MISSING) for t in trials]
    dist = next((t.trial.distributions[name] for t in trials if name in t.trial.distributions), None)
    if all(finite(v) for v in values) and not isinstance(dist, CategoricalDistribution):
        return Axis(name, tuple(float(v) for v in values))
    order = [str(c) for c in dist.choices] if isinstance(dist, CategoricalDistribution) else []
    seen = {str(v) for v in values}
    cats = [c for c in order if c in seen] + sorted(seen - set(order) - {MISSING}) + ([MISSING] if MISSING in seen else [])
    return Axis(name, tuple(float(cats.index(str(v))) for v in values), tuple(cats))


def parallel_data(view: StudySnapshot) -> ParallelData | None:
    trials = [t for t in view.finished() if all(finite(v) for v in t.values) and t.number not in view.repeat_of]
    if not trials:
        return None
    trials.sort(key=lambda t: (t.number in view.front_numbers, t.number))
    axes = [_knob_axis(k, trials) for k in knob_names(view, trials)]
    axes += [Axis(o, tuple(float(t.values[i]) for t in trials)) for i, o in enumerate(view.objectives)]
    return ParallelData(numbers=tuple(t.number for t in trials),
                        on_front=tuple(t.number in view.front_numbers for t in trials), axes=tuple(axes))


# --------------------------------------------------------------------------- tables
def chance_flag(t: TrialRecord, chance: float | None, numbers: dict[str, float] | None = None) -> str:
    """Why a trial's accuracy says nothing about its design (at chance), or ""."""
    m = t.numbers(("accuracy",)) if numbers is None else numbers
    if not at_chance(m, chance):
        return ""
    acc, lo, hi = m["accuracy"], m.get("accuracy_low"), m.get("accuracy_high")
    level = f"1/{round(1 / chance)} classes = {chance:.3f}"
    said = (f"accuracy {acc:.3f} is not above {level}" if acc <= chance else
            f"accuracy {acc:.3f} [{lo:.3f}, {hi:.3f}] is within noise of {level}")
    return f"at chance: {said}; its place on the front comes from its speed alone, not worth a full training"


def front_rows(view: StudySnapshot) -> list[Row]:
    """The front, best first on the first objective; a trial at chance gets its flag instead of a command."""
    sign = -loss_sign(view.directions[0])
    rows = []
    for t in sorted(view.front, key=lambda t: (-sign * t.values[0], t.number)):
        flag = chance_flag(t, view.chance, view.metrics(t))
        rows.append(record_row(t, view.objectives, "" if flag else view.export_command(t.number),
                               knob_names(view, [t]) or None, flag=flag))
    return rows


def reference_rows(view: StudySnapshot) -> list[Row]:
    space = list(view.spec.get("space") or []) or None
    return [record_row(r, view.objectives, knobs=space) for r in view.references]


# --------------------------------------------------------------------------- learning curves
@dataclass(frozen=True)
class Curve:
    label: str
    number: int
    group: str  # front | dominated | pruned
    status: str
    fc1: str
    dwconv: str
    epochs: tuple[float, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class CurvesData:
    metric: str
    rungs: tuple[int, ...]  # the proxy's fidelity rungs (where pruning decides), () with one budget
    curves: tuple[Curve, ...]  # dominated and pruned first, the front last (drawn on top)
    chance: float | None = None  # chance accuracy of the proxy task


def curves_data(view: StudySnapshot) -> CurvesData | None:
    """The per-epoch validation curve every trained or pruned trial stored, None when none did."""
    metric = "accuracy" if "accuracy" in view.objectives else view.objectives[0]
    order = {"pruned": 0, "dominated": 1, "front": 2}
    curves = []
    for t in view.trials:
        group = view.group(t)
        points = [(float(c["epoch"]), float(c[metric])) for c in t.curve
                  if finite(c.get("epoch")) and finite(c.get(metric))]
        if group not in order or not points:
            continue
        curves.append(Curve(f"trial {t.number}", t.number, group, t.reason, *_predictors(t.arch),
                            tuple(e for e, _ in points), tuple(v for _, v in points)))
    if not curves:
        return None
    epochs = _proxy_epochs(view)
    rungs = tuple(int(e) for e in epochs if finite(e)) if isinstance(epochs, (list, tuple)) and len(epochs) > 1 else ()
    curves.sort(key=lambda c: (order[c.group], c.number))
    return CurvesData(metric, rungs, tuple(curves), view.chance if metric == "accuracy" else None)


def _proxy_epochs(view: StudySnapshot):
    """The spec's proxy epochs (a list of rungs, or one number), else the first trial's."""
    epochs = (view.spec.get("proxy") or {}).get("epochs")
    return epochs if epochs is not None else next((t.proxy["epochs"] for t in view.trials
                                                   if t.proxy.get("epochs") is not None), None)


# --------------------------------------------------------------------------- every trial, as a table
@dataclass(frozen=True)
class TrialRow:
    number: int
    status: str  # the report's group: front, dominated, pruned, failed, infeasible, running
    reason: str  # the stored status reason ("ok", "pruned at epoch 1", "oom: ...")
    epochs: int | None  # proxy epochs trained
    values: dict[str, float]
    arch: str
    paired: bool = True  # ``throughput`` is the paired objective


def trial_rows(view: StudySnapshot) -> list[TrialRow]:
    """Every search trial, by number, with its state, why it ended so, its scores and its knobs."""
    rows = []
    for t in view.trials:
        curve = t.curve
        epochs = max((int(c["epoch"]) for c in curve if finite(c.get("epoch"))), default=None)
        knobs = {**(t.arch or {}), **t.params}
        values = row_values(view.metrics(t), view.objectives)
        if not paired(t.costs):
            values.pop("throughput_img_s", None)
        rows.append(TrialRow(t.number, view.group(t), t.reason, epochs, values,
                             describe_arch(knobs, knob_names(view, [t]) or None), paired(t.costs)))
    return rows


# --------------------------------------------------------------------------- what the numbers are
def captions(view: StudySnapshot) -> dict[str, str]:
    """``{"accuracy": ..., "throughput": ...}``: what the accuracy is, how the throughput was measured."""
    spec = view.spec
    proxy, tp = spec.get("proxy") or {}, spec.get("throughput") or {}
    ds = proxy.get("dataset") or {}
    epochs = _proxy_epochs(view)
    full = max(epochs) if isinstance(epochs, (list, tuple)) and epochs else epochs
    out = {}
    parts = []
    if full is not None:
        parts.append(f"after {full} epoch{'' if full == 1 else 's'} of proxy training")
    if ds.get("name"):
        task = f"the {ds['name']} proxy task" + (f" ({ds['num_classes']} classes)" if ds.get("num_classes") else "")
        parts.append(f"on {ds['val_size']} validation images of {task}" if ds.get("val_size") else f"on {task}")
    if proxy.get("img_size"):
        parts.append(f"at {proxy['img_size']} px")
    out["accuracy"] = ("accuracy = top-1 of the proxy network " + ", ".join(parts) +
                       " (a ranking signal for the search, not an ImageNet number)") if parts else ""
    measured = next((t.costs for t in view.trials if t.costs.get("device")), {})
    hw = view.user_attrs.get("hardware") or {}
    where = measured.get("device") or (tp.get("device") if tp.get("device") != "auto" else "")
    cond = [f"{tp['img_size']} px" if tp.get("img_size") else "", f"batch {tp['batch_size']}" if tp.get("batch_size") else "",
            str(tp.get("dtype") or ""), f"on {where}" if where else "",
            f"{measured['threads']} thread(s)" if measured.get("threads") else "",
            f"{measured['clock']} clock" if measured.get("clock") else "",
            f"{hw['cpu_count']} CPUs on the machine" if hw.get("cpu_count") else ""]
    arch = tp.get("arch")
    scale = f" of the deployed network ({', '.join(f'{k} {v}' for k, v in arch.items())})" if arch else \
        " of the deployed network"
    cond = [c for c in cond if c]
    scale_attr = view.user_attrs.get("throughput_scale") or {}
    ref, img_s = tp.get("reference") or scale_attr.get("reference"), scale_attr.get("img_s")
    if speed_paired(view) and ref:
        what = (f"throughput = img/s paired{scale}, derived: its ratio to {ref} measured alongside it, times "
                + (f"{ref}'s {img_s:.1f} img/s measured once for the study" if img_s else f"{ref}'s img/s")
                + " (img/s measured: the trial's own figure, which drifts with the machine)")
    else:
        what = f"throughput = img/s measured{scale}" + (f", against {ref}" if ref else "")
    if hw.get("simulated"):
        what += f"; replayed from the table {hw.get('table', '?')}, not measured in this study"
    out["throughput"] = (what + (", at " + ", ".join(cond) if cond else "")) if (cond or hw.get("simulated")) else ""
    return out
