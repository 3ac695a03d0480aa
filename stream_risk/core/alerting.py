"""Rule evaluation and the warning lifecycle: what turns features into warnings.

:func:`evaluate` is the single seam :mod:`stream_risk.core.step` calls after the
features and the score are up to date; it appends warnings (and, later, tier
changes and credit actions) to the step's :class:`Outputs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stream_risk.core.context import Context
from stream_risk.core.outputs import Outputs, iso, warning_id
from stream_risk.core.state import CustomerState


def evaluate(
    state: CustomerState,
    features: Mapping[str, Any],
    trigger: str,
    occurred_at: float,
    ctx: Context,
    out: Outputs,
) -> None:
    """Fire rules that start holding, resolve rules that stop holding."""
    alerts = state.alerts
    for rule in ctx.rules:
        holds = rule.holds(features)
        active = alerts.get(rule.name)
        if holds and active is None:
            wid = warning_id(state.customer_id, rule.name, trigger)
            alerts[rule.name] = [wid, rule.level, occurred_at]
            out.warnings.append(
                warning(
                    state,
                    wid,
                    rule.level,
                    "firing",
                    rule.name,
                    occurred_at,
                    ctx,
                    [rule.reason(features)],
                    [dict(a) for a in rule.actions],
                )
            )
        elif not holds and active is not None:
            del alerts[rule.name]
            out.warnings.append(
                warning(
                    state,
                    active[0],
                    active[1],
                    "resolved",
                    rule.name,
                    occurred_at,
                    ctx,
                    [rule.reason(features)],
                    [],
                )
            )


def warning(
    state: CustomerState,
    wid: str,
    level: str,
    status: str,
    rule: str,
    occurred_at: float,
    ctx: Context,
    reasons: list[dict[str, Any]],
    actions: list[dict[str, Any]],
) -> dict[str, Any]:
    """A warning as published (EVENTS.md, "Output: warning")."""
    return {
        "warning_id": wid,
        "customer_id": state.customer_id,
        "level": level,
        "status": status,
        "rule": rule,
        "occurred_at": iso(occurred_at),
        "detected_at": ctx.detected_at.isoformat(),
        "reasons": reasons,
        "risk_score": state.risk_score,
        "tier": state.tier,
        "actions": actions,
    }
