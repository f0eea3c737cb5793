"""The ``--pick`` language: choose one trial of the Pareto front by a rule (keywords case-insensitive)::

    pick       := ("max" | "min") METRIC [ "where" condition ( ("and" | ",") condition )* ]
    condition  := METRIC (">=" | "<=" | ">" | "<" | "==" | "!=") NUMBER

e.g. ``min params where accuracy >= 0.8 and macs <= 1.5e9``. METRIC is any number stored with a trial (an
objective, a metric or a cost). Only front trials are candidates; one lacking a metric the rule uses is
skipped; ties go to the lowest trial number.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

from wfsearch.errors import UserError
from wfsearch.study import TrialRecord, holds
from wfsearch.suggest import did_you_mean

EXAMPLE = "e.g. 'max accuracy where throughput_ratio >= 1.2'"
_TOKEN = re.compile(r"\s*(?:(?P<op>>=|<=|==|!=|>|<)|(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))"
                    r"|(?P<name>[A-Za-z_][\w.]*)|(?P<comma>,)|(?P<bad>\S))")


@dataclass(frozen=True)
class Condition:
    metric: str
    op: str
    value: float
    digits: int = 17  # significant digits written: == and != compare at that precision (0.2656 matches 0.265625)

    def holds(self, x: float) -> bool:
        if self.op in ("==", "!="):
            x = float(f"{x:.{self.digits}g}")
        return holds(x, self.op, self.value)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


@dataclass(frozen=True)
class Pick:
    goal: str  # "max" or "min"
    metric: str
    where: tuple[Condition, ...] = ()

    @property
    def metrics(self) -> list[str]:
        return [self.metric] + [c.metric for c in self.where if c.metric != self.metric]

    def __str__(self) -> str:
        return f"{self.goal} {self.metric}" + (" where " + " and ".join(map(str, self.where)) if self.where else "")


def _significant_digits(num: str) -> int:
    """``"0.2656"`` -> 4, ``"1.5e6"`` -> 2: the precision a number was written with."""
    return max(1, len(num.lower().split("e")[0].lstrip("+-").replace(".", "").lstrip("0")))


def _fail(text: str, rule: str) -> UserError:
    return UserError(f"--pick: {text!r}: {rule}")


def parse_pick(text: str) -> Pick:
    """Parse a selection rule; a malformed one raises `UserError` naming the problem and an example."""
    def fail(rule: str) -> UserError:
        return _fail(text, f"{rule}; {EXAMPLE}")

    tokens: list[tuple[str, str]] = []
    for m in _TOKEN.finditer(text):
        if m.lastgroup == "bad":
            raise fail(f"unexpected character {m.group('bad')!r}")
        tokens.append((m.lastgroup, m.group(m.lastgroup)))
    if not tokens:
        raise fail("empty rule")
    pos = 0

    def take(expect: str, what: str) -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise fail(f"ends early: expected {what}")
        kind, value = tokens[pos]
        if kind != expect:
            raise fail(f"expected {what} but got {value!r}")
        pos += 1
        return value

    goal = take("name", "'max' or 'min'").lower()
    if goal not in ("max", "min"):
        raise fail(f"must start with 'max' or 'min', not {goal!r}")
    metric = take("name", "a metric name after '" + goal + "'")
    where: list[Condition] = []
    if pos < len(tokens):
        kw = take("name", "'where'")
        if kw.lower() != "where":
            raise fail(f"expected 'where' after '{goal} {metric}' but got {kw!r}")
        while True:
            name = take("name", "a metric name in the condition")
            op = take("op", f"a comparison (>=, <=, >, <, ==, !=) after {name!r}")
            num = take("num", f"a number after '{name} {op}'")
            where.append(Condition(name, op, float(num), _significant_digits(num)))
            if pos >= len(tokens):
                break
            kind, value = tokens[pos]
            if not ((kind == "name" and value.lower() == "and") or kind == "comma"):
                raise fail(f"expected 'and' between conditions but got {value!r}")
            pos += 1
            if pos >= len(tokens):
                raise fail(f"ends after {value!r}: expected another condition")
    return Pick(goal, metric, tuple(where))


def select(trials: Sequence[TrialRecord], pick: Pick, metrics_of: Callable[[TrialRecord], dict[str, float]]) -> TrialRecord:
    """The trial of ``trials`` (the front) that ``pick`` chooses; `UserError` when none qualifies."""
    if not trials:
        raise UserError("--pick: the study has no completed search trial on its front yet; "
                        "wait for the search or export with --trial N")
    table = [(t, metrics_of(t)) for t in trials]
    available = sorted(set().union(*(m.keys() for _, m in table)))
    for name in pick.metrics:
        if name not in available:
            hint = did_you_mean(name, available) or ";"
            raise _fail(str(pick), f"unknown metric {name!r}{hint} the front's trials have {available}")
    candidates = [(t, m) for t, m in table if all(n in m for n in pick.metrics)]
    for cond in pick.where:
        kept = [(t, m) for t, m in candidates if cond.holds(m[cond.metric])]
        if not kept:
            values = [m[cond.metric] for _, m in candidates]
            span = f"; on the front {cond.metric} ranges {min(values):.4g} to {max(values):.4g}" if values else ""
            raise _fail(str(pick), f"no trial of the front ({len(trials)} trials) satisfies "
                                   f"'{cond}' together with the conditions before it{span}; relax the rule")
        candidates = kept
    sign = -1.0 if pick.goal == "max" else 1.0
    return min(candidates, key=lambda tm: (sign * tm[1][pick.metric], tm[0].number))[0]
