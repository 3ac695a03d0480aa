"""The credit policy section of a rule pack: assessment points, grades, limits, reviews, increases.

A rule file may carry a ``credit_policy`` mapping beside ``groups`` and
``tiers``; its parts may be spread over files, each part defined once::

    credit_policy:
      ratings:                       # external ratings on a 0..1 scale, higher is better
        letters: {AAA: 1.0, BBB: 0.65, D: 0.0}
        scale: {min: 0, max: 100}    # numeric customer ratings
      assessment:
        factors:                     # points per factor: the first band that matches
          - name: current_ratio
            means: liquidity
            missing: 4               # points when the value is not known
            bands:
              - {at_least: 2.0, points: 12}
              - {at_least: 1.0, points: 5}
              - {points: 0}
          - name: avg_days_late_90d
            after: 90d               # scored once the customer is known this long
            bands: [{at_most: 5, points: 10}, {points: -15}]
        grades:                      # best first; the last takes every lower score
          - grade: A
            min_points: 80
            terms_days: 60
            limit: {revenue_share: 0.1, net_worth_share: 0.3, sales_cover_days: 90,
                    max: 1000000, fallback: current}
          - {grade: E, terms_days: 0, limit: {max: 0}}
        rounding: 100                # limits are rounded down to a multiple of this
      review: {every: 90d, tolerance: 0.1, max_increase_share: 0.5}
      increases:                     # what a low-risk customer may earn
        tiers: [low]
        min_utilisation: 0.8
        on_time_for: 180d
        days_late_tolerance: 5
        min_payments: 2
        cooldown: 90d
        actions: [{kind: increase_credit_limit, by_share: 0.25}, {kind: extend_terms, days: 45}]

:func:`parse` checks one file's section and reports every error with its
place, like the rest of :mod:`stream_risk.core.rulefmt`; :func:`conflicts`
checks the parts across the files of a pack; :func:`policy_of` gives the
merged :class:`CreditPolicy` of a compiled rule set (``None``: the pack has no
credit policy, and the engine makes no assessments, reviews or increases).

>>> from stream_risk.core.rulefmt import parse_file
>>> spec, errors = parse_file("credit_policy: {review: {every: soon}}", "p.yaml")
>>> print(errors[0])  # doctest: +NORMALIZE_WHITESPACE
p.yaml:1:33: credit_policy/review: review.every must be a duration like 90s, 15m, 12h, 7d
or 2w, got 'soon'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from yaml.nodes import MappingNode, Node, SequenceNode

from stream_risk.core import creditreport  # noqa: F401  (registers the credit features)
from stream_risk.core.features import REGISTRY
from stream_risk.core.rulefmt import (
    TIERS,
    FileSpec,
    RuleError,
    Where,
    _Collector,
    _duration,
    _mapping,
    _scalar,
    parse_actions,
    parse_file,
)
from stream_risk.core.units import DAY

#: Names a factor may score besides numeric features.
ASSESSMENT_INPUTS: dict[str, str] = {
    "rating_score": "the external rating on a 0..1 scale (higher is better): the latest credit "
    "report's score on its scale, else its rating, else the customer's rating, through "
    "credit_policy.ratings",
}
PARTS = ("ratings", "assessment", "review", "increases")
#: Actions an earned increase may propose.
INCREASE_KINDS = ("increase_credit_limit", "extend_terms")


@dataclass(frozen=True, slots=True)
class Band:
    """Points for a value at least ``at_least`` or at most ``at_most`` (neither: any value)."""

    points: float
    at_least: float | None = None
    at_most: float | None = None

    def matches(self, value: float) -> bool:
        if self.at_least is not None:
            return value >= self.at_least
        if self.at_most is not None:
            return value <= self.at_most
        return True

    def describe(self) -> str:
        if self.at_least is not None:
            return f">= {self.at_least:g}"
        if self.at_most is not None:
            return f"<= {self.at_most:g}"
        return "otherwise"


@dataclass(frozen=True, slots=True)
class Factor:
    """One line of the points table: a feature (or ``rating_score``) and its bands."""

    name: str
    bands: tuple[Band, ...]
    missing: float = 0.0
    #: Scored only once the customer has been known this long (behaviour needs history).
    after: float = 0.0
    means: str | None = None


@dataclass(frozen=True, slots=True)
class LimitRule:
    """How a grade's limit is sized: the smallest available basis, capped at ``max``.

    Bases: ``revenue_share`` of revenue, ``net_worth_share`` of net worth (from the
    customer's financials) and ``sales_cover_days`` of the average daily order
    amount of the last 90 days (the trading history). With none available, the
    limit is ``fallback``: an amount, or ``None`` (written ``current``, the
    default) for the customer's current limit: without information the limit is
    not resized, only capped.
    """

    revenue_share: float | None = None
    net_worth_share: float | None = None
    sales_cover_days: float | None = None
    max: float | None = None
    fallback: float | None = None


@dataclass(frozen=True, slots=True)
class Grade:
    name: str
    #: The lowest total of points of the grade; ``None`` for the last (every lower total).
    min_points: float | None
    terms_days: int
    limit: LimitRule


@dataclass(frozen=True, slots=True)
class Assessment:
    factors: tuple[Factor, ...]
    grades: tuple[Grade, ...]
    rounding: float = 1.0


@dataclass(frozen=True, slots=True)
class Ratings:
    letters: dict[str, float] = field(default_factory=dict)
    scale: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class Review:
    every: float
    #: A recommended limit within this share of the current one keeps it.
    tolerance: float = 0.1
    #: A raise adds at most this share of the current limit.
    max_increase_share: float = 0.5


@dataclass(frozen=True, slots=True)
class Increases:
    """When a customer may be offered more credit (limit or terms), and what."""

    tiers: tuple[str, ...] = ("low",)
    min_utilisation: float = 0.8
    on_time_for: float = 180 * DAY
    days_late_tolerance: float = 5.0
    min_payments: int = 1
    cooldown: float = 90 * DAY
    actions: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class CreditPolicy:
    """The merged credit policy of a rule pack."""

    ratings: Ratings = field(default_factory=Ratings)
    assessment: Assessment | None = None
    review: Review | None = None
    increases: Increases | None = None


@dataclass(slots=True)
class PolicySpec:
    """One file's ``credit_policy`` section: its parts and where each was written."""

    parts: dict[str, Any] = field(default_factory=dict)
    at: dict[str, Where] = field(default_factory=dict)


# ------------------------------------------------------------------ parsing


def _number(
    c: _Collector,
    node: Node | None,
    what: str,
    *,
    low: float | None = None,
    high: float | None = None,
    default: float | None = None,
) -> float | None:
    if node is None:
        return default
    value = _scalar(node)
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (low is None or value >= low)
        and (high is None or value <= high)
    )
    if not ok:
        bounds = f" in {low:g}..{high:g}" if low is not None and high is not None else ""
        bounds = bounds or (f" >= {low:g}" if low is not None else "")
        c.error(node, f"{what} must be a number{bounds}, got {value!r}")
        return default
    return float(value)


