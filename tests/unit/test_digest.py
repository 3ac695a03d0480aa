"""Low warnings of a digest group: one open warning per customer and group, updated."""

from __future__ import annotations

from typing import Any

from risk_factory import ts

from stream_risk.core import Context, CustomerState
from stream_risk.core.alerting import digest_of, evaluate
from stream_risk.core.outputs import Outputs
from stream_risk.core.ruleset import load_files
from stream_risk.core.step import profile_of

RULES = """
groups:
  - name: habits
    rules:
      - name: paying_later
        expr: avg_days_late_90d >= 10.0
        level: low
        labels: {group: watch}
        annotations: {summary: "paid {{ avg_days_late_90d:.0f }} days late"}
      - name: using_more
        expr: credit_utilisation >= 0.7
        level: low
        labels: {group: watch}
      - name: ungrouped_low
        expr: order_amount_zscore >= 3.0
        level: low
      - name: late
        expr: days_past_due >= 30
        level: medium
        labels: {group: watch}
"""


def ctx() -> Context:
    rules, errors = load_files({"test.yaml": RULES}, "t1")
    assert errors == [] and rules is not None
    return Context(rules=rules)


def step(
    state: CustomerState, day: float, features: dict[str, Any], context: Context
) -> list[dict[str, Any]]:
    state.clock = ts(day)
    out = Outputs()
    evaluate(state, features, f"e{day}", ts(day), context, out)
    return out.warnings


def test_only_low_rules_without_escalation_and_with_the_label_are_grouped() -> None:
    by_name = ctx().rules.by_name
    assert digest_of(by_name["paying_later"]) == "watch"
    assert digest_of(by_name["ungrouped_low"]) is None
    assert digest_of(by_name["late"]) is None  # medium and above always stand alone


def test_members_joining_and_leaving_update_one_warning() -> None:
    context, state = ctx(), CustomerState("c1")
    first = step(state, 1, {"avg_days_late_90d": 12.0}, context)
    assert [(w["rule"], w["status"], w["level"]) for w in first] == [("watch", "firing", "low")]
    wid = first[0]["warning_id"]
    assert first[0]["labels"] == {"group": "watch", "rules": "paying_later"}
    assert first[0]["annotations"]["summary"] == "paid 12 days late"
    assert first[0]["actions"] == []

    # A second sign joins: the same warning again, now with both rules and reasons.
    both = step(state, 2, {"avg_days_late_90d": 12.0, "credit_utilisation": 0.8}, context)
    assert [(w["warning_id"], w["status"]) for w in both] == [(wid, "firing")]
    assert both[0]["labels"]["rules"] == "paying_later,using_more"
    assert {r["feature"] for r in both[0]["reasons"]} == {"avg_days_late_90d", "credit_utilisation"}
    assert profile_of(state)["active_warnings"] == [wid]

    # Nothing changes: nothing is published.
    assert step(state, 3, {"avg_days_late_90d": 12.0, "credit_utilisation": 0.8}, context) == []

    # The first sign clears: updated, still open.
    left = step(state, 4, {"avg_days_late_90d": 2.0, "credit_utilisation": 0.8}, context)
    assert [(w["warning_id"], w["status"], w["labels"]["rules"]) for w in left] == [
        (wid, "firing", "using_more")
    ]
    # The last one clears: resolved once, with the group's id.
    gone = step(state, 5, {"avg_days_late_90d": 2.0, "credit_utilisation": 0.5}, context)
    assert [(w["warning_id"], w["status"], w["rule"]) for w in gone] == [(wid, "resolved", "watch")]
    assert state.alerts == {}


def test_higher_levels_and_ungrouped_low_rules_publish_on_their_own() -> None:
    context, state = ctx(), CustomerState("c1")
    got = step(
        state,
        1,
        {"avg_days_late_90d": 12.0, "order_amount_zscore": 4.0, "days_past_due": 31},
        context,
    )
    assert sorted((w["rule"], w["level"]) for w in got) == [
        ("late", "medium"),
        ("ungrouped_low", "low"),
        ("watch", "low"),
    ]
    assert len({w["warning_id"] for w in got}) == 3


def test_a_member_swap_in_one_evaluation_is_an_update_not_a_new_warning() -> None:
    context, state = ctx(), CustomerState("c1")
    wid = step(state, 1, {"avg_days_late_90d": 12.0}, context)[0]["warning_id"]
    swap = step(state, 2, {"avg_days_late_90d": 1.0, "credit_utilisation": 0.9}, context)
    assert [(w["warning_id"], w["status"], w["labels"]["rules"]) for w in swap] == [
        (wid, "firing", "using_more")
    ]


def test_a_member_removed_from_the_rule_set_leaves_the_group_open() -> None:
    context, state = ctx(), CustomerState("c1")
    both = {"avg_days_late_90d": 12.0, "credit_utilisation": 0.8}
    wid = step(state, 1, both, context)[0]["warning_id"]
    smaller, errors = load_files(
        {"test.yaml": RULES.replace("name: paying_later", "name: x")}, "t2"
    )
    assert errors == [] and smaller is not None
    context.use_rules(smaller)
    got = step(state, 3, {"credit_utilisation": 0.8}, context)
    assert all(w["status"] != "resolved" for w in got)
    assert list(state.alerts) == ["using_more"] and state.alerts["using_more"][0] == wid
