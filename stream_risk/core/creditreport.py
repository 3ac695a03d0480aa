"""Credit reports and financial statements in the state, and the ``credit`` feature group.

A ``credit_report`` event (a bureau or commercial report) is kept as one small
record, the latest by report date: the score on a 0..1 scale (higher is
better), the letter rating, what other creditors report (limits, arrears, in
the base currency), the negative records of the 12 months before the report
(lawsuits, tax arrears) and the insolvency flag. The ``credit`` features read
it and the ratios of the customer's financial statements; the ``assessment``
features the latest assessment (:mod:`stream_risk.core.review`). Rules can
use them too.

>>> normalised_score(650.0, 300.0, 850.0, True)
0.6364
>>> normalised_score(2.0, 1.0, 6.0, False)
0.8
"""

from __future__ import annotations

import math
from typing import Any

from stream_risk.core import features as feats
from stream_risk.core.state import CustomerState
from stream_risk.core.units import DAY

#: A report's negative records count for this long after the report date.
LEGAL_MEMORY = 366 * DAY


def normalised_score(score: float, low: float, high: float, higher_is_better: bool) -> float:
    """``score`` on its scale ``low..high`` as 0..1, 1 the best."""
    share = (score - low) / (high - low)
    return round(share if higher_is_better else 1.0 - share, 4)


def apply_report(state: CustomerState, event: Any, ts: float, ctx: Any) -> None:
    """Keep ``event`` (a credit report) if it is the latest one by report date.

    Raises :class:`~stream_risk.core.context.BadEvent` (through ``ctx.to_base``)
    for amounts in a currency without a rate, before touching the state.
    """
    currency = event.currency
    limits = None if event.reported_limits is None else ctx.to_base(event.reported_limits, currency)
    arrears = (
        None if event.arrears_elsewhere is None else ctx.to_base(event.arrears_elsewhere, currency)
    )
    reported_at = event.report_date.timestamp() if event.report_date is not None else ts
    held = state.credit_report
    if held is not None and (held["at"], held["seen"]) > (reported_at, ts):
        return  # a later report is already held
    score = None
    if event.score is not None:
        score = normalised_score(
            event.score, event.score_min, event.score_max, event.higher_is_better
        )
    state.credit_report = {
        "id": event.report_id,
        "source": event.source,
        "at": reported_at,
        "seen": ts,
        "score": score,
        "rating": event.rating,
        "limits": limits,
        "arrears": arrears,
        "lawsuits": event.lawsuits,
        "tax": event.tax_arrears,
        "insolvent": event.insolvency,
    }


def apply_profile(state: CustomerState, currency: str, ctx: Any) -> None:
    """Remember how the amounts of the customer's financials convert into the base currency."""
    review = state.credit_review if state.credit_review is not None else {}
    try:
        rate = ctx.to_base(1.0, currency)
    except ValueError:
        rate = None  # the credit limit in that currency was already a bad event
    if rate == 1.0:
        review.pop("fx", None)  # the base currency: nothing to keep
    else:
        review["fx"] = rate
    if review or state.credit_review is not None:
        state.credit_review = review


def _number(values: dict[str, Any], name: str) -> float | None:
    value = values.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _divide(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return round(numerator / denominator, 6)


@feats.group(
    "credit",
    ("external_score", "score 0..1", "latest credit report's score on its scale as 0..1, 1 best"),
    ("external_rating", "label", "latest credit report's rating"),
    ("external_limits", "base currency", "credit limits other creditors report (latest report)"),
    ("external_arrears", "base currency", "arrears with other creditors (latest report)"),
    (
        "legal_events_12m",
        "count",
        "lawsuits, tax arrears and insolvency of the latest report, while it is under a year old",
    ),
    ("insolvency_flag", "flag", "1 when the latest credit report flags insolvency"),
    ("credit_report_age_days", "days", "days since the latest credit report's date"),
    (
        "interest_coverage",
        "ratio",
        "coverage: EBIT / interest expense (or interest_coverage), from the latest financials",
    ),
    (
        "net_margin",
        "ratio",
        "profitability: net income / revenue (or net_margin), from the latest financials",
    ),
    (
        "cash_flow_to_debt",
        "ratio",
        "cash flow: operating cash flow / total debt (or cash_flow_to_debt), latest financials",
    ),
    ("revenue", "base currency", "annual revenue from the latest financials"),
    (
        "net_worth",
        "base currency",
        "net worth (equity, or total assets - total liabilities) from the latest financials",
    ),
)
def credit(state: CustomerState, now: float, out: dict[str, Any]) -> None:
    report = state.credit_report
    if report is None:
        for name in ("external_score", "external_rating", "external_limits", "external_arrears"):
            out[name] = None
        out["legal_events_12m"] = out["insolvency_flag"] = out["credit_report_age_days"] = None
    else:
        age = max(now - report["at"], 0.0)
        out["external_score"] = report["score"]
        out["external_rating"] = report["rating"]
        out["external_limits"] = report["limits"]
        out["external_arrears"] = report["arrears"]
        recent = age <= LEGAL_MEMORY
        out["legal_events_12m"] = (
            report["lawsuits"] + report["tax"] + int(report["insolvent"]) if recent else None
        )
        out["insolvency_flag"] = 1.0 if report["insolvent"] else 0.0
        out["credit_report_age_days"] = age / DAY
    fin = state.financials or {}
    review = state.credit_review or {}
    fx = review.get("fx", 1.0)
    revenue = _number(fin, "revenue")
    out["interest_coverage"] = _number(fin, "interest_coverage")
    if out["interest_coverage"] is None:
        out["interest_coverage"] = _divide(_number(fin, "ebit"), _number(fin, "interest_expense"))
    out["net_margin"] = _number(fin, "net_margin")
    if out["net_margin"] is None:
        out["net_margin"] = _divide(_number(fin, "net_income"), revenue)
    out["cash_flow_to_debt"] = _number(fin, "cash_flow_to_debt")
    if out["cash_flow_to_debt"] is None:
        out["cash_flow_to_debt"] = _divide(
            _number(fin, "operating_cash_flow"), _number(fin, "total_debt")
        )
    net_worth = _number(fin, "net_worth")
    if net_worth is None:
        net_worth = _number(fin, "equity")
    if net_worth is None:
        assets, liabilities = _number(fin, "total_assets"), _number(fin, "total_liabilities")
        if assets is not None and liabilities is not None:
            net_worth = assets - liabilities
    out["revenue"] = None if revenue is None or fx is None else revenue * fx
    out["net_worth"] = None if net_worth is None or fx is None else net_worth * fx


@feats.group(
    "assessment",
    ("assessment_grade", "label", "grade of the latest credit assessment or review"),
    ("assessment_points", "points", "points of the latest credit assessment or review"),
    ("recommended_limit", "base currency", "credit limit the latest assessment recommends"),
)
def assessment(state: CustomerState, now: float, out: dict[str, Any]) -> None:
    # Decided at the evaluation that assessed (like a warning's episode), then kept.
    review = state.credit_review or {}
    out["assessment_grade"] = review.get("grade")
    out["assessment_points"] = review.get("points")
    out["recommended_limit"] = review.get("limit")
