"""Cross-field rules of a spec, each failure a `SpecIssue` at the exact key path: field names, conditions,
single values and, where decidable, that every choice can be part of a buildable architecture."""
from __future__ import annotations

import logging
import math
import os
import random
import re
from collections import Counter
from typing import Any, Callable, Optional

from wfsearch.arch import cost
from wfsearch.arch.config import ENUMS, MAX_SIZES, ArchConfig
from wfsearch.gpu import gpu_memory
from wfsearch.suggest import did_you_mean
from wfsearch.urls import missing_driver, safe_url

from .spec import (CIFAR10_CLASSES, DATASET_CLASSES, SYNTHETIC_CLASSES, SYNTHETIC_SIZES, Knob, SpaceSize, SpaceSpec,
                   _is_int, _same, arch_value)
from .timm_names import is_timm_model, timm_model_names

log = logging.getLogger(__name__)

FIELDS = ArchConfig.field_names()
# Fields whose validity ArchConfig decides from the field alone; all others interact (token grid vs pools,
# widths vs rank ratio, placement vs depth), so the whole-space check enumerates their combinations.
SOLO_FIELDS = {"in_chans", "num_classes", "fc1_act", "dwconv_act", "delta_norm", "fc1_pool_mode", "renorm",
               "drop_path_rate", "drop_rate"}
DOMAIN_LIMIT = 256  # a range with more values than this is treated as not enumerable
ENUMERATION_LIMIT = 20_000  # most combinations built to decide feasibility exhaustively
RANDOM_PROBES = 2_000  # random architectures tried when the space is too large to enumerate


class SpecIssue(Exception):
    """A user's mistake at ``path`` (a tuple of keys and list indices); the loader names the file."""

    def __init__(self, path: tuple, value: Any, rule: str):
        super().__init__(rule)
        self.path, self.value, self.rule = path, value, rule


MISSING = type("Missing", (), {"__repr__": lambda self: "(missing)"})()


def check(spec: SpaceSpec) -> tuple[SpaceSpec, tuple[str, ...], SpaceSize]:
    """Resolve and check ``spec``; returns the resolved spec, the knob sampling order and the size."""
    spec = _resolve(spec)
    _check_metrics(spec)
    _check_field_names(spec)
    _check_memory(spec)
    order = _knob_order(spec)
    _check_values(spec)
    size = _analyze(spec, order)
    _check_throughput_sizes(spec)
    _check_references(spec)
    if spec.study.sampler == "grid":
        for name in order:
            if spec.space[name].values(limit=10**6) is None:
                raise SpecIssue(("study", "sampler"), "grid", f"needs a discrete space, but space.{name} is "
                                f"{spec.space[name].describe()}; give it a step or choose another sampler")
    if spec.study.scheduler.type == "mo_asha" and len(spec.proxy.epochs) == 1:
        log.info("%s: proxy.epochs has one rung, so mo_asha cannot stop trials early", spec.path)
    elif spec.study.scheduler.type == "mo_asha" and spec.study.sampler == "gp":
        # Optuna's GP sampler learns from completed trials only: it re-proposes a stopped architecture
        log.warning("%s: study.sampler gp ignores trials mo_asha stopped early and re-proposes them; with mo_asha "
                    "use sampler auto or tpe, or scheduler none with gp (benchmarks/RESULTS-search.md)", spec.path)
    return spec, order, size