def _whole(c: _Collector, node: Node | None, what: str, default: int | None) -> int | None:
    if node is None:
        return default
    value = _scalar(node)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_000:
        c.error(node, f"{what} must be a whole number in 0..10000, got {value!r}")
        return default
    return value


def _factor_names() -> dict[str, str]:
    numeric = {
        name: f.description
        for name, f in REGISTRY.items()
        if f.unit != "label" and not f.unit.startswith("label or")
    }
    return {**numeric, **ASSESSMENT_INPUTS}


def _bands(c: _Collector, node: Node | None, what: str) -> tuple[Band, ...]:
    if not isinstance(node, SequenceNode) or not node.value:
        c.error(node, f"{what}.bands must be a non-empty list of {{at_least|at_most, points}}")
        return ()
    out: list[Band] = []
    for n, item in enumerate(node.value):
        keys = _mapping(c, item, f"{what}.bands", ("at_least", "at_most", "points"))
        if not keys:
            continue
        if "points" not in keys:
            c.error(item, f"{what}.bands: points is required")
            continue
        points = _number(c, keys["points"], f"{what} points", low=-1000, high=1000)
        least = _number(c, keys.get("at_least"), f"{what} at_least")
        most = _number(c, keys.get("at_most"), f"{what} at_most")
        if "at_least" in keys and "at_most" in keys:
            c.error(item, f"{what}.bands: give at_least or at_most, not both")
            continue
        if "at_least" not in keys and "at_most" not in keys and n != len(node.value) - 1:
            c.error(item, f"{what}.bands: a band without a bound matches everything: put it last")
            continue
        if points is not None:
            out.append(Band(points, least, most))
    return tuple(out)


