"""Credit-policy recommendations: concrete, evidenced, never applied."""

from __future__ import annotations

from typing import Any

import pytest
from risk_factory import customer, run, statement

from stream_risk.core import Context
from stream_risk.core.policy import action_id, recommend
from stream_risk.core.ruleset import load_files
from stream_risk.schemas.outputs import CreditAction

RECOMMEND = [
    pytest.param(
        [{"kind": "reduce_credit_limit", "to_share": 0.5}],
        10_000.0,
        30,
        [{"kind": "reduce_credit_limit", "to_share": 0.5, "from": 10_000.0, "to": 5_000.0}],
        id="limit-to-a-share",
    ),
    pytest.param(
        [{"kind": "reduce_credit_limit", "to_amount": 2_500}],
        10_000.0,
        30,
        [{"kind": "reduce_credit_limit", "to_amount": 2_500, "from": 10_000.0, "to": 2_500.0}],
        id="limit-to-an-amount",
    ),
    pytest.param(
        [{"kind": "reduce_credit_limit", "to_amount": 20_000}],
        10_000.0,
        30,
        [],
        id="no-raise-disguised-as-a-cut",
    ),
    pytest.param(
        [{"kind": "reduce_credit_limit", "to_share": 0.5}],
        None,
        30,
        [{"kind": "reduce_credit_limit", "to_share": 0.5}],
        id="limit-unknown",
    ),
    pytest.param(
        [{"kind": "shorten_terms", "days": 15}],
        1.0,
        30,
        [{"kind": "shorten_terms", "days": 15, "from": 30}],
        id="shorter-terms",
    ),
    pytest.param([{"kind": "shorten_terms", "days": 15}], 1.0, 10, [], id="terms-already-short"),
    pytest.param(
        [{"kind": "hold_orders"}, {"kind": "hold_orders"}, {"kind": "contact_customer"}],
        1.0,
        30,
        [{"kind": "hold_orders"}, {"kind": "contact_customer"}],
        id="duplicates-dropped",
    ),
]


@pytest.mark.parametrize(("actions", "limit", "terms", "expected"), RECOMMEND)
def test_recommend_table(
    actions: list[dict[str, Any]], limit: float | None, terms: int, expected: list[dict[str, Any]]
) -> None:
    assert recommend(actions, limit, terms) == expected


def test_action_ids_are_deterministic() -> None:
    assert action_id("c1", "w-1", "high") == action_id("c1", "w-1", "high")
    assert action_id("c1", "w-1", "high") != action_id("c1", "w-1", "critical")


RULES = """
groups:
  - name: overdue
    rules:
      - name: late
        expr: days_past_due >= 30
        level: high
        actions: [contact_customer, {kind: shorten_terms, days: 15}]
        escalate:
          - level: critical
            expr: days_past_due >= 90
            actions: [hold_orders, {kind: reduce_credit_limit, to_share: 0.5}]
"""


def test_a_firing_publishes_its_recommendations_with_evidence_and_an_escalation_adds_more() -> None:
    rules, _ = load_files({"p.yaml": RULES}, "p1")
    assert rules is not None
    ctx = Context(rules=rules)
    state, _ = run([customer(0, 8_000.0, terms=30)], ctx)
    out_actions: list[dict[str, Any]] = []
    from risk_factory import parse

    from stream_risk.core import step

    for event in (statement(1, 500.0, 30, "delinquent"), statement(31, 500.0, 90, "delinquent")):
        state, out = step(state, parse(event), ctx)
        out_actions += [a for a in out.credit_actions if a["source"] == "warning"]
    first, second = (CreditAction.model_validate(a) for a in out_actions)
    assert first.status == "proposed" and first.requires_approval is True
    assert first.rule == "late" and first.level == "high" and first.rules_version == "p1"
    assert [a.kind for a in first.recommendations] == ["contact_customer", "shorten_terms"]
    assert first.evidence["reasons"][0]["feature"] == "days_past_due"
    assert first.current == {"credit_limit": 8_000.0, "payment_terms_days": 30}
    # The escalation is the same warning at a higher level: a new recommendation.
    assert second.source_id == first.source_id and second.level == "critical"
    assert second.action_id != first.action_id
    kinds = [a.kind for a in second.recommendations]
    assert kinds == ["contact_customer", "shorten_terms", "hold_orders", "reduce_credit_limit"]
    limit = out_actions[1]["recommendations"][-1]
    assert (limit["from"], limit["to"]) == (8_000.0, 4_000.0)