def _resolve(spec: SpaceSpec) -> SpaceSpec:
    study, ds = spec.study, spec.proxy.dataset
    if study.name is None:
        raise SpecIssue(("study", "name"), MISSING, "give the study a name (letters, digits, _ . -)")
    storage = study.storage or f"sqlite:///studies/{study.name}/optuna.db"
    n = ds.num_classes
    path = ("proxy", "dataset")
    total = DATASET_CLASSES.get(ds.name)
    if ds.name == "synthetic":
        for key in ("classes", "samples_per_class", "val_samples_per_class"):
            if getattr(ds, key) is not None:
                raise SpecIssue(path + (key,), getattr(ds, key), "applies to cifar10/cifar100/imagefolder only; "
                                                                 "synthetic takes num_classes and train_size")
        lo, hi, default = SYNTHETIC_CLASSES
        if n is not None and not lo <= n <= hi:
            raise SpecIssue(path + ("num_classes",), n, f"the synthetic task has {lo}..{hi} classes (one bit per "
                                                        "attribute two objects may share)")
        n = n or default
    elif ds.classes is not None:
        if n is not None and n != len(ds.classes):
            raise SpecIssue(path + ("num_classes",), n, f"does not match the {len(ds.classes)} listed classes; "
                                                        "drop num_classes")
        for i, c in enumerate(ds.classes):
            if ds.name == "cifar10" and c not in CIFAR10_CLASSES:
                raise SpecIssue(path + ("classes", i), c, "not a CIFAR-10 class"
                                + (did_you_mean(c, CIFAR10_CLASSES) or f"; classes are {list(CIFAR10_CLASSES)}"))
            if ds.classes.index(c) != i:
                raise SpecIssue(path + ("classes", i), c, "listed twice; list each class once")
        n = len(ds.classes)
    elif total is not None:
        if n is not None and n > total:
            raise SpecIssue(path + ("num_classes",), n, f"{ds.name} has {total} classes; num_classes keeps the "
                                                        f"first N, so N <= {total}")
        n = n or total
    elif n is None:
        train = os.path.join(os.path.expanduser(ds.root or ""), "train")
        found = f"; {train} has {sum(1 for e in os.scandir(train) if e.is_dir())} class folders" \
            if ds.root and os.path.isdir(train) else ""
        raise SpecIssue(path + ("num_classes",), MISSING, "imagefolder needs num_classes (keep the first N classes) "
                        "or a classes list, so that the head size is known" + found)
    if ds.name == "imagefolder" and not ds.root:
        raise SpecIssue(path + ("root",), MISSING, "imagefolder needs root: the folder holding train/ and val/")
    root = ds.root if ds.root or total is None or ds.name == "digits" else "data"
    root = os.path.abspath(os.path.expanduser(root)) if root else root
    if 0 < spec.proxy.max_epochs <= spec.proxy.warmup_epochs:
        raise SpecIssue(("proxy", "warmup_epochs"), spec.proxy.warmup_epochs,
                        f"must be below the budget of {spec.proxy.max_epochs} epoch(s) (the last of proxy.epochs); "
                        "lower it (0 for no warm-up) or raise epochs")
    _check_storage(storage)
    prefix = "sqlite:///"  # a relative sqlite path becomes absolute (relative to the current directory)
    if storage.startswith(prefix) and not storage.startswith(prefix + "/") and storage != prefix + ":memory:":
        storage = prefix + os.path.abspath(storage[len(prefix):])
    ds = ds.model_copy(update={"num_classes": n, "root": root})
    return spec.model_copy(update={"study": study.model_copy(update={"storage": storage}),
                                   "proxy": spec.proxy.model_copy(update={"dataset": ds})})


def _check_storage(url: str) -> None:
    """A storage URL SQLAlchemy can parse, of a known database, whose driver is installed."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    where = ("study", "storage")
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as e:
        raise SpecIssue(where, safe_url(url), f"not a database URL ({e}); e.g. sqlite:///studies/NAME/optuna.db or "
                                             "postgresql+psycopg2://user@host/db") from None
    try:
        parsed.get_dialect()
    except NoSuchModuleError:
        raise SpecIssue(where, safe_url(url), f"unknown database {parsed.drivername!r}; use sqlite:///PATH or "
                                             "postgresql+psycopg2://USER@HOST/DB (any SQLAlchemy URL)") from None
    missing = missing_driver(url)
    if missing:
        raise SpecIssue(where, safe_url(url), missing)


def data_root_issue(spec: SpaceSpec) -> Optional[str]:
    """Why the proxy dataset's folder cannot be read (None when it can, or nothing is read): `validate` warns."""
    ds = spec.proxy.dataset
    if ds.name == "imagefolder" and ds.root and not os.path.isdir(os.path.join(ds.root, "train")):
        return f"proxy.dataset.root: {ds.root}: no train/ folder there; root holds train/<class>/ and val/<class>/"
    if ds.name in ("cifar10", "cifar100") and ds.root and not os.path.isdir(ds.root):
        return f"proxy.dataset.root: {ds.root}: no such folder; put the {ds.name} python-format archive there"
    return None