def _factors(c: _Collector, node: Node | None) -> tuple[Factor, ...]:
    if not isinstance(node, SequenceNode) or not node.value:
        c.error(node, "assessment.factors must be a non-empty list")
        return ()
    known = _factor_names()
    out: list[Factor] = []
    seen: set[str] = set()
    for item in node.value:
        keys = _mapping(c, item, "factor", ("name", "means", "missing", "after", "bands"))
        if not keys:
            continue
        name = _scalar(keys["name"]) if "name" in keys else None
        if not isinstance(name, str) or name not in known:
            import difflib

            close = difflib.get_close_matches(str(name), list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            c.error(
                keys.get("name", item),
                f"factor name {name!r} is not a numeric feature or assessment input{hint}",
            )
            continue
        if name in seen:
            c.error(keys["name"], f"factor {name!r} is given twice")
            continue
        seen.add(name)
        means = _scalar(keys["means"]) if "means" in keys else None
        missing = _number(c, keys.get("missing"), f"{name} missing", low=-1000, high=1000)
        after = _duration(c, keys.get("after"), f"{name} after", 0.0)
        bands = _bands(c, keys.get("bands", item), name)
        if bands:
            out.append(Factor(name, bands, missing or 0.0, after, str(means) if means else None))
    return tuple(out)


_LIMIT_KEYS = ("revenue_share", "net_worth_share", "sales_cover_days", "max", "fallback")


def _limit(c: _Collector, node: Node | None, grade: str) -> LimitRule:
    if node is None:
        c.error(None, f"grade {grade}: limit is required")
        return LimitRule()
    keys = _mapping(c, node, f"grade {grade} limit", _LIMIT_KEYS)
    fallback = keys.pop("fallback", None)
    values = {
        name: _number(
            c,
            keys.get(name),
            f"grade {grade} limit.{name}",
            low=0,
            high=10 if name.endswith("_share") else 1e15,
        )
        for name in _LIMIT_KEYS[:-1]
    }
    amount = None
    if fallback is not None and _scalar(fallback) != "current":
        amount = _number(
            c, fallback, f"grade {grade} limit.fallback (an amount or 'current')", low=0, high=1e15
        )
    return LimitRule(
        values["revenue_share"],
        values["net_worth_share"],
        values["sales_cover_days"],
        values["max"],
        amount,
    )


def _grades(c: _Collector, node: Node | None) -> tuple[Grade, ...]:
    if not isinstance(node, SequenceNode) or not node.value:
        c.error(node, "assessment.grades must be a non-empty list, best grade first")
        return ()
    out: list[Grade] = []
    previous: float | None = None
    for n, item in enumerate(node.value):
        keys = _mapping(c, item, "grade", ("grade", "min_points", "terms_days", "limit"))
        if not keys:
            continue
        name = _scalar(keys["grade"]) if "grade" in keys else None
        if not isinstance(name, str) or not name or len(name) > 16:
            c.error(keys.get("grade", item), f"grade must be a short name, got {name!r}")
            continue
        if any(g.name == name for g in out):
            c.error(keys["grade"], f"grade {name!r} is given twice")
            continue
        last = n == len(node.value) - 1
        least = _number(c, keys.get("min_points"), f"grade {name} min_points")
        if last and "min_points" in keys:
            c.error(keys["min_points"], "the last grade takes every lower total: no min_points")
        elif not last and least is None:
            c.error(item, f"grade {name}: min_points is required (all but the last grade)")
            continue
        if least is not None and previous is not None and least >= previous:
            c.error(keys["min_points"], "grades go best first: min_points must fall")
            continue
        previous = least if least is not None else previous
        if "terms_days" not in keys:
            c.error(item, f"grade {name}: terms_days is required")
        terms = _whole(c, keys.get("terms_days"), f"grade {name} terms_days", 0)
        out.append(
            Grade(name, None if last else least, terms or 0, _limit(c, keys.get("limit"), name))
        )
    return tuple(out)


def _assessment(c: _Collector, node: Node) -> Assessment | None:
    keys = _mapping(c, node, "assessment", ("factors", "grades", "rounding"))
    if not keys:
        return None
    factors = _factors(c, keys.get("factors", node))
    grades = _grades(c, keys.get("grades", node))
    rounding = _number(c, keys.get("rounding"), "assessment.rounding", low=0.01, high=1e9)
    if not factors or not grades:
        return None
    return Assessment(factors, grades, rounding or 1.0)


def _ratings(c: _Collector, node: Node) -> Ratings:
    keys = _mapping(c, node, "ratings", ("letters", "scale"))
    letters: dict[str, float] = {}
    letters_node = keys.get("letters")
    if letters_node is not None:
        if not isinstance(letters_node, MappingNode):
            c.error(letters_node, "ratings.letters must map ratings to a number in 0..1")
        else:
            for key, value in letters_node.value:
                number = _number(c, value, f"ratings.letters.{key.value}", low=0, high=1)
                if number is not None:
                    letters[str(key.value)] = number
    scale: tuple[float, float] | None = None
    if "scale" in keys:
        bounds = _mapping(c, keys["scale"], "ratings.scale", ("min", "max"))
        low = _number(c, bounds.get("min"), "ratings.scale.min")
        high = _number(c, bounds.get("max"), "ratings.scale.max")
        if low is None or high is None or not low < high:
            c.error(keys["scale"], "ratings.scale needs min below max")
        else:
            scale = (low, high)
    return Ratings(letters, scale)


def _review(c: _Collector, node: Node) -> Review | None:
    keys = _mapping(c, node, "review", ("every", "tolerance", "max_increase_share"))
    if "every" not in keys:
        c.error(node, "review.every is required (for example 90d)")
        return None
    every = _duration(c, keys["every"], "review.every", 0.0)
    if every <= 0:
        if _scalar(keys["every"]) in (0, "0"):
            c.error(keys["every"], "review.every must be positive")
        return None
    tolerance = _number(c, keys.get("tolerance"), "review.tolerance", low=0, high=1, default=0.1)
    share = _number(
        c, keys.get("max_increase_share"), "review.max_increase_share", low=0, high=10, default=0.5
    )
    return Review(every, tolerance or 0.0, share or 0.0)


_INCREASE_KEYS = (
    "tiers",
    "min_utilisation",
    "on_time_for",
    "days_late_tolerance",
    "min_payments",
    "cooldown",
    "actions",
)


def _increases(c: _Collector, node: Node) -> Increases | None:
    keys = _mapping(c, node, "increases", _INCREASE_KEYS)
    if not keys and not isinstance(node, MappingNode):
        return None
    tiers: tuple[str, ...] = ("low",)
    if "tiers" in keys:
        values = (
            [_scalar(v) for v in keys["tiers"].value]
            if isinstance(keys["tiers"], SequenceNode)
            else [_scalar(keys["tiers"])]
        )
        if not values or not set(values) <= set(TIERS):
            c.error(keys["tiers"], f"increases.tiers must be among {', '.join(TIERS)}")
        else:
            tiers = tuple(str(v) for v in values)
    actions = parse_actions(c, keys.get("actions"))
    wrong = [a["kind"] for a in actions if a["kind"] not in INCREASE_KINDS]
    if wrong:
        c.error(keys["actions"], f"increases.actions may only be {', '.join(INCREASE_KINDS)}")
    if not actions and "actions" not in keys:
        c.error(node, "increases.actions is required")
    default = Increases()
    return Increases(
        tiers=tiers,
        min_utilisation=_number(
            c,
            keys.get("min_utilisation"),
            "increases.min_utilisation",
            low=0,
            high=10,
            default=default.min_utilisation,
        )
        or 0.0,
        on_time_for=_duration(
            c, keys.get("on_time_for"), "increases.on_time_for", default.on_time_for
        ),
        days_late_tolerance=_number(
            c,
            keys.get("days_late_tolerance"),
            "increases.days_late_tolerance",
            low=0,
            high=3660,
            default=default.days_late_tolerance,
        )
        or 0.0,
        min_payments=_whole(c, keys.get("min_payments"), "increases.min_payments", 1) or 0,
        cooldown=_duration(c, keys.get("cooldown"), "increases.cooldown", default.cooldown),
        actions=tuple(a for a in actions if a["kind"] in INCREASE_KINDS),
    )


_PARSERS = {
    "ratings": _ratings,
    "assessment": _assessment,
    "review": _review,
    "increases": _increases,
}


def parse(c: _Collector, node: Node) -> PolicySpec:
    """One file's ``credit_policy`` section; errors go to ``c`` with their place."""
    spec = PolicySpec()
    group, rule = c.group, c.rule
    c.group = "credit_policy"
    for name, value in _mapping(c, node, "credit_policy", PARTS).items():
        c.rule = name
        part = _PARSERS[name](c, value)  # type: ignore[operator]
        if part is not None:
            spec.parts[name] = part
            spec.at[name] = c.where(value)
    c.group, c.rule = group, rule
    return spec


def conflicts(specs: Sequence[FileSpec]) -> list[RuleError]:
    """Parts defined in more than one file, and parts that need another one."""
    errors: list[RuleError] = []
    first: dict[str, Where] = {}
    for spec in specs:
        policy = spec.credit_policy
        if not isinstance(policy, PolicySpec):
            continue
        for name, at in policy.at.items():
            if name in first:
                was = first[name]
                errors.append(
                    RuleError(
                        at.file,
                        at.line,
                        at.col,
                        "credit_policy",
                        name,
                        f"credit_policy.{name} is already defined in {was.file}:{was.line}",
                    )
                )
            else:
                first[name] = at
    if "review" in first and "assessment" not in first:
        at = first["review"]
        errors.append(
            RuleError(
                at.file,
                at.line,
                at.col,
                "credit_policy",
                "review",
                "credit_policy.review needs credit_policy.assessment (a review re-assesses)",
            )
        )
    return errors


def merge(specs: Sequence[FileSpec]) -> CreditPolicy | None:
    """The credit policy of parsed files, or ``None`` when none has a section."""
    parts: dict[str, Any] = {}
    for spec in specs:
        if isinstance(spec.credit_policy, PolicySpec):
            for name, part in spec.credit_policy.parts.items():
                parts.setdefault(name, part)
    if not parts:
        return None
    return CreditPolicy(
        ratings=parts.get("ratings", Ratings()),
        assessment=parts.get("assessment"),
        review=parts.get("review"),
        increases=parts.get("increases"),
    )


_CACHE: dict[str, CreditPolicy | None] = {}


def policy_of(rules: Any) -> CreditPolicy | None:
    """The credit policy of a compiled rule set (parsed once per rule set digest)."""
    digest: str = rules.digest
    if digest not in _CACHE:
        files: Mapping[str, str] = rules.files
        specs = [parse_file(files[name], name)[0] for name in sorted(files)]
        if len(_CACHE) >= 16:  # rule sets are few; never grow without bound
            _CACHE.clear()
        _CACHE[digest] = merge(specs)
    return _CACHE[digest]
