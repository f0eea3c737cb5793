"""What the design space says, knob by knob: throughput-normalized EDFs, matched-pair effects, verdicts.

Radosavovic et al. (2019, 2020), for accuracy against measured throughput. One point per architecture (its
runs averaged). A value's EDF of the proxy error is reweighted over throughput quantile bins to the study's
throughput distribution; bands are percentile bootstraps over architectures (over pairs for pair effects).
A matched pair is two architectures that differ in one knob only. Pure numpy: `design_analysis(view)` reads
a study, `analyze(points)` works on any `DesignPoint`s.
"""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field

import numpy as np

from wfsearch.study import StudySnapshot
from wfsearch.study.record import finite

LEVEL = 0.9  # of every band and interval, as the rest of wfsearch
MAX_VALUES = 12  # a knob with more distinct values (a float range) is not compared value by value
MIN_N = 3  # architectures per value (pairs per effect) below which no interval is drawn
UNBIASED = ("random", "grid")
WORK = 1_000_000  # resampled values per statistic: a larger sample gets fewer resamples (never below 200)


@dataclass(frozen=True)
class Estimate:
    """A statistic and its bootstrap interval (None where there are too few samples for one)."""
    value: float
    low: float | None = None
    high: float | None = None

    def excludes(self, x: float) -> bool:
        return self.low is not None and self.high is not None and not self.low <= x <= self.high

    def text(self, spec: str = "+.3f") -> str:
        band = f" [{self.low:{spec}}, {self.high:{spec}}]" if self.low is not None and self.high is not None else ""
        return f"{self.value:{spec}}" + band


@dataclass(frozen=True)
class DesignPoint:
    """One architecture: knob values (as text), mean accuracy, geometric-mean throughput, and by ``(knob,
    value)`` the key of the architecture that differs from it in that knob only."""
    key: str
    knobs: dict[str, str]
    accuracy: float
    throughput: float
    runs: int = 1
    neighbours: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True)
class Edf:
    """The throughput-normalized EDF of the proxy error of one knob value, with its pointwise band."""
    value: str
    n: int  # architectures
    coverage: float  # share of the study's throughput distribution this value's architectures reach
    accuracy: Estimate  # throughput-normalized mean accuracy
    median_error: float
    errors: tuple[float, ...]  # the grid
    cdf: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]


@dataclass(frozen=True)
class PairEffect:
    """Matched pairs ``value`` against ``baseline`` (where knob ``by`` is ``by_value``): median accuracy
    difference (value - baseline) and median throughput ratio (value / baseline)."""
    value: str
    baseline: str
    pairs: int
    accuracy: Estimate
    throughput_ratio: Estimate
    by_value: str | None = None


@dataclass(frozen=True)
class Verdict:
    best: str
    runner_up: str | None
    difference: Estimate | None  # normalized accuracy, best - runner-up, at matched throughput
    decided: bool
    more_needed: int | None  # architectures to add (at this study's mix) for the band to exclude 0
    text: str


@dataclass(frozen=True)
class Difference:
    """Normalized mean accuracy of ``a`` minus ``b`` over the throughput bins both reach (``shared`` of the study)."""
    a: str
    b: str
    accuracy: Estimate | None
    shared: float


@dataclass(frozen=True)
class KnobAnalysis:
    knob: str
    values: tuple[str, ...]
    baseline: str
    edfs: tuple[Edf, ...]
    effects: tuple[PairEffect, ...]
    verdict: Verdict
    differences: tuple[Difference, ...] = ()  # every two values with enough architectures

    def difference(self, a: str, b: str) -> Difference | None:
        return _difference(self.differences, a, b)


def _difference(diffs: tuple[Difference, ...], a: str, b: str) -> Difference | None:
    for d in diffs:  # either order stored
        if (d.a, d.b) == (a, b):
            return d
        if (d.b, d.a) == (a, b):
            return Difference(a, b, d.accuracy and _negated(d.accuracy), d.shared)
    return None


@dataclass(frozen=True)
class Interaction:
    """The matched-pair effects of ``knob`` for each value of ``by``."""
    knob: str
    by: str
    effects: tuple[PairEffect, ...]


@dataclass(frozen=True)
class DesignAnalysis:
    architectures: int
    runs: int
    level: float
    seed_noise: float | None
    seed_noise_source: str
    caveats: tuple[str, ...]
    knobs: tuple[KnobAnalysis, ...]
    interactions: tuple[Interaction, ...]
    skipped: tuple[str, ...] = ()  # knobs not analysed, with why

    def knob(self, name: str) -> KnobAnalysis | None:
        return next((k for k in self.knobs if k.knob == name), None)