def _check_metrics(spec: SpaceSpec) -> None:
    needs = {"latency_highres": (spec.throughput.highres, "throughput.highres (the resolution to time, e.g. 1024)"),
             "throughput_ratio": (spec.throughput.reference, "throughput.reference (a timm model name)")}
    for i, o in enumerate(spec.study.objectives):
        if o.name in needs and needs[o.name][0] is None:
            raise SpecIssue(("study", "objectives", i, "name"), o.name, f"needs {needs[o.name][1]}")
    for i, c in enumerate(spec.study.constraints):
        if c.metric in needs and needs[c.metric][0] is None:
            raise SpecIssue(("study", "constraints", i), str(c), f"needs {needs[c.metric][1]}")


def _unknown_field(path: tuple, name: str) -> SpecIssue:
    return SpecIssue(path, name, "not an ArchConfig field" + (did_you_mean(name, FIELDS)
                                                              or f"; ArchConfig fields are {FIELDS}"))


def _check_field_names(spec: SpaceSpec) -> None:
    n = spec.proxy.dataset.num_classes
    sections = [(("base",), spec.base)] + [(("references", i, "arch"), r.arch) for i, r in enumerate(spec.references)
                                           if r.arch is not None]
    for k in spec.throughput.arch:
        if k not in FIELDS:
            raise _unknown_field(("throughput", "arch", k), k)
        if k in ("img_size", "num_classes"):
            raise SpecIssue(("throughput", "arch", k), spec.throughput.arch[k],
                            "set by throughput.img_size / the dataset; drop it here")
    for prefix, fields in sections:
        for k, v in fields.items():
            if k not in FIELDS:
                raise _unknown_field(prefix + (k,), k)
            if k == "num_classes" and v != n:
                raise SpecIssue(prefix + (k,), v, f"the proxy dataset has {n} classes; drop num_classes "
                                                  "(it follows proxy.dataset)")
            if k == "in_chans" and v != 3:
                raise SpecIssue(prefix + (k,), v, "the proxy images have 3 channels; drop in_chans")
    for k, knob in spec.space.items():
        if k not in FIELDS:
            raise _unknown_field(("space", k), k)
        if k in ("num_classes", "in_chans"):
            raise SpecIssue(("space", k), _knob_value(knob), f"{k} follows the proxy dataset and cannot be searched")
        if k in spec.base:
            raise SpecIssue(("space", k), _knob_value(knob), f"also fixed in base.{k}; keep one of them (in a spec "
                                                           "that extends another, a null removes an inherited entry)")


def _knob_value(knob: Knob) -> Any:
    """What the user wrote for a knob, for error lines: the choices or [low, high]."""
    return knob.choice if knob.choice is not None else list(knob.range)


def _knob_order(spec: SpaceSpec) -> tuple[str, ...]:
    """Check every ``when`` and order the knobs so that each comes after the knobs it reads."""
    defaults = spec.arch_defaults()
    for name, knob in spec.space.items():
        for f, allowed in knob.when.items():
            path = ("space", name, "when", f)
            if f not in FIELDS:
                raise _unknown_field(path, f)
            if f == name:
                raise SpecIssue(path, allowed, "a knob's condition cannot read the knob itself")
            if not allowed:
                raise SpecIssue(path, allowed, "list at least one value for the condition")
            for j, v in enumerate(allowed):
                rule = _solo_error(f, v, _max_depth(spec))
                if rule:
                    raise SpecIssue(path + (j,), v, f"not a possible {f}: {rule}")
            if f in spec.space:
                other = spec.space[f]
                if not any(other.contains(v) for v in allowed):
                    raise SpecIssue(path, allowed, f"never holds: space.{f} takes none of these values "
                                                   f"({other.describe()}); fix the condition, or drop space.{name} "
                                                   "(a null removes it in a spec that extends this one)")
            else:
                fixed = arch_value(defaults, f)
                if not any(_same(fixed, v) for v in allowed):
                    where = "base" if f in spec.base else "the ArchConfig default"
                    raise SpecIssue(path, allowed, f"never holds: {f} is fixed to {fixed!r} ({where}); "
                                                   f"drop the condition or search {f}")
    order: list[str] = []
    pending = list(spec.space)
    while pending:
        ready = next((k for k in pending if all(f in order or f not in spec.space for f in spec.space[k].when)), None)
        if ready is None:  # a cycle: follow the conditions from the first pending knob until one repeats
            cycle = [pending[0]]
            while cycle.count(cycle[-1]) < 2:
                cycle.append(next(f for f in spec.space[cycle[-1]].when if f in pending))
            cycle = cycle[cycle.index(cycle[-1]):]
            raise SpecIssue(("space", cycle[0], "when"), dict(spec.space[cycle[0]].when),
                            f"circular condition {' -> '.join(cycle)}; a condition may only read knobs that do not "
                            "depend on this one")
        order.append(ready)
        pending.remove(ready)
    return tuple(order)


