"""Conditions on a profile's fields or an event's properties, combined with all/any/not.

Written in YAML as ``{field: loyalty_status, op: eq, value: inactive}`` (``property:`` for an
event's properties), or ``{all: [...]}``, ``{any: [...]}``, ``{not: {...}}``. Comparisons
with a missing value are false (``missing`` tests for it), so a half-built profile never
qualifies by accident.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from profilecast.sources.validation import parse_timestamp


class ConditionError(ValueError):
    """A condition is malformed."""


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        return None if v != v else float(v)
    try:
        return float(str(v))
    except ValueError:
        return None


def _cmp(fn: Callable[[float, float], bool]) -> Callable[[Any, Any, datetime], bool]:
    def test(actual: Any, expected: Any, now: datetime) -> bool:
        a, b = _num(actual), _num(expected)
        if a is not None and b is not None:
            return fn(a, b)
        ta, tb = parse_timestamp(actual), parse_timestamp(expected)
        return ta is not None and tb is not None and fn(ta.timestamp(), tb.timestamp())

    return test


def _eq(actual: Any, expected: Any, now: datetime) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return str(actual).lower() == str(expected).lower()
    a, b = _num(actual), _num(expected)
    if a is not None and b is not None:
        return a == b
    return str(actual).strip().lower() == str(expected).strip().lower()


def _age_days(actual: Any, now: datetime) -> float | None:
    ts = parse_timestamp(actual)
    return None if ts is None else (now - ts) / timedelta(days=1)


OPS: dict[str, Callable[[Any, Any, datetime], bool]] = {
    "eq": _eq,
    "ne": lambda a, b, now: not _eq(a, b, now),
    "gt": _cmp(lambda a, b: a > b),
    "gte": _cmp(lambda a, b: a >= b),
    "lt": _cmp(lambda a, b: a < b),
    "lte": _cmp(lambda a, b: a <= b),
    "in": lambda a, b, now: any(_eq(a, x, now) for x in b),
    "not_in": lambda a, b, now: not any(_eq(a, x, now) for x in b),
    "contains": lambda a, b, now: str(b).lower() in str(a).lower(),
    "older_than_days": lambda a, b, now: (d := _age_days(a, now)) is not None and d > float(b),
    "within_days": lambda a, b, now: (d := _age_days(a, now)) is not None and d <= float(b),
}
UNARY = {"exists", "missing"}


def _missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and value != value)


@dataclass(frozen=True)
class Condition:
    """A tree: ``op`` all/any/not with ``children``, or a comparison on ``name``."""

    op: str
    name: str = ""
    value: Any = None
    children: tuple[Condition, ...] = ()

    def test(self, values: dict[str, Any], now: datetime) -> bool:
        if self.op == "all":
            return all(c.test(values, now) for c in self.children)
        if self.op == "any":
            return any(c.test(values, now) for c in self.children)
        if self.op == "not":
            return not self.children[0].test(values, now)
        actual = values.get(self.name)
        if self.op in UNARY:
            return _missing(actual) == (self.op == "missing")
        if _missing(actual):
            return False
        return OPS[self.op](actual, self.value, now)

    def describe(self) -> str:
        if self.op in ("all", "any"):
            joiner = " and " if self.op == "all" else " or "
            return "(" + joiner.join(c.describe() for c in self.children) + ")"
        if self.op == "not":
            return f"not {self.children[0].describe()}"
        if self.op in UNARY:
            return f"{self.name} {self.op}"
        return f"{self.name} {self.op} {self.value!r}"

    def names(self) -> set[str]:
        """Every field or property the condition reads."""
        if self.children:
            return set().union(*(c.names() for c in self.children))
        return {self.name}


def parse_condition(raw: Any, subject: str = "field") -> Condition:
    """Parse ``raw``; ``subject`` is the leaf key (``field`` or ``property``)."""
    if not isinstance(raw, dict) or not raw:
        raise ConditionError(f"a condition is a mapping: all/any/not, or {subject}/op/value")
    for combinator in ("all", "any"):
        if combinator in raw:
            items = raw[combinator]
            if set(raw) != {combinator} or not isinstance(items, list) or not items:
                raise ConditionError(f"{combinator}: takes a non-empty list and nothing beside it")
            return Condition(combinator, children=tuple(parse_condition(c, subject) for c in items))
    if "not" in raw:
        if set(raw) != {"not"}:
            raise ConditionError("not: takes one condition and nothing beside it")
        return Condition("not", children=(parse_condition(raw["not"], subject),))
    name, op = raw.get(subject), raw.get("op", "eq")
    if not isinstance(name, str) or not name:
        raise ConditionError(f"a comparison names its {subject} (keys: {sorted(raw)})")
    extra = sorted(set(raw) - {subject, "op", "value"})
    if extra:
        raise ConditionError(f"unknown key(s) {extra} in the condition on {name}")
    if op not in OPS and op not in UNARY:
        raise ConditionError(f"op {op!r} on {name} is not one of {sorted(OPS) + sorted(UNARY)}")
    if op in UNARY:
        return Condition(op, name)
    if "value" not in raw:
        raise ConditionError(f"op {op} on {name} needs a value")
    value = raw["value"]
    if op in ("in", "not_in") and not isinstance(value, list):
        raise ConditionError(f"op {op} on {name} needs a list value")
    if op in ("older_than_days", "within_days") and _num(value) is None:
        raise ConditionError(f"op {op} on {name} needs a number of days")
    return Condition(op, name, value)
