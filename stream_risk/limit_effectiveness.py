"""Backtest effectiveness of limit decisions: were increases given to good customers, and
how much exposure at default would the proposed reductions have avoided.

A limit decision is a credit-action recommendation that moves the limit: an
``increase_credit_limit``, a ``reduce_credit_limit`` with a concrete ``to``, or a
``set_credit_limit`` above or below the current limit. Only decisions made
before the customer's outcome count (all of them with ``--labels``).

- **increases**: the share of proposed increases that went to customers who
  did not default afterwards;
- **reductions**: for every defaulter with a reduction proposed before the
  default, the open balance at default minus what it would have been at the
  latest proposed limit (the lowest of those proposed at that time; the balance
  capped at that limit), summed: the
  exposure at default the reduction would have avoided.

>>> decisions = LimitDecisions()
>>> when = "2024-01-01T00:00:00+00:00"
>>> up = {"kind": "increase_credit_limit", "from": 10.0, "to": 20.0}
>>> down = {"kind": "reduce_credit_limit", "from": 900.0, "to": 300.0}
>>> decisions.add({"customer_id": "a", "occurred_at": when, "recommendations": [up]})
>>> decisions.add({"customer_id": "b", "occurred_at": when, "recommendations": [down]})
>>> decisions.settle("a", adverse=False, at=None, balance=5.0)
>>> decisions.settle("b", adverse=True, at=None, balance=800.0)
>>> report = decisions.report()
>>> report["increases"]["share_without_default"], report["reductions"]["exposure_avoided"]
(1.0, 500.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stream_risk.core import CustomerState
from stream_risk.core import features as feats


@dataclass(slots=True)
class _Decision:
    at: float
    direction: str  # "increase" or "reduce"
    to: float


@dataclass(slots=True)
class _Outcome:
    adverse: bool
    at: float | None
    balance: float


def direction_of(recommendation: dict[str, Any]) -> tuple[str, float] | None:
    """``("increase" | "reduce", proposed limit)`` of a recommendation that moves the limit.

    >>> direction_of({"kind": "set_credit_limit", "from": 100.0, "to": 50.0})
    ('reduce', 50.0)
    >>> direction_of({"kind": "set_credit_limit", "from": 100.0, "to": 100.0}) is None
    True
    """
    kind = recommendation.get("kind")
    to, before = recommendation.get("to"), recommendation.get("from")
    if not isinstance(to, (int, float)):
        return None
    if kind == "increase_credit_limit":
        return "increase", float(to)
    if kind == "reduce_credit_limit":
        return "reduce", float(to)
    if kind == "set_credit_limit" and isinstance(before, (int, float)) and to != before:
        return ("increase" if to > before else "reduce"), float(to)
    return None


def open_balance(state: CustomerState, at: float | None) -> float:
    """The customer's open balance at event time ``at`` (its own clock when ``None``)."""
    now = at if at is not None else (state.clock or 0.0)
    balance = feats.compute(state, now, frozenset({"exposure"}))["open_balance"]
    return max(float(balance or 0.0), 0.0)


@dataclass(slots=True)
class LimitDecisions:
    """Collects limit decisions (a credit-actions callback) and outcomes; reports effectiveness."""

    decisions: dict[str, list[_Decision]] = field(default_factory=dict)
    outcomes: dict[str, _Outcome] = field(default_factory=dict)

    def add(self, action: dict[str, Any]) -> None:
        """Take one credit-actions record (the ``on_credit_action`` callback of a replay)."""
        at = datetime.fromisoformat(action["occurred_at"]).timestamp()
        for recommendation in action.get("recommendations", ()):
            moved = direction_of(recommendation)
            if moved is not None:
                self.decisions.setdefault(action["customer_id"], []).append(
                    _Decision(at, moved[0], moved[1])
                )

    def settle(self, customer_id: str, adverse: bool, at: float | None, balance: float) -> None:
        """Record the customer's outcome (the first one counts) and its open balance then."""
        if customer_id not in self.outcomes:
            self.outcomes[customer_id] = _Outcome(adverse, at, balance)

    def settle_state(
        self, customer_id: str, adverse: bool, at: float | None, state: CustomerState
    ) -> None:
        self.settle(customer_id, adverse, at, open_balance(state, at))

    def report(self) -> dict[str, Any] | None:
        """Effectiveness of limit decisions; ``None`` when no customer with an outcome had one."""
        increases = good = 0
        increased: set[str] = set()
        reduced_defaulters = 0
        exposure = avoided = 0.0
        for customer_id, outcome in self.outcomes.items():
            before = [
                d
                for d in self.decisions.get(customer_id, ())
                if outcome.at is None or d.at <= outcome.at
            ]
            ups = [d for d in before if d.direction == "increase"]
            increases += len(ups)
            if ups:
                increased.add(customer_id)
                good += 0 if outcome.adverse else len(ups)
            downs = [d for d in before if d.direction == "reduce"]
            if outcome.adverse and downs:
                reduced_defaulters += 1
                # The latest proposal; of several at that time, the lowest limit.
                latest = max(downs, key=lambda d: (d.at, -d.to))
                exposure += outcome.balance
                avoided += max(outcome.balance - max(latest.to, 0.0), 0.0)
        if not increases and not reduced_defaulters:
            return None
        return {
            "increases": {
                "proposed": increases,
                "customers": len(increased),
                "to_customers_without_default": good,
                "share_without_default": good / increases if increases else None,
            },
            "reductions": {
                "defaulters_with_a_reduction": reduced_defaulters,
                "exposure_at_default": round(exposure, 2),
                "exposure_avoided": round(avoided, 2),
                "share_avoided": avoided / exposure if exposure > 0 else None,
            },
        }


def render(report: dict[str, Any] | None) -> list[str]:
    """Report lines for ``stream-risk backtest`` (none when there were no limit decisions)."""
    if not report:
        return []
    up, down = report["increases"], report["reductions"]
    share = up["share_without_default"]
    avoided_share = down["share_avoided"]
    return [
        "",
        f"limit increases proposed: {up['proposed']} to {up['customers']} customers; "
        f"{up['to_customers_without_default']} to customers who did not default "
        f"({'-' if share is None else f'{share:.3f}'})",
        f"limit reductions before a default: {down['defaulters_with_a_reduction']} defaulters, "
        f"exposure at default {down['exposure_at_default']:,.0f}, avoided at the proposed limits "
        f"{down['exposure_avoided']:,.0f} "
        f"({'-' if avoided_share is None else f'{avoided_share:.3f}'})",
    ]