def _solo_error(field: str, value: Any, depth: Any) -> Optional[str]:
    """Why ``field=value`` is invalid on its own (None when it is valid in some context)."""
    valid_depth = _is_int(depth) and 1 <= depth <= MAX_SIZES["depth"]  # else the depth's own check says why
    ctx: dict[str, Any] = {"fc1_predictor": "none", "dwconv_predictor": "none", "dynamic_blocks": "none",
                           "patch_size": 1, "depth": depth if valid_depth else 17}
    if field == "patch_size" and _is_int(value) and value >= 1:
        ctx["img_size"] = value
    ctx[field] = value
    try:
        ArchConfig(**ctx)
    except (ValueError, TypeError) as e:  # ArchConfig says ``field=value: rule``; keep the rule
        message, prefix = str(e), f"{field}={value!r}: "
        m = re.match(rf"^{re.escape(field)}=.*?: (.*)$", message)
        rule = message[len(prefix):] if message.startswith(prefix) else m.group(1) if m else message
        return rule + (did_you_mean(value, ENUMS[field]) if field in ENUMS else "")
    return None


def _max_depth(spec: SpaceSpec) -> int:
    depths = _values_of(spec, "depth") or [spec.space["depth"].range[1]]
    return max((d for d in depths if _is_int(d)), default=17)


def _check_values(spec: SpaceSpec) -> None:
    depth = _max_depth(spec)
    for section, fields in (("base",), spec.base), (("throughput", "arch"), spec.throughput.arch):
        for f in sorted(fields, key=lambda f: f != "depth"):
            rule = _solo_error(f, fields[f], depth)
            if rule:
                raise SpecIssue(section + (f,), fields[f], rule)
    for f, knob in spec.space.items():
        if knob.choice is not None:
            for i, v in enumerate(knob.choice):
                rule = _solo_error(f, v, depth)
                if rule:
                    raise SpecIssue(("space", f, "choice", i), v, rule)
            continue
        values = knob.values(DOMAIN_LIMIT)
        for i, v in ([(None, v) for v in values] if values is not None else enumerate(knob.range)):
            rule = _solo_error(f, v, depth)
            if rule and i is None:
                raise SpecIssue(("space", f, knob.kind), list(knob.range), f"includes {v!r}, but {rule}")
            if rule:
                raise SpecIssue(("space", f, knob.kind, i), v, rule)


def _values_of(spec: SpaceSpec, field: str) -> Optional[list[Any]]:
    """Every value ``field`` takes in the space (None when it is not enumerable)."""
    if field in spec.space:
        return spec.space[field].values(DOMAIN_LIMIT)
    return [arch_value(spec.arch_defaults(), field)]


def _walk(spec: SpaceSpec, order: tuple[str, ...], branch: set[str], domains: dict[str, list[Any]],
          on_leaf: Callable[[dict[str, Any], list[tuple[str, int]]], None]) -> None:
    """Call ``on_leaf(values, picks)`` for every combination of the active ``branch`` knobs: ``values`` maps
    each to its value, ``picks`` lists (knob, index in domain)."""
    base = spec.arch_defaults()
    knobs = [k for k in order if k in branch]
    values: dict[str, Any] = {}
    picks: list[tuple[str, int]] = []

    def rec(i: int) -> None:
        if i == len(knobs):
            on_leaf(values, picks)
            return
        name = knobs[i]
        if not spec.space[name].active({**base, **values}):
            rec(i + 1)
            return
        for j, v in enumerate(domains[name]):
            values[name] = v
            picks.append((name, j))
            rec(i + 1)
            picks.pop()
        del values[name]

    rec(0)


