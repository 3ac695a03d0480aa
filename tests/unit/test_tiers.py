"""Tiers with hysteresis: up at once, down only after sustained improvement (``now`` passed in)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_risk.core import Context, CustomerState
from stream_risk.core.alerting import evaluate
from stream_risk.core.outputs import Outputs
from stream_risk.core.tiers import TierHold, decide
from stream_risk.schemas.outputs import CreditAction, TierChange

DAY = 86_400.0
DOWN = 30 * DAY

CASES = [
    pytest.param(TierHold("low"), "low", 0, "low", None, id="stays-low"),
    pytest.param(TierHold("low"), "high", 0, "high", ("low", "high"), id="up-at-once"),
    pytest.param(TierHold("medium"), "high", 0, "high", ("medium", "high"), id="medium-to-high"),
    pytest.param(TierHold("high"), "low", 0, "high", None, id="first-better-day-holds"),
    pytest.param(
        TierHold("high", 0, 0, "low"), "low", DOWN - 1, "high", None, id="just-short-of-30-days"
    ),
    pytest.param(
        TierHold("high", 0, 0, "low"), "low", DOWN, "low", ("high", "low"), id="down-after-30-days"
    ),
    pytest.param(
        TierHold("high", 0, 0, "medium"),
        "low",
        DOWN,
        "medium",
        ("high", "medium"),
        id="down-to-the-worst-tier-of-the-period",
    ),
    pytest.param(
        TierHold("high", 0, 0, "low"),
        "high",
        10 * DAY,
        "high",
        None,
        id="back-up-ends-the-improvement",
    ),
    pytest.param(TierHold("low"), "unknown", 0, "low", None, id="unknown-raw-tier-ignored"),
]


@pytest.mark.parametrize(("held", "raw", "now", "tier", "change"), CASES)
def test_decide_table(
    held: TierHold, raw: str, now: float, tier: str, change: tuple[str, str] | None
) -> None:
    after, moved = decide(held, raw, now, DOWN)
    assert after.tier == tier
    assert ((moved.before, moved.after) if moved else None) == change


def test_an_interrupted_improvement_starts_over() -> None:
    held = TierHold("high", 0.0)
    held, _ = decide(held, "low", 1 * DAY, DOWN)
    held, _ = decide(held, "high", 20 * DAY, DOWN)  # relapse
    held, moved = decide(held, "low", 40 * DAY, DOWN)
    assert moved is None and held.improving_since == 40 * DAY
    held, moved = decide(held, "low", 70 * DAY, DOWN)
    assert moved is not None and held.tier == "low"


@settings(max_examples=200, deadline=None)
@given(
    raws=st.lists(st.sampled_from(["low", "medium", "high"]), min_size=1, max_size=60),
    gap=st.sampled_from([DAY, 7 * DAY, 31 * DAY]),
)
def test_tiers_never_fall_faster_than_the_hysteresis_allows(raws: list[str], gap: float) -> None:
    rank = {"low": 0, "medium": 1, "high": 2}
    held = TierHold("low")
    history: list[tuple[float, str]] = []
    for n, raw in enumerate(raws):
        now = n * gap
        held, moved = decide(held, raw, now, DOWN)
        history.append((now, raw))
        assert rank[held.tier] >= rank[raw] or moved is None or moved.direction == "up"
        assert rank[held.tier] >= rank[raw]  # never below the score's own tier
        if moved is not None and moved.direction == "down":
            # Every raw tier of the last 30 days was at or below the new tier.
            recent = [r for t, r in history if t >= now - DOWN]
            assert all(rank[r] <= rank[held.tier] for r in recent[1:])


@settings(max_examples=100, deadline=None)
@given(raw=st.sampled_from(["low", "medium", "high"]), n=st.integers(1, 50))
def test_a_constant_raw_tier_changes_the_tier_at_most_once(raw: str, n: int) -> None:
    held, changes = TierHold("medium"), 0
    for i in range(n):
        held, moved = decide(held, raw, i * 5 * DAY, DOWN)
        changes += moved is not None
    assert changes <= 1


def evaluation(state: CustomerState, raw: str, now: float, ctx: Context) -> Outputs:
    out = Outputs()
    state.clock = now
    features: dict[str, Any] = {"raw_tier": raw, "risk_score": 0.5, "risk_score_change": 0.1}
    evaluate(state, features, f"e@{now:g}", now, ctx, out)
    return out


def test_tier_changes_are_published_with_before_after_and_reasons() -> None:
    ctx = Context()
    state = CustomerState("c1", credit_limit=10_000.0, payment_terms_days=30)
    state.risk_score = 0.7
    up = evaluation(state, "high", 0.0, ctx)
    (change,) = up.tier_changes
    model = TierChange.model_validate(change)
    assert (model.before, model.after, model.direction) == ("low", "high", "up")
    assert {r.feature for r in model.reasons} >= {"risk_score", "raw_tier", "risk_score_change"}
    assert state.tier == "high"
    # Entering the high tier recommends the tier policy's actions, with evidence.
    (action,) = [a for a in up.credit_actions if a["source"] == "tier_change"]
    rec = CreditAction.model_validate(action)
    assert rec.source_id == change["change_id"] and rec.status == "proposed"
    assert {a.kind for a in rec.recommendations} >= {"reduce_credit_limit", "shorten_terms"}
    limit = next(a for a in action["recommendations"] if a["kind"] == "reduce_credit_limit")
    assert limit["from"] == 10_000.0 and limit["to"] == 7_000.0
    # Better for 29 days: no change; on day 30: down, once.
    assert evaluation(state, "low", 1 * DAY, ctx).tier_changes == []
    assert evaluation(state, "low", 30 * DAY, ctx).tier_changes == []
    down = evaluation(state, "low", 31 * DAY, ctx).tier_changes
    assert [(c["before"], c["after"], c["direction"]) for c in down] == [("high", "low", "down")]
    assert evaluation(state, "low", 32 * DAY, ctx).tier_changes == []


def test_the_tier_falls_back_to_the_score_tier_when_raw_tier_is_absent() -> None:
    ctx = Context()
    state = CustomerState("c1")
    state.clock = 0.0
    state.tier = "medium"  # what the step derived from the score
    out = Outputs()
    evaluate(state, {}, "e1", 0.0, ctx, out)
    assert [(c["before"], c["after"]) for c in out.tier_changes] == [("low", "medium")]
