"""The warning lifecycle: table tests of single transitions (``now`` passed in), properties,
and the whole evaluation (inhibition, cooldown, escalation, ids) through the core."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from risk_factory import DAY, customer, invoice, payment, run, statement, ts

from stream_risk.core import Context, CustomerState
from stream_risk.core.alerting import evaluate
from stream_risk.core.lifecycle import COOLING, FIRING, MUTED, PENDING, Episode, transition
from stream_risk.core.outputs import Outputs
from stream_risk.core.ruleset import load_files

H = 3600.0


def step(
    ep: Episode | None,
    level: str | None,
    now: float,
    hold: float = 0.0,
    cooldown: float = 0.0,
    inhibited: bool = False,
) -> tuple[Episode | None, Any]:
    return transition(
        ep, level, now, hold=hold, cooldown=cooldown, inhibited=inhibited, new_id=f"w@{now:g}"
    )


def firing(level: str = "high", since: float = 0.0, wid: str = "w1") -> Episode:
    return Episode(FIRING, since, level, wid)


# (before, level now, now, hold, cooldown, inhibited) -> (phase after, emitted status/level/id)
CASES = [
    pytest.param(None, None, 10, 0, 0, False, None, None, id="nothing-holds"),
    pytest.param(None, "high", 10, 0, 0, False, FIRING, ("firing", "high", "w@10"), id="fires"),
    pytest.param(None, "high", 10, H, 0, False, PENDING, None, id="held-for-pending"),
    pytest.param(
        Episode(PENDING, 10, "high", "w@10"),
        "high",
        10 + H - 1,
        H,
        0,
        False,
        PENDING,
        None,
        id="still-pending-1s-before",
    ),
    pytest.param(
        Episode(PENDING, 10, "high", "w@10"),
        "high",
        10 + H,
        H,
        0,
        False,
        FIRING,
        ("firing", "high", "w@10"),
        id="fires-after-for-with-the-pending-id",
    ),
    pytest.param(
        Episode(PENDING, 10, "high", "w@10"),
        None,
        20,
        H,
        0,
        False,
        None,
        None,
        id="clears-while-pending-silently",
    ),
    pytest.param(firing(), "high", 50, 0, 0, False, FIRING, None, id="keeps-firing-silently"),
    pytest.param(firing("high"), "medium", 50, 0, 0, False, FIRING, None, id="lower-level-silent"),
    pytest.param(
        firing("high"),
        "critical",
        50,
        0,
        0,
        False,
        FIRING,
        ("firing", "critical", "w1"),
        id="escalates-with-same-id",
    ),
    pytest.param(
        firing("high"),
        None,
        50,
        0,
        0,
        False,
        None,
        ("resolved", "high", "w1"),
        id="resolves-with-id-and-level",
    ),
    pytest.param(
        firing("high"),
        None,
        50,
        0,
        DAY,
        False,
        COOLING,
        ("resolved", "high", "w1"),
        id="resolves-into-cooldown",
    ),
    pytest.param(
        Episode(COOLING, 50, "high", "w1", 50 + DAY, "high"),
        "high",
        60,
        0,
        DAY,
        False,
        MUTED,
        None,
        id="repeat-within-cooldown-muted",
    ),
    pytest.param(
        Episode(COOLING, 50, "high", "w1", 50 + DAY, "high"),
        "medium",
        60,
        0,
        DAY,
        False,
        MUTED,
        None,
        id="lower-repeat-within-cooldown-muted",
    ),
    pytest.param(
        Episode(COOLING, 50, "high", "w1", 50 + DAY, "high"),
        "critical",
        60,
        0,
        DAY,
        False,
        FIRING,
        ("firing", "critical", "w@60"),
        id="escalated-repeat-breaks-cooldown",
    ),
    pytest.param(
        Episode(COOLING, 50, "high", "w1", 50 + DAY, "high"),
        "high",
        50 + DAY,
        0,
        DAY,
        False,
        FIRING,
        ("firing", "high", "w@86450"),
        id="repeat-after-cooldown-fires",
    ),
    pytest.param(
        Episode(MUTED, 60, "high", "w@60", 50 + DAY, "high", "cooldown"),
        "high",
        50 + DAY,
        0,
        DAY,
        False,
        FIRING,
        ("firing", "high", "w@60"),
        id="muted-repeat-fires-when-cooldown-ends",
    ),
    pytest.param(
        Episode(MUTED, 60, "high", "w@60", 50 + DAY, "high", "cooldown"),
        None,
        70,
        0,
        DAY,
        False,
        COOLING,
        None,
        id="muted-repeat-clears-back-to-cooling",
    ),
    pytest.param(
        Episode(COOLING, 50, "high", "w1", 50 + DAY, "high"),
        None,
        50 + DAY,
        0,
        DAY,
        False,
        None,
        None,
        id="cooldown-expires",
    ),
    pytest.param(None, "high", 10, 0, 0, True, MUTED, None, id="inhibited-by-a-critical"),
    pytest.param(
        None,
        "critical",
        10,
        0,
        0,
        True,
        FIRING,
        ("firing", "critical", "w@10"),
        id="critical-is-never-inhibited",
    ),
    pytest.param(
        Episode(MUTED, 10, "high", "w@10", None, None, "inhibited"),
        "high",
        20,
        0,
        0,
        False,
        FIRING,
        ("firing", "high", "w@10"),
        id="fires-when-inhibition-lifts",
    ),
    pytest.param(firing("high"), "high", 20, 0, 0, True, FIRING, None, id="firing-stays-inhibited"),
    pytest.param(
        firing("medium"),
        "high",
        20,
        0,
        0,
        True,
        FIRING,
        None,
        id="no-escalation-below-critical-while-inhibited",
    ),
]


@pytest.mark.parametrize(
    ("before", "level", "now", "hold", "cooldown", "inhibited", "phase", "emitted"), CASES
)
def test_transition_table(
    before: Episode | None,
    level: str | None,
    now: float,
    hold: float,
    cooldown: float,
    inhibited: bool,
    phase: str | None,
    emitted: tuple[str, str, str] | None,
) -> None:
    after, emit = step(before, level, now, hold, cooldown, inhibited)
    assert (after.phase if after else None) == phase
    assert ((emit.status, emit.level, emit.warning_id) if emit else None) == emitted


def test_episode_round_trips_through_its_list_form() -> None:
    ep = Episode(MUTED, 1.0, "high", "w", 5.0, "medium", "cooldown")
    assert Episode.from_list(ep.to_list()) == ep


LEVEL = st.sampled_from([None, "low", "medium", "high", "critical"])


@settings(max_examples=300, deadline=None)
@given(
    level=LEVEL,
    times=st.lists(st.floats(0, 30 * DAY), min_size=1, max_size=40).map(sorted),
    hold=st.sampled_from([0.0, H, DAY]),
    cooldown=st.sampled_from([0.0, DAY, 7 * DAY]),
    inhibited=st.booleans(),
)
def test_a_constant_input_never_flaps(
    level: str | None, times: list[float], hold: float, cooldown: float, inhibited: bool
) -> None:
    """The same condition evaluated again and again: at most one firing, never a resolution."""
    ep: Episode | None = None
    emitted = []
    for now in times:
        ep, emit = step(ep, level, now, hold, cooldown, inhibited)
        if emit is not None:
            emitted.append(emit.status)
    assert "resolved" not in emitted
    assert emitted.count("firing") <= 1


@settings(max_examples=300, deadline=None)
@given(
    levels=st.lists(LEVEL, min_size=1, max_size=40),
    cooldown=st.sampled_from([0.0, DAY, 7 * DAY]),
    hold=st.sampled_from([0.0, H]),
)
def test_every_resolution_closes_the_firing_before_it(
    levels: list[str | None], cooldown: float, hold: float
) -> None:
    """Firings and resolutions alternate; a resolution carries its firing's id; a repeat within
    the cooldown is only published when its level is above the one resolved."""
    ep: Episode | None = None
    open_id: str | None = None
    last_resolved: tuple[float, str] | None = None
    for n, level in enumerate(levels):
        now = n * 6 * H
        ep, emit = step(ep, level, now, hold, cooldown)
        if emit is None:
            continue
        if emit.status == "resolved":
            assert emit.warning_id == open_id
            open_id, last_resolved = None, (now, emit.level)
        elif open_id is not None:
            assert emit.warning_id == open_id  # an escalation of the open episode
        else:
            if last_resolved is not None and now < last_resolved[0] + cooldown:
                order = ["low", "medium", "high", "critical"]
                assert order.index(emit.level) > order.index(last_resolved[1])
            open_id = emit.warning_id


# ------------------------------------------------------------------ through the core

RULES = """
groups:
  - name: overdue
    cooldown: 10d
    rules:
      - name: late
        expr: days_past_due >= 30
        level: medium
        escalate:
          - {level: high, expr: days_past_due >= 60}
      - name: very_late
        expr: days_past_due >= 90
        level: critical
  - name: exposure
    rules:
      - name: near_limit
        expr: credit_utilisation >= 0.9
        for: 2d
        level: medium
      - name: drift_or_silence
        expr: days_late_drift >= 1.0 || order_amount_zscore >= 3.0
        level: low