def _analyze(spec: SpaceSpec, order: tuple[str, ...]) -> SpaceSize:
    knobs, base = spec.space, spec.arch_defaults()
    domains = {k: knobs[k].values(DOMAIN_LIMIT) for k in order}
    drivers = {f for k in knobs.values() for f in k.when if f in knobs}
    continuous = any(knobs[k].cardinality() is None for k in order)
    discrete = lambda names: math.prod(knobs[k].cardinality() or 1 for k in names)  # noqa: E731

    # how many combinations, and which knobs can ever be active (branching only on the drivers)
    combinations: Optional[int] = None
    if all(domains[d] is not None for d in drivers) and math.prod(len(domains[d]) for d in drivers) <= 10**6:
        total, ever_active = [0], set()

        def count(values: dict[str, Any], picks: list[tuple[str, int]]) -> None:
            active = [k for k in order if k not in drivers and knobs[k].active({**base, **values})]
            ever_active.update(values, active)
            total[0] += discrete(active)

        _walk(spec, order, drivers, domains, count)
        combinations = total[0]
        for k in order:
            if k not in ever_active:
                raise SpecIssue(("space", k, "when"), dict(knobs[k].when),
                                "never holds in this space (the knobs it reads are themselves never active "
                                "with these values); fix the condition or drop the knob")

    # which architectures build: exhaustively when the interacting knobs are few enough
    branch = drivers | {k for k in order if k not in SOLO_FIELDS}
    if not (all(domains[k] is not None for k in branch)
            and math.prod(len(domains[k]) for k in branch) <= ENUMERATION_LIMIT):
        _probe_randomly(spec, order)
        return SpaceSize(combinations, None, continuous)
    buildable, built = [0], [0]
    feasible_picks: set[tuple[str, int]] = set()
    seen_picks: set[tuple[str, int]] = set()
    reasons: Counter[str] = Counter()
    first_reason: dict[tuple[str, int], str] = {}

    def build(values: dict[str, Any], picks: list[tuple[str, int]]) -> None:
        seen_picks.update(picks)
        try:
            ArchConfig(**{**base, **values})
        except ValueError as e:
            reasons[str(e)] += 1
            for p in picks:
                first_reason.setdefault(p, str(e))
            return
        built[0] += 1
        feasible_picks.update(picks)
        buildable[0] += discrete([k for k in order if k not in branch and knobs[k].active({**base, **values})])

    _walk(spec, order, branch, domains, build)
    if not built[0]:
        raise _nothing_builds(spec, reasons.most_common(1)[0][0])
    for k in order:
        for j, v in enumerate(knobs[k].choice if k in branch and knobs[k].choice is not None else ()):
            if (k, j) in seen_picks and (k, j) not in feasible_picks:
                raise SpecIssue(("space", k, "choice", j), v, "no architecture in the space can use it "
                                f"({first_reason[(k, j)]}); drop it or change base/space")
    return SpaceSize(combinations, buildable[0], continuous)


def _probe_randomly(spec: SpaceSpec, order: tuple[str, ...]) -> None:
    """A space too large to enumerate: fail only when no random architecture builds."""
    rng = random.Random(0)
    base = spec.arch_defaults()
    reasons: Counter[str] = Counter()
    for _ in range(RANDOM_PROBES):
        values: dict[str, Any] = {}
        for k in order:
            if spec.space[k].active({**base, **values}):
                values[k] = _random_value(spec.space[k], rng)
        try:
            ArchConfig(**{**base, **values})
            return
        except ValueError as e:
            reasons[str(e)] += 1
    raise _nothing_builds(spec, reasons.most_common(1)[0][0], probes=RANDOM_PROBES)


def _random_value(knob: Knob, rng: random.Random) -> Any:
    if knob.choice is not None:
        return rng.choice(knob.choice)
    lo, hi = knob.range
    if knob.log:
        x = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        return min(max(round(x), lo), hi) if knob.int_ is not None else x
    if knob.int_ is not None:
        return rng.randrange(lo, hi + 1, knob.step or 1)
    if knob.step is not None:
        return lo + rng.randrange(knob.cardinality()) * knob.step
    return rng.uniform(lo, hi)


def _field_of(reason: str) -> str:
    """The field an ArchConfig error names (``field=value: rule``)."""
    m = re.match(r"^(\w+)=", reason)
    return m.group(1) if m else ""