# --------------------------------------------------------------------------- the statistics
class _Boot:
    """Percentile bootstrap with one seeded generator; index matrices have the original sample as row 0."""
    def __init__(self, n_boot: int, level: float, seed: int):
        self.n, self.level, self.rng = n_boot, level, np.random.default_rng(seed)

    def count(self, n: int) -> int:
        return min(self.n, max(200, WORK // max(n, 1)))

    def rows(self, n: int, b: int | None = None) -> np.ndarray:
        """(1 + b, n) indices: the sample itself, then ``b`` resamples."""
        b = self.count(n) if b is None else b
        out = np.empty((1 + b, n), dtype=np.intp)
        out[0] = np.arange(n)
        out[1:] = self.rng.integers(0, n, (b, n))
        return out

    def interval(self, stats: np.ndarray) -> Estimate:
        """``stats[0]`` with the percentile interval of ``stats[1:]`` (none from fewer than 10 finite resamples)."""
        est, boot = float(stats[0]), stats[1:]
        boot = boot[np.isfinite(boot)]
        if boot.size < 10:
            return Estimate(est)
        tail = 100 * (1 - self.level) / 2
        lo, hi = np.percentile(boot, [tail, 100 - tail])
        return Estimate(est, float(lo), float(hi))


def _bin_counts(bins: np.ndarray, nb: int, idx: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Per resample (row of ``idx``), the count (or the sum of ``weights``) of the chosen points per bin."""
    flat = (np.arange(idx.shape[0])[:, None] * nb + bins[idx]).ravel()
    w = None if weights is None else weights[idx].ravel()
    return np.bincount(flat, weights=w, minlength=idx.shape[0] * nb).reshape(idx.shape[0], nb)


def _normalized_mean(p: np.ndarray, counts: np.ndarray, sums: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per resample, the mean with each bin weighted by the study's share ``p`` (over the bins in ``mask``)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(mask, sums / np.where(counts > 0, counts, 1), 0.0)
        return (means * p * mask).sum(1) / (p * mask).sum(1)


def _median_effect(boot: _Boot, values: np.ndarray) -> Estimate:
    """The median with its bootstrap percentile interval; from 1,000 values on computed, not resampled: the m-th
    smallest of n draws is <= the sample's j-th smallest with probability P(Bin(n, j/n) >= m)."""
    n = len(values)
    if n < MIN_N:
        return Estimate(float(np.median(values)))
    if n < 1000:
        return boot.interval(np.median(values[boot.rows(n)], axis=1))
    from scipy.special import bdtrc  # P(Bin(n, p) > k)

    xs, share, tail = np.sort(values), np.arange(1, n + 1) / n, (1 - boot.level) / 2

    def quantile(m: int, q: float) -> float:
        return float(xs[min(int(np.searchsorted(bdtrc(m - 1, n, share), q)), n - 1)])

    middle = (n // 2, n // 2 + 1) if n % 2 == 0 else ((n + 1) // 2,)
    return Estimate(float(np.median(xs)), float(np.mean([quantile(m, tail) for m in middle])),
                    float(np.mean([quantile(m, 1 - tail) for m in middle])))


# --------------------------------------------------------------------------- the analysis
def analyze(points: list[DesignPoint], *, level: float = LEVEL, n_boot: int = 1000, seed: int = 0,
            seed_noise: float | None = None, seed_noise_source: str = "", caveats: tuple[str, ...] = (),
            order: dict[str, list[str]] | None = None, baselines: dict[str, str] | None = None,
            interactions: bool = True) -> DesignAnalysis:
    """Every knob of ``points`` with 2 to `MAX_VALUES` values, and (``interactions``) each one's pair effects per
    value of every other. ``order``: knobs and values in display order; ``baselines``: default the most common."""
    boot = _Boot(n_boot, level, seed)
    order, baselines = order or {}, baselines or {}
    acc = np.array([p.accuracy for p in points], float)
    logt = np.log(np.array([p.throughput for p in points], float))
    by_key = {p.key: i for i, p in enumerate(points)}
    knobs, skipped = [], []
    for name in dict.fromkeys([*order, *(k for p in points for k in p.knobs)]):
        seen = [p.knobs[name] for p in points if name in p.knobs]
        values = [v for v in order.get(name, []) if v in seen] + sorted(set(seen) - set(order.get(name, [])))
        if not seen:
            continue
        if not 2 <= len(values) <= MAX_VALUES:
            skipped.append(f"{name}: {len(values)} value(s) over the trained architectures (2 to {MAX_VALUES} "
                           f"are compared value by value)")
            continue
        knobs.append((name, values))
    code = {name: np.array([p.knobs.get(name) for p in points], dtype=object) for name, _ in knobs}
    out = []
    for name, values in knobs:
        groups = {v: np.flatnonzero(code[name] == v) for v in values}
        base = baselines.get(name) if baselines.get(name) in values else max(values, key=lambda v: len(groups[v]))
        edfs, verdict, diffs = _compare_values(boot, values, groups, acc, logt, len(points))
        # for each other value, the index of the baseline architecture's neighbour with it (-1: none)
        nbr = {v: np.array([by_key.get(p.neighbours.get((name, v)), -1) for p in points]) for v in values if v != base}
        pairs = {v: (i, j[i]) for v, j in nbr.items() for i in [np.flatnonzero((code[name] == base) & (j >= 0))]}
        pairs = {v: (i[code[name][j] == v], j[code[name][j] == v]) for v, (i, j) in pairs.items()}
        out.append((KnobAnalysis(name, tuple(values), base, edfs, tuple(_effects(boot, base, pairs, acc, logt)), verdict,
                                 diffs), pairs))
    tables = []
    for k, pairs in out if interactions else ():
        for other, _ in out:
            if other.knob != k.knob:
                cells = [e for bv in other.values
                         for e in _effects(boot, k.baseline, pairs, acc, logt, (other.knob, bv), code[other.knob])]
                if cells:
                    tables.append(Interaction(k.knob, other.knob, tuple(cells)))
    return DesignAnalysis(len(points), sum(p.runs for p in points), level, seed_noise, seed_noise_source,
                          tuple(caveats), tuple(k for k, _ in out), tuple(tables), tuple(skipped))


def _compare_values(boot: _Boot, values: list[str], groups: dict[str, np.ndarray], acc: np.ndarray, logt: np.ndarray,
                    n_all: int) -> tuple[tuple[Edf, ...], Verdict, tuple[Difference, ...]]:
    """The normalized EDF of each value, the difference of every two, the verdict between the two best."""
    smallest = min(len(g) for g in groups.values())
    nb = int(np.clip(smallest // 3, 1, 10))  # about 3 architectures per bin of the rarest value
    edges = np.quantile(logt, np.linspace(0, 1, nb + 1)[1:-1])
    bins = np.searchsorted(edges, logt, side="right")
    p = np.bincount(bins, minlength=nb) / len(logt)
    err = 1.0 - acc
    grid = np.linspace(err.min(), err.max(), 101)
    at = np.searchsorted(grid, err, side="left")  # each error's first grid point at or above it
    stats = {}
    edfs = []
    n_rows = boot.count(max(len(g) for g in groups.values()))  # one count for all values: they are compared
    for v in values:
        g = groups[v]
        idx = g[boot.rows(len(g), n_rows)]
        counts = _bin_counts(bins, nb, idx)
        sums = _bin_counts(bins, nb, idx, acc)
        mask = counts > 0
        stats[v] = (counts, sums)
        mean = boot.interval(_normalized_mean(p, counts, sums, mask)) if len(g) >= MIN_N else \
            Estimate(float(_normalized_mean(p, counts[:1], sums[:1], mask[:1])[0]))
        # EDF: each architecture weighs p(its bin) / (its value's count in that bin), per resample
        w = np.where(mask, p / np.where(mask, counts, 1), 0.0) / (p * mask).sum(1)[:, None]
        rows = np.arange(idx.shape[0])[:, None]
        flat = (rows * len(grid) + at[idx]).ravel()
        cdf = np.cumsum(np.bincount(flat, weights=w[rows, bins[idx]].ravel(), minlength=idx.shape[0] * len(grid))
                        .reshape(idx.shape[0], len(grid)), axis=1)
        tail = 100 * (1 - boot.level) / 2
        lo, hi = np.percentile(cdf[1:], [tail, 100 - tail], axis=0) if len(cdf) > 1 else (cdf[0], cdf[0])
        median_err = float(grid[min(np.searchsorted(cdf[0], 0.5), len(grid) - 1)])
        edfs.append(Edf(v, len(g), float((p * mask[0]).sum()), mean, median_err, tuple(map(float, grid)),
                        tuple(map(float, cdf[0])), tuple(map(float, lo)), tuple(map(float, hi))))
    diffs = []
    for i, a in enumerate(values):
        for b in values[i + 1:]:
            if min(len(groups[a]), len(groups[b])) >= MIN_N:
                (ca, sa), (cb, sb) = stats[a], stats[b]
                common = (ca > 0) & (cb > 0)  # the bins both values reach, per resample
                est = boot.interval(_normalized_mean(p, ca, sa, common) - _normalized_mean(p, cb, sb, common))
                diffs.append(Difference(a, b, est if common[0].any() else None, float((p * common[0]).sum())))
    edfs, diffs = tuple(edfs), tuple(diffs)
    ranked = sorted((e for e in edfs if e.n >= MIN_N), key=lambda e: -e.accuracy.value)
    if len(ranked) < 2:
        few = ", ".join(f"{e.value} {e.n}" for e in edfs)
        text = f"too few architectures to compare: at least {MIN_N} per value are needed for two values (have {few})"
        return edfs, Verdict(max(edfs, key=lambda e: e.accuracy.value).value, None, None, False, None, text), diffs
    best, runner = ranked[0], ranked[1]
    d = _difference(diffs, best.value, runner.value)
    if d.accuracy is None:
        text = (f"{best.value} and {runner.value} share no throughput range: they cannot be compared at matched "
                f"throughput")
        return edfs, Verdict(best.value, runner.value, None, False, None, text), diffs
    diff = d.accuracy
    if diff.value < 0:  # over the throughput both reach, the runner-up is ahead
        best, runner, diff = runner, best, _negated(diff)
    where = (f"; compared over the {100 * d.shared:.0f}% of the study's throughput distribution both reach"
             if d.shared < 0.5 else "")
    if diff.excludes(0.0):
        text = (f"{best.value} is better at matched throughput: {diff.text()} accuracy over {runner.value}, the "
                f"next best ({best.n} and {runner.n} architectures{where})")
        return edfs, Verdict(best.value, runner.value, diff, True, None, text), diffs
    more = None
    if diff.low is not None and diff.high is not None and abs(diff.value) > 0:
        half = (diff.high - diff.low) / 2
        more = max(1, math.ceil(n_all * ((half / abs(diff.value)) ** 2 - 1)))  # the band shrinks as 1/sqrt(n)
    need = ("more architectures than an interval can be drawn from would be needed" if more is None else
            f"about {more} more architectures would be needed to tell a difference this size "
            f"(the band's half-width is {(diff.high - diff.low) / 2:.3f})")
    text = f"inside the noise: {best.value} leads {runner.value} by {diff.text()}; {need}{where}"
    return edfs, Verdict(best.value, runner.value, diff, False, more, text), diffs


def _effects(boot: _Boot, base: str, pairs: dict[str, tuple[np.ndarray, np.ndarray]], acc: np.ndarray, logt: np.ndarray,
             by: tuple[str, str] | None = None, by_code: np.ndarray | None = None) -> list[PairEffect]:
    """Each value's effect from its matched pairs (baseline index, value index), where the baseline has ``by``."""
    out = []
    for v, (i, j) in pairs.items():
        if by is not None:
            keep = by_code[i] == by[1]
            i, j = i[keep], j[keep]
        if len(i):
            out.append(PairEffect(v, base, len(i), _median_effect(boot, acc[j] - acc[i]),
                                  _exp(_median_effect(boot, logt[j] - logt[i])), by[1] if by else None))
    return out


def _negated(e: Estimate) -> Estimate:
    return Estimate(-e.value, None if e.high is None else -e.high, None if e.low is None else -e.low)


def _exp(e: Estimate) -> Estimate:
    return Estimate(math.exp(e.value), None if e.low is None else math.exp(e.low),
                    None if e.high is None else math.exp(e.high))


# --------------------------------------------------------------------------- from a study
def _text(v) -> str:
    """A knob value as text: as written in the spec, a placement list as JSON."""
    return v if isinstance(v, str) else str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) \
        else json.dumps(v)


def design_points(view: StudySnapshot) -> tuple[list[DesignPoint], float | None, int]:
    """One point per trained architecture (runs averaged; a reused result is not a run), the pooled
    within-architecture standard deviation of accuracy (None without repeats), and how many gave it."""
    from wfsearch.arch import ArchConfig

    runs: dict[str, list] = {}
    for t in view.finished():
        m = view.metrics(t)
        if not (finite(m.get("accuracy")) and finite(m.get("throughput")) and m["throughput"] > 0) or not t.params:
            continue
        key = t.arch_hash or json.dumps(t.params, sort_keys=True, default=str)
        if runs.get(key) and "not trained again" in t.reason:
            continue
        runs.setdefault(key, []).append((t, m["accuracy"], math.log(m["throughput"])))
    # the value a knob's text stands for in an ArchConfig, as the trials stored it
    field_value = {(k, _text(v)): (t.arch or {}).get(k, v) for rs in runs.values() for t, _, _ in rs
                   for k, v in t.params.items()}

    cache: dict[tuple, tuple[dict, str | None]] = {}  # trials of one architecture share its dict as read

    def identity(arch: dict | None, change: tuple = ()) -> str | None:
        """The hash of ``arch`` with ``change`` (knob, value) made (None without a valid arch)."""
        known = cache.get((id(arch), *change))
        if arch and (known is None or known[0] is not arch):
            try:
                h = ArchConfig.from_dict({**arch, **dict([change] if change else [])}).hash
            except (TypeError, ValueError):
                h = None
            known = cache[(id(arch), *change)] = (arch, h)
        return known[1] if arch else None

    points, ident, variances = [], {}, []
    for key, rs in runs.items():
        t = rs[0][0]
        if identity(t.arch) is not None:
            ident[identity(t.arch)] = key  # (without an arch, no neighbours: no matched pairs)
        a = [r[1] for r in rs]
        if len(a) > 1:
            variances.append(statistics.variance(a))
        points.append((key, t, sum(a) / len(a), math.exp(sum(r[2] for r in rs) / len(rs)), len(rs)))
    values: dict[str, list[str]] = {}
    for k, v in field_value:
        values.setdefault(k, []).append(v)
    out = []
    for key, t, a, tput, n in points:
        knobs = {k: _text(v) for k, v in t.params.items()}
        nb = {}
        for k, now in knobs.items():
            for v in values[k]:
                other = ident.get(identity(t.arch, (k, field_value[(k, v)]))) if v != now else None
                if other is not None:
                    nb[(k, v)] = other
        out.append(DesignPoint(key, knobs, a, tput, n, nb))
    noise = math.sqrt(sum(variances) / len(variances)) if variances else None
    return out, noise, len(variances)


def sampling_caveats(view: StudySnapshot) -> list[str]:
    """Why the study's trained architectures are not an unbiased sample of its space, if they are not."""
    study = view.spec.get("study") or {}
    sampler = study.get("sampler")
    if sampler == "auto":
        sampler = "tpe" if int(study.get("trials") or 0) < 100 else "nsga2"
    out = []
    if sampler is None:
        out.append("the study does not record its sampler: if it was not random, these EDFs describe where it "
                   "looked, not the design space")
    elif sampler not in UNBIASED:
        out.append(f"the study's sampler is {sampler}, which samples more where it found good architectures: these "
                   f"EDFs describe where the search looked, not the design space. For design-space answers run a "
                   f"study with study.sampler: random and study.scheduler: {{type: none}}")
    pruned = view.counts()["pruned"]
    if pruned:
        out.append(f"{pruned} trial(s) were stopped early and are left out: the trained architectures are those "
                   f"that survived early stopping (study.scheduler: {{type: none}} trains every one)")
    return out


def design_analysis(view: StudySnapshot, *, level: float = LEVEL, n_boot: int = 1000, seed: int = 0,
                    baselines: dict[str, str] | None = None) -> DesignAnalysis:
    """`analyze` on a study: its ``seed_noise`` (else the spread of repeats), its space's value order, the
    released design as each knob's baseline (unless ``baselines`` names another)."""
    import dataclasses

    from wfsearch.arch import ArchConfig

    points, pooled, n_repeated = design_points(view)
    noise, source = view.user_attrs.get("seed_noise"), "the study's seed_noise (wfsearch proxy-check --record)"
    if not finite(noise):
        noise, source = pooled, (f"the spread of the {n_repeated} architecture(s) run more than once" if pooled
                                 is not None else "")
    space = view.spec.get("space") or {}
    order = {k: [_text(c) for c in (s.get("choice") or [])] for k, s in space.items() if isinstance(s, dict)}
    released = {f.name: _text(f.default) for f in dataclasses.fields(ArchConfig)}
    return analyze(points, level=level, n_boot=n_boot, seed=seed, seed_noise=noise, seed_noise_source=source,
                   caveats=tuple(sampling_caveats(view)), order=order, baselines={**released, **(baselines or {})})
