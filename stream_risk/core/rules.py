"""The built-in early-warning rules: a threshold on one feature, graded by level.

Declarative rule packs (CEL expressions in YAML) replace these later; the
lifecycle in :mod:`stream_risk.core.step` does not depend on how a condition is
written, only on whether it holds.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """Fires while ``feature op threshold`` holds; resolves when it stops holding."""

    name: str
    feature: str
    op: str
    threshold: float
    level: str
    text: str
    actions: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)

    def holds(self, features: Mapping[str, Any]) -> bool:
        value = features.get(self.feature)
        if value is None:
            return False
        return _OPS[self.op](float(value), self.threshold)

    def reason(self, features: Mapping[str, Any]) -> dict[str, Any]:
        value = features.get(self.feature)
        shown = round(float(value), 4) if isinstance(value, (int, float)) else value
        text = (
            f"{self.feature} is not available"
            if shown is None
            else self.text.format(value=shown, threshold=self.threshold)
        )
        return {
            "feature": self.feature,
            "value": shown,
            "op": self.op,
            "threshold": self.threshold,
            "text": text,
        }


BUILTIN_RULES: tuple[ThresholdRule, ...] = (
    ThresholdRule(
        name="overdue_30_days",
        feature="days_past_due",
        op=">=",
        threshold=30,
        level="high",
        text="oldest open item is {value:g} days past due (threshold {threshold:g})",
        actions=({"kind": "contact_customer"}, {"kind": "shorten_terms", "days": 15}),
    ),
    ThresholdRule(
        name="overdue_90_days",
        feature="days_past_due",
        op=">=",
        threshold=90,
        level="critical",
        text="oldest open item is {value:g} days past due (threshold {threshold:g})",
        actions=(
            {"kind": "hold_orders"},
            {"kind": "reduce_credit_limit", "share": 0.5},
            {"kind": "contact_customer"},
        ),
    ),
    ThresholdRule(
        name="high_credit_utilisation",
        feature="credit_utilisation",
        op=">=",
        threshold=0.9,
        level="medium",
        text="credit utilisation is {value:.0%} of the limit (threshold {threshold:.0%})",
        actions=({"kind": "contact_customer"},),
    ),
)