def _nothing_builds(spec: SpaceSpec, reason: str, probes: int = 0) -> SpecIssue:
    field = _field_of(reason)
    if field in spec.space:
        path, value = ("space", field), _knob_value(spec.space[field])
    elif field in spec.base:
        path, value = ("base", field), spec.base[field]
    elif field == "img_size":
        path, value = ("proxy", "img_size"), spec.proxy.img_size
    else:  # an ArchConfig default that does not fit what base fixes
        path, value = ("base",), spec.arch_defaults()
    what = f"none of {probes} random architectures of the space builds" if probes else \
        "no architecture in the space can be built"
    fix = "change base or space so that some combination builds"
    if path == ("base",):
        fix = f"{field} keeps its ArchConfig default here; set it (or patch_size, img_size) in base so that it fits"
    return SpecIssue(path, value, f"{what} (e.g. {reason}); {fix}")


def _check_throughput_sizes(spec: SpaceSpec) -> None:
    patches = _values_of(spec, "patch_size") or list(spec.space["patch_size"].range)
    where = "space.patch_size" if "patch_size" in spec.space else "base.patch_size" if "patch_size" in spec.base \
        else "the ArchConfig default"
    for key in ("img_size", "highres"):
        res = getattr(spec.throughput, key)
        for p in patches:
            if res is not None and res % p:
                raise SpecIssue(("throughput", key), res, f"not divisible by patch_size={p} ({where}); "
                                                           f"use a multiple of {p}")


SIZE_FIELDS = ("embed_dim", "depth", "mlp_ratio", "img_size", "patch_size", "kernel_size", "num_classes")
DATA_BYTES_PER_VALUE = 17  # a synthetic image is generated as float32 arrays (about 4 alive) and kept as uint8
# what `_memory_culprit` tries: each key reset to a small value or its default
_RESETS = {("proxy", "batch_size"): 1, ("proxy", "eval_batch_size"): 1, ("proxy", "img_size"): 32,
           ("proxy", "dataset", "num_classes"): 2, ("proxy", "dataset", "train_size"): 1,
           ("proxy", "dataset", "val_size"): 1, ("throughput", "batch_size"): 1, ("throughput", "img_size"): 224,
           ("throughput", "highres_batch_size"): 1, ("throughput", "highres"): None}


def machine_memory() -> tuple[int, str]:
    """Bytes of memory a trial can use here and what they are: RAM, or the first GPU's memory."""
    try:
        gpu = gpu_memory()  # torch is not imported where there can be no GPU
        if gpu:
            return gpu, "GPU memory"
    except Exception:  # no torch build with CUDA: RAM it is
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "RAM"


def _check_memory(spec: SpaceSpec) -> None:
    """The smallest architecture of the space must fit this machine (an estimate: training, evaluation,
    the throughput measurements and the proxy images); too much names the key that shrinks the need most."""
    small = {f: min(v) if (v := spec.space[f].values(limit=DOMAIN_LIMIT)) else spec.space[f].range[0]
             for f in SIZE_FIELDS if f in spec.space}
    have, kind = machine_memory()
    for i, (need, what) in enumerate(_memory_needs(spec, small)):
        if need > have:
            path, value = _memory_culprit(spec, small, i)
            raise SpecIssue(path, value, f"{what} needs about {need / 2**30:.3g} GiB, more than this machine's "
                                         f"{have / 2**30:.3g} GiB of {kind}; lower it")


