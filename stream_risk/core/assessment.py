"""Credit assessment: a points table over ratios, ratings and behaviour, a grade, a limit, terms.

The method is the rule pack's (:mod:`stream_risk.core.creditpolicy`), never
this module's: each factor of the points table scores one value (a feature
such as ``current_ratio`` or ``legal_events_12m``, or ``rating_score``) by the
first band it meets; the total picks the grade; the grade's limit rule sizes
the limit from revenue, net worth and the trading history, capped; the grade
sets the terms. Every step leaves a reason, so a credit analyst can follow it.

>>> from stream_risk.core.creditpolicy import Band, Factor
>>> liquidity = Factor("current_ratio", (Band(12, at_least=2.0), Band(5, at_least=1.0),
...                    Band(0)), missing=4, means="liquidity")
>>> total, reasons = points_of((liquidity,), {"current_ratio": 1.4}, known_for=0.0)
>>> total, reasons[0]["text"]
(5.0, 'liquidity: current_ratio is 1.4 (>= 1): +5 points')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream_risk.core.creditpolicy import CreditPolicy, Factor, Grade, Ratings
from stream_risk.core.units import DAY


@dataclass(frozen=True, slots=True)
class Result:
    """An assessment: the points, the grade, the recommended limit and terms, and why."""

    points: float
    grade: str
    limit: float
    terms_days: int
    #: One reason per factor: ``factor``, ``value``, ``band``, ``points``, ``text``.
    reasons: list[dict[str, Any]] = field(default_factory=list)
    #: How the limit was sized: the bases, the one chosen, the cap.
    limit_basis: dict[str, Any] = field(default_factory=dict)

    def evidence(self) -> dict[str, Any]:
        return {
            "grade": self.grade,
            "points": self.points,
            "factors": self.reasons,
            "limit_basis": self.limit_basis,
        }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def rating_score(
    report: Mapping[str, Any] | None, customer_rating: Any, ratings: Ratings
) -> tuple[float | None, str]:
    """The external rating as 0..1 (higher is better) and where it comes from.

    The latest credit report's score on its scale wins, then its letter rating,
    then the customer's rating: a letter through ``ratings.letters``, a number
    through ``ratings.scale``.

    >>> letters = Ratings({"A": 0.8, "BBB": 0.65}, (0.0, 100.0))
    >>> rating_score({"score": 0.7, "rating": "A", "source": "bureau"}, "BBB", letters)
    (0.7, 'credit report (bureau) score')
    >>> rating_score(None, "bbb", letters)
    (0.65, 'customer rating BBB')
    >>> rating_score(None, 42, letters)
    (0.42, 'customer rating 42 on 0..100')
    >>> rating_score(None, "Z", letters)
    (None, 'no rating on the configured scales')
    """
    if report is not None:
        if report.get("score") is not None:
            return float(report["score"]), f"credit report ({report.get('source')}) score"
        letter = report.get("rating")
        if isinstance(letter, str) and letter.strip().upper() in ratings.letters:
            key = letter.strip().upper()
            return ratings.letters[key], f"credit report ({report.get('source')}) rating {key}"
    if isinstance(customer_rating, str):
        key = customer_rating.strip().upper()
        if key in ratings.letters:
            return ratings.letters[key], f"customer rating {key}"
    number = _number(customer_rating)
    if number is not None and ratings.scale is not None:
        low, high = ratings.scale
        share = min(max((number - low) / (high - low), 0.0), 1.0)
        return round(share, 4), f"customer rating {number:g} on {low:g}..{high:g}"
    return None, "no rating on the configured scales"


def points_of(
    factors: Sequence[Factor], values: Mapping[str, Any], known_for: float
) -> tuple[float, list[dict[str, Any]]]:
    """Total points of ``values`` and one reason per factor.

    A factor whose value is missing scores its ``missing`` points; one with
    ``after`` scores them too until the customer has been known that long
    (``known_for`` seconds).
    """
    total = 0.0
    reasons: list[dict[str, Any]] = []
    for factor in factors:
        label = factor.means or factor.name
        value = _number(values.get(factor.name))
        band: str | None = None
        if factor.after and known_for < factor.after:
            points = factor.missing
            text = (
                f"{label}: {factor.name} not scored before {factor.after / DAY:g} days "
                f"of history: {points:+g} points"
            )
            value = None
        elif value is None:
            points = factor.missing
            text = f"{label}: {factor.name} is not known: {points:+g} points"
        else:
            matched = next((b for b in factor.bands if b.matches(value)), None)
            points = matched.points if matched is not None else 0.0
            band = matched.describe() if matched is not None else "no band"
            text = f"{label}: {factor.name} is {value:.4g} ({band}): {points:+g} points"
        total += points
        reasons.append(
            {
                "factor": factor.name,
                "value": None if value is None else round(value, 6),
                "band": band,
                "points": points,
                "text": text,
            }
        )
    return total, reasons


def grade_for(grades: Sequence[Grade], points: float) -> Grade:
    """The best grade whose ``min_points`` ``points`` reaches (the last grade otherwise)."""
    for grade in grades:
        if grade.min_points is None or points >= grade.min_points:
            return grade
    return grades[-1]


def limit_for(
    grade: Grade, values: Mapping[str, Any], rounding: float = 1.0
) -> tuple[float, dict[str, Any]]:
    """The limit ``grade``'s rule gives for ``values``, and how it was sized.

    >>> from stream_risk.core.creditpolicy import LimitRule
    >>> b = Grade("B", 60, 45, LimitRule(revenue_share=0.07, net_worth_share=0.2, max=500_000,
    ...                                  fallback=25_000))
    >>> limit_for(b, {"revenue": 1_200_000, "net_worth": 300_000}, 1000)[0]
    60000.0
    >>> limit_for(b, {}, 1000)[1]["chosen"]
    'fallback'
    >>> limit_for(Grade("C", 40, 30, LimitRule(max=8000)), {"credit_limit": 9000.0})[0]
    8000.0
    """
    rule = grade.limit
    bases: dict[str, float] = {}
    revenue = _number(values.get("revenue"))
    if rule.revenue_share is not None and revenue is not None:
        bases["revenue"] = max(revenue, 0.0) * rule.revenue_share
    net_worth = _number(values.get("net_worth"))
    if rule.net_worth_share is not None and net_worth is not None:
        bases["net_worth"] = max(net_worth, 0.0) * rule.net_worth_share
    sales = _number(values.get("order_amount_90d"))
    if rule.sales_cover_days is not None and sales is not None and sales > 0:
        bases["sales"] = sales / 90.0 * rule.sales_cover_days
    if bases:
        chosen = min(bases, key=lambda name: bases[name])
        limit = bases[chosen]
    elif rule.fallback is None:
        chosen, limit = "current", max(_number(values.get("credit_limit")) or 0.0, 0.0)
    else:
        chosen, limit = "fallback", rule.fallback
    capped = rule.max is not None and limit > rule.max
    if capped and rule.max is not None:
        limit = rule.max
    limit = math.floor(limit / rounding) * rounding if rounding > 0 else limit
    basis = {
        "grade": grade.name,
        "bases": {k: round(v, 2) for k, v in bases.items()},
        "chosen": chosen,
        "max": rule.max,
        "capped": capped,
        "text": _limit_text(grade, chosen, bases, capped, limit),
    }
    return float(limit), basis


def _limit_text(
    grade: Grade, chosen: str, bases: Mapping[str, float], capped: bool, limit: float
) -> str:
    rule = grade.limit
    if chosen == "revenue":
        what = f"{rule.revenue_share:g} of revenue"
    elif chosen == "net_worth":
        what = f"{rule.net_worth_share:g} of net worth"
    elif chosen == "sales":
        what = f"{rule.sales_cover_days:g} days of the last 90 days' average orders"
    elif chosen == "fallback":
        what = "the grade's limit without financials or trading history"
    else:
        what = "the current limit (no financials or trading history to size it)"
    text = f"grade {grade.name}: {what}"
    if len(bases) > 1:
        text += " (the smallest of " + ", ".join(sorted(bases)) + ")"
    if capped:
        text += f", capped at {rule.max:,.0f}"
    return f"{text}: {limit:,.0f}"


def assess(policy: CreditPolicy, values: Mapping[str, Any], known_for: float) -> Result | None:
    """Assess from ``values`` (features and ``rating_score``); ``None`` without a method."""
    method = policy.assessment
    if method is None:
        return None
    points, reasons = points_of(method.factors, values, known_for)
    grade = grade_for(method.grades, points)
    limit, basis = limit_for(grade, values, method.rounding)
    return Result(round(points, 4), grade.name, limit, grade.terms_days, reasons, basis)
