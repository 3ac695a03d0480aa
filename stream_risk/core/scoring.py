"""A provisional, explainable risk scorecard and the tiers derived from it.

Points for days past due, credit utilisation and bounced payments are summed
into a log-odds and squashed into [0, 1]. The intercept puts a customer with a
clean record near the portfolio's typical default rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: The features the scorecard reads.
SCORE_FEATURES = ("days_past_due", "credit_utilisation", "bounced_payments_90d")

INTERCEPT = -2.2
POINTS_PER_DAY_PAST_DUE = 0.025  # capped at 180 days
POINTS_PER_UTILISATION = 1.2  # above 50 % of the limit, capped at 150 %
POINTS_PER_BOUNCE = 0.6  # capped at 3 bounces

HIGH_TIER_FROM = 0.5
MEDIUM_TIER_FROM = 0.25


def risk_score(features: Mapping[str, Any]) -> float:
    """Probability-like score in [0, 1]; higher is riskier."""
    dpd = min(float(features.get("days_past_due") or 0), 180.0)
    utilisation = features.get("credit_utilisation")
    over_half = 0.0 if utilisation is None else min(max(float(utilisation) - 0.5, 0.0), 1.0)
    bounces = min(float(features.get("bounced_payments_90d") or 0), 3.0)
    z = (
        INTERCEPT
        + POINTS_PER_DAY_PAST_DUE * dpd
        + POINTS_PER_UTILISATION * over_half
        + POINTS_PER_BOUNCE * bounces
    )
    return round(1.0 / (1.0 + math.exp(-z)), 6)


def tier_of(score: float) -> str:
    """``low``, ``medium`` or ``high``."""
    if score >= HIGH_TIER_FROM:
        return "high"
    if score >= MEDIUM_TIER_FROM:
        return "medium"
    return "low"
