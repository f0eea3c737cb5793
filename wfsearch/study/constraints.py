"""The one constraint evaluator: ``metric op bound`` (spec `Constraint`s or ``{"metric", "op", "value"}`` dicts)
against a trial's numbers. Values follow Optuna's ``constraints_func`` convention (``<= 0`` satisfied), relative
to the bound, so the sampler sees violations of different metrics on one scale."""
from __future__ import annotations

import operator
from typing import Any, Callable, Iterable

OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq, "!=": operator.ne,
}


def _parts(c: Any) -> tuple[str, str, float]:
    return (c["metric"], c["op"], float(c["value"])) if isinstance(c, dict) else (c.metric, c.op, float(c.value))


def as_dicts(constraints: Iterable[Any] | None) -> list[dict]:
    """Constraints as ``{"metric", "op", "value"}`` dicts (what crosses process boundaries)."""
    return [dict(zip(("metric", "op", "value"), _parts(c))) for c in constraints or []]


def holds(value: float, op: str, bound: float) -> bool:
    return OPS[op](value, bound)


def evaluate(constraints: Iterable[Any] | None, metrics: dict[str, Any]) -> tuple[list[float], list[str]]:
    """Optuna-style constraint values and every violation (``"params=1.6e+06 violates params <= 1.5e+06"``).
    A constraint on a metric not known yet (accuracy, before training) counts as satisfied."""
    values: list[float] = []
    violated: list[str] = []
    for c in constraints or []:
        metric, op, bound = _parts(c)
        v = metrics.get(metric)
        if v is None:
            values.append(0.0)
            continue
        value = ((v - bound) if op in ("<=", "<") else (bound - v)) / (abs(bound) or 1.0)
        if not holds(v, op, bound) and value <= 0:
            value = 1e-12  # equality violates a strict bound
        values.append(value)
        if value > 0:
            violated.append(f"{metric}={v:.4g} violates {metric} {op} {bound:g}")
    return values, violated


def constraint_values(constraints: Iterable[Any] | None, metrics: dict[str, Any]) -> tuple[list[float], str | None]:
    """`evaluate`, with only the first violation (None when all hold)."""
    values, violated = evaluate(constraints, metrics)
    return values, (violated[0] if violated else None)


def violations(constraints: Iterable[Any] | None, metrics: dict[str, Any]) -> list[str]:
    return evaluate(constraints, metrics)[1]


def first_violation(constraints: Iterable[Any] | None, metrics: dict[str, Any]) -> str | None:
    return constraint_values(constraints, metrics)[1]
