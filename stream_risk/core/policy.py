"""Credit-policy recommendations: what a warning or a tier change suggests doing.

Rules and the tier policy name actions in general terms (reduce the limit to
half, shorten terms to 15 days); :func:`recommend` turns them into concrete
proposals for one customer (the new limit in the base currency, the new
terms), dropping those that would change nothing. :func:`credit_action` wraps
them with their evidence for the credit-actions topic. The engine never applies
them: every record is ``proposed`` and needs a person or a downstream system to
approve it.

>>> recommend([{"kind": "reduce_credit_limit", "to_share": 0.5},
...            {"kind": "shorten_terms", "days": 45}], credit_limit=10_000.0, terms_days=30)
[{'kind': 'reduce_credit_limit', 'to_share': 0.5, 'from': 10000.0, 'to': 5000.0}]
>>> for item in recommend([{"kind": "increase_credit_limit", "by_share": 0.25},
...                       {"kind": "extend_terms", "days": 45}], 10_000.0, terms_days=30):
...     print(item)
{'kind': 'increase_credit_limit', 'by_share': 0.25, 'from': 10000.0, 'to': 12500.0}
{'kind': 'extend_terms', 'days': 45, 'from': 30}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stream_risk.core.ids import content_id


def recommend(
    actions: Iterable[Mapping[str, Any]],
    credit_limit: float | None,
    terms_days: int | None,
) -> list[dict[str, Any]]:
    """Concrete recommendations for a customer with ``credit_limit`` and ``terms_days``."""
    out: list[dict[str, Any]] = []
    for action in actions:
        item = dict(action)
        kind = item["kind"]
        if kind == "reduce_credit_limit":
            if credit_limit is not None:
                new = (
                    credit_limit * float(item["to_share"])
                    if "to_share" in item
                    else float(item["to_amount"])
                )
                if new >= credit_limit:
                    continue  # already at or below the proposed limit
                item["from"] = round(credit_limit, 2)
                item["to"] = round(new, 2)
        elif kind == "shorten_terms" and terms_days is not None:
            if terms_days <= int(item["days"]):
                continue  # terms are already that short
            item["from"] = terms_days
        elif kind == "increase_credit_limit":
            if credit_limit is None:
                continue  # nothing to raise from
            new = (
                credit_limit * (1.0 + float(item["by_share"]))
                if "by_share" in item
                else float(item["to_amount"])
            )
            if new <= credit_limit:
                continue  # already at or above the proposed limit
            item["from"] = round(credit_limit, 2)
            item["to"] = round(new, 2)
        elif kind == "extend_terms" and terms_days is not None:
            if terms_days >= int(item["days"]):
                continue  # terms are already that long
            item["from"] = terms_days
        if item not in out:
            out.append(item)
    return out


def action_id(customer_id: str, source_id: str, level: str) -> str:
    """Deterministic id of a recommendation: one per warning (and level) or tier change."""
    return content_id("a", customer_id, source_id, level)


def credit_action(
    *,
    customer_id: str,
    source: str,
    source_id: str,
    level: str,
    occurred_at: str,
    detected_at: str,
    tier: str,
    risk_score: float,
    recommendations: list[dict[str, Any]],
    credit_limit: float | None,
    terms_days: int | None,
    evidence: dict[str, Any],
    rule: str | None = None,
    rules_version: str | None = None,
) -> dict[str, Any]:
    """A credit-actions record: proposed recommendations with their evidence."""
    return {
        "action_id": action_id(customer_id, source_id, level),
        "customer_id": customer_id,
        "status": "proposed",
        "requires_approval": True,
        "source": source,
        "source_id": source_id,
        "rule": rule,
        "level": level,
        "tier": tier,
        "risk_score": risk_score,
        "occurred_at": occurred_at,
        "detected_at": detected_at,
        "current": {"credit_limit": credit_limit, "payment_terms_days": terms_days},
        "recommendations": recommendations,
        "evidence": evidence,
        "rules_version": rules_version,
    }