"""


def ctx_for(text: str = RULES) -> Context:
    rules, errors = load_files({"test.yaml": text}, "t1")
    assert errors == [] and rules is not None
    return Context(rules=rules)


def statuses(warnings: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(w["rule"], w["status"], w["level"]) for w in warnings]


def test_escalation_keeps_the_id_and_resolution_carries_it() -> None:
    ctx = ctx_for()
    state, w1 = run([customer(0, 10_000.0), statement(1, 500.0, 30, "delinquent")], ctx)
    assert statuses(w1) == [("late", "firing", "medium")]
    state, w2 = run([statement(31, 500.0, 60, "delinquent")], ctx, state)
    assert statuses(w2) == [("late", "firing", "high")]
    assert w2[0]["escalated"] and w2[0]["warning_id"] == w1[0]["warning_id"]
    state, w3 = run([statement(61, 0.0, 0, "paid_in_full")], ctx, state)
    assert statuses(w3) == [("late", "resolved", "high")]
    assert w3[0]["warning_id"] == w1[0]["warning_id"]
    assert all(w["rules_version"] == "t1" and w["group"] == "overdue" for w in w1 + w2 + w3)


def test_a_critical_warning_inhibits_lower_ones_of_its_group_until_it_resolves() -> None:
    ctx = ctx_for()
    # Straight to 90 days: the critical fires, the medium/high one of the group is muted.
    state, w1 = run([customer(0, 10_000.0), statement(1, 500.0, 90, "delinquent")], ctx)
    assert statuses(w1) == [("very_late", "firing", "critical")]
    assert state.watch["late"][0] == "muted"
    # Down to 60 days: the critical resolves and the inhibited one fires at once.
    state, w2 = run([statement(31, 500.0, 60, "delinquent")], ctx, state)
    assert sorted(statuses(w2)) == [
        ("late", "firing", "high"),
        ("very_late", "resolved", "critical"),
    ]


def test_a_repeat_within_the_cooldown_is_muted_and_fires_when_it_ends() -> None:
    ctx = ctx_for()
    state, w1 = run([customer(0, 10_000.0), statement(1, 500.0, 30, "delinquent")], ctx)
    state, w2 = run([statement(5, 0.0, 0, "paid_in_full")], ctx, state)
    assert statuses(w2) == [("late", "resolved", "medium")]
    state, w3 = run([statement(8, 500.0, 30, "delinquent")], ctx, state)
    assert w3 == []  # within the 10-day cooldown, same level
    assert state.watch["late"][0] == "muted"
    state, w4 = run([statement(15, 500.0, 30, "delinquent")], ctx, state)
    assert statuses(w4) == [("late", "firing", "medium")]  # the cooldown ended on day 15
    assert w4[0]["warning_id"] != w1[0]["warning_id"]


def test_for_holds_the_warning_pending_on_event_time() -> None:
    ctx = ctx_for()
    state, w1 = run([customer(0, 1000.0), invoice(1, "i1", 950, 60)], ctx)
    assert w1 == [] and state.watch["near_limit"][0] == "pending"
    state, w2 = run([payment(2, "p1", 1)], ctx, state)  # 1 day later: still pending
    assert w2 == []
    state, w3 = run([payment(3, "p2", 1)], ctx, state)  # 2 days after it began to hold
    assert statuses(w3) == [("near_limit", "firing", "medium")]


def test_missing_features_never_hold_and_never_raise() -> None:
    ctx = ctx_for()
    state = CustomerState("c1")
    state.clock = ts(1)
    out = Outputs()
    # Nothing computed at all: every rule reads a missing name.
    evaluate(state, {}, "e1", ts(1), ctx, out)
    assert out.warnings == []
    evaluate(state, {"days_past_due": None, "credit_utilisation": None}, "e2", ts(1), ctx, out)
    assert out.warnings == []
    # CEL's "or" absorbs the missing side when the other side holds.
    evaluate(state, {"days_late_drift": None, "order_amount_zscore": 5}, "e3", ts(1), ctx, out)
    assert statuses(out.warnings) == [("drift_or_silence", "firing", "low")]


def test_a_rule_removed_from_the_rule_set_resolves_its_warning() -> None:
    ctx = ctx_for()
    state, w1 = run([customer(0, 10_000.0), statement(1, 500.0, 30, "delinquent")], ctx)
    ctx.use_rules(ctx_for(RULES.replace("name: late", "name: late_v2")).rules)
    state, w2 = run([statement(2, 500.0, 30, "delinquent")], ctx, state)
    assert sorted(statuses(w2)) == [("late", "resolved", "medium"), ("late_v2", "firing", "medium")]
    resolved = next(w for w in w2 if w["status"] == "resolved")
    assert resolved["warning_id"] == w1[0]["warning_id"]
    assert "not in the active rule set t1" in resolved["reasons"][0]["text"]


def test_a_redelivered_trigger_gives_the_same_warning_id() -> None:
    ids = []
    for _ in range(2):
        _, warnings = run([customer(0, 10_000.0), statement(1, 500.0, 30, "delinquent")], ctx_for())
        ids.append([w["warning_id"] for w in warnings])
    assert ids[0] == ids[1] and ids[0]


def test_segment_filters_limit_a_rule_to_its_customers() -> None:
    text = RULES.replace(
        "        expr: days_past_due >= 30\n",
        "        expr: days_past_due >= 30\n        segments: {industry: [retail]}\n",
    )
    ctx = ctx_for(text)
    _, other = run([customer(0, 10_000.0), statement(1, 500.0, 30, "delinquent")], ctx)
    assert other == []
    retail = customer(0, 10_000.0, segment={"industry": "retail"})
    _, mine = run([retail, statement(1, 500.0, 30, "delinquent")], ctx)
    assert statuses(mine) == [("late", "firing", "medium")]


def test_warnings_carry_reasons_labels_and_annotations() -> None:
    text = RULES.replace(
        "        level: critical\n",
        "        level: critical\n        labels: {team: collections}\n"
        "        annotations: {summary: 'oldest item {{ days_past_due }} days late, "
        "limit {{ credit_limit:,.0f }}'}\n",
    )
    _, warnings = run([customer(0, 10_000.0), statement(1, 500.0, 90, "delinquent")], ctx_for(text))
    (w,) = warnings
    assert w["labels"] == {"team": "collections"}
    assert w["annotations"] == {"summary": "oldest item 90 days late, limit 10,000"}
    assert w["reasons"] == [
        {
            "feature": "days_past_due",
            "value": 90.0,
            "op": ">=",
            "threshold": 90.0,
            "text": "days_past_due is 90 (threshold >= 90)",
        }
    ]