def _memory_needs(spec: SpaceSpec, small: dict[str, Any]) -> list[tuple[float, str]]:
    """(bytes, what needs them) of each step a trial takes; empty when the base does not build."""
    try:
        proxy = spec.fixed_arch(**small)
        deployed = spec.throughput.deployed(proxy)
        p, d = cost(proxy), cost(deployed)
    except (ValueError, TypeError):
        return []
    px, tp, ds = spec.proxy, spec.throughput, spec.proxy.dataset
    net = f"the smallest proxy network of the space ({p['params']:.3g} parameters)"
    deployed_net = f"the smallest deployed network ({d['params']:.3g} parameters)"
    # inference keeps about two blocks' activations alive at a time, not every block's
    infer = lambda c, arch, b: 4 * c["params"] + 2 * c["activation_bytes"] * b / max(arch.depth, 1)  # noqa: E731
    eval_batch = px.eval_batch_size or 2 * px.batch_size
    needs = [(16 * p["params"] + p["activation_bytes"] * px.batch_size,
              f"training {net} at proxy.batch_size={px.batch_size}"),
             (infer(p, proxy, eval_batch), f"evaluating {net} at a batch of {eval_batch}"),
             (infer(d, deployed, tp.batch_size), f"measuring {deployed_net} at throughput.batch_size={tp.batch_size}")]
    if tp.highres is not None:
        try:
            h = cost(deployed, img_size=tp.highres)
            needs.append((infer(h, deployed, tp.highres_batch_size),
                          f"timing {deployed_net} at throughput.highres={tp.highres}"))
        except ValueError:  # not divisible: `_check_throughput_sizes` says so
            pass
    if ds.name == "synthetic":
        n = [ds.train_size or SYNTHETIC_SIZES[0], ds.val_size or SYNTHETIC_SIZES[1]]
    else:  # what a folder or CIFAR holds is unknown before reading it: the caps that are set
        n = [ds.train_size or 0, ds.val_size or 0]
    pixels = 3 * px.img_size * px.img_size
    needs.append((DATA_BYTES_PER_VALUE * max(n) * pixels + sum(n) * pixels,
                  f"holding {sum(n)} proxy images of {px.img_size} px"))
    return needs


def _with(model: Any, path: tuple, value: Any) -> Any:
    """A copy of ``model`` with the key at ``path`` set to ``value``."""
    inner = _with(getattr(model, path[0]), path[1:], value) if len(path) > 1 else value
    return model.model_copy(update={path[0]: inner})


def _memory_culprit(spec: SpaceSpec, small: dict[str, Any], i: int) -> tuple[tuple, Any]:
    """The key path (and value) whose reset to a default or to the smallest value shrinks need ``i`` most."""
    tp = spec.throughput
    get = lambda path: getattr(get(path[:-1]), path[-1]) if path else spec  # noqa: E731
    candidates = [(path, get(path), _with(spec, path, v), small) for path, v in _RESETS.items()]
    candidates += [(("base", f), spec.base[f], _with(spec, ("base",), {k: v for k, v in spec.base.items()
                                                                       if k != f}), small) for f in spec.base]
    candidates += [(("throughput", "arch", f), v, _with(spec, ("throughput", "arch"),
                                                        {k: w for k, w in tp.arch.items() if k != f}), small)
                   for f, v in tp.arch.items()]
    candidates += [(("space", f), _knob_value(spec.space[f]), spec, {k: v for k, v in small.items() if k != f})
                   for f in small]
    best, best_need = (("base",), dict(spec.base)), _memory_needs(spec, small)[i][0]
    for path, value, variant, variant_small in candidates:
        needs = _memory_needs(variant, variant_small)
        if value is not None and len(needs) > i and needs[i][0] < best_need:
            best, best_need = (path, value), needs[i][0]
    return best


def _check_references(spec: SpaceSpec) -> None:
    seen: set[str] = set()
    for i, r in enumerate(spec.references):
        if r.name in seen:
            raise SpecIssue(("references", i, "name"), r.name, "another reference has this name; names must differ")
        seen.add(r.name)
        if r.arch is None:
            _check_timm_name(("references", i, "model"), r.model)
            continue
        try:
            arch = spec.fixed_arch(**r.arch)
        except ValueError as e:
            field = _field_of(str(e))
            path = ("references", i, "arch") + ((field,) if field in r.arch else ())
            raise SpecIssue(path, r.arch.get(field, dict(r.arch)), f"cannot be built on top of base: {e}") from None
        for key in ("img_size", "highres"):
            res = getattr(spec.throughput, key)
            if res is not None and res % arch.patch_size:
                raise SpecIssue(("references", i, "arch"), dict(r.arch), f"patch_size={arch.patch_size} does "
                                f"not divide throughput.{key}={res}; change one of them")
    if spec.throughput.reference is not None:
        _check_timm_name(("throughput", "reference"), spec.throughput.reference)


def _check_timm_name(path: tuple, name: Any) -> None:
    if not is_timm_model(name):  # read once per process from the cached list (`timm_names`)
        hint = did_you_mean(name, sorted(timm_model_names())) or \
            "; list names with `python -c \"import timm; print(timm.list_models('deit*'))\"`"
        raise SpecIssue(path, name, "not a timm model" + hint)
