"""Wake-ups: a customer is re-evaluated only where something it is judged on can change."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from risk_factory import customer, invoice, order, run, ts

from stream_risk.core import Context, CustomerState, advance, review
from stream_risk.core import features as feats
from stream_risk.core.creditpolicy import Increases, policy_of
from stream_risk.core.features import DAY
from stream_risk.core.ruleset import load_files


def wakeups(state: CustomerState, until: float, ctx: Context) -> list[float]:
    """Every wake-up the customer asks for up to ``until`` (what a timer queue fires)."""
    fired: list[float] = []
    while state.next_wakeup is not None and state.next_wakeup <= until:
        wake = state.next_wakeup
        fired.append(wake)
        advance(state, wake, ctx)
        assert state.next_wakeup is None or state.next_wakeup > wake
    return fired


def many_overdue(count: int) -> list[dict[str, Any]]:
    """``count`` invoices, each due at another time of day."""
    events = [customer(0, 1e9)]
    for k in range(count):
        events.append(invoice(k / count, f"i{k}", 100.0, 10 + k / count))
    return events


def test_many_overdue_invoices_wake_the_customer_about_once_a_day() -> None:
    ctx = Context()
    state, _ = run(many_overdue(40), ctx)
    fired = wakeups(state, ts(10 + 120), ctx)
    # One daily tick of the oldest invoice (days past due), plus each invoice's few
    # fixed crossings (due, aging buckets, delinquency levels): not 40 a day.
    days = 121
    assert len(fired) <= days + 40 * len(feats.INVOICE_CROSSINGS)
    assert len(fired) < 40 * days / 4


def test_every_feature_is_the_same_at_a_wake_up_as_after_daily_checks() -> None:
    """Skipping the other invoices' daily ticks changes no feature the rules read."""
    ctx = Context()
    sparse, _ = run(many_overdue(6), ctx)
    fired = wakeups(sparse, ts(10 + 200), ctx)
    dense, _ = run(many_overdue(6), ctx)
    for k in range(1, 200 * 6):
        advance(dense, ts(10) + k * DAY / 6, ctx)
    # Between two wake-ups no feature the rules or the score compare may change
    # (only those that grow with the clock, and the ledger's daily exposure).
    moving = {
        "months_on_book",
        "days_since_last_payment",
        "days_since_last_order",
        "exposure_growth_30d",
        "exposure_growth_90d",
    }
    offline = [name for name, f in feats.REGISTRY.items() if f.group != "detectors"]
    dues = [10 * DAY + ts(k / 6) for k in range(6)]
    for before, after in itertools.pairwise(fired):
        a = feats.compute(sparse, before)
        b = feats.compute(sparse, after - 1e-3)
        changed = {k for k in offline if a[k] != b[k]} - moving
        if any(before <= due < after for due in dues):
            # An invoice counts as overdue from just after its due date; the check
            # at the due date itself and the next one a day later see it (as before).
            changed -= {"overdue_balance", "overdue_invoice_count"}
        assert changed == set(), (before, changed)
    later = ts(10 + 199)
    a, b = feats.compute(sparse, later), feats.compute(dense, later)
    assert {k: a[k] for k in offline} == {k: b[k] for k in offline}


def test_order_silence_wakes_the_customer_at_the_rule_threshold() -> None:
    ctx = Context()
    assert ("<=", -0.99) not in ctx.clock_thresholds.get("days_since_last_order", ())
    assert (">=", 60.0) in ctx.clock_thresholds["days_since_last_order"]
    state, _ = run([customer(0, 1e6), order(1, "o1", 100.0)], ctx)
    fired = wakeups(state, ts(1 + 200), ctx)
    assert ts(1 + 60) in fired
    at = feats.compute(state, ts(1 + 60))
    assert at["days_since_last_order"] >= 60.0


def test_no_open_invoices_and_no_windows_means_no_wake_up_but_the_review() -> None:
    ctx = Context()
    state, _ = run([customer(0, 1e6)], ctx)
    # The credit policy's periodic review (90 days after the assessment) is all.
    assert state.next_wakeup == review.next_due(state) == ts(0) + 90 * DAY


def test_a_window_no_rule_or_score_reads_wakes_no_one() -> None:
    # Nothing in the default pack, the score or the detectors reads the 7-day order window.
    default = Context()
    assert 7 * DAY not in default.expiry_watch["orders"]
    events = [customer(0, 1e6), order(1.5, "o1", 100.0)]
    state, _ = run(events, default)
    fired = wakeups(state, ts(1.5 + 100), default)
    assert ts(1.5 + 7) not in fired
    assert ts(1.5 + 30) in fired and ts(1.5 + 90) in fired
    # A pack with a rule on it watches it.
    rule = "{name: r, expr: 'order_count_7d > 3', level: low}"
    rules, errors = load_files({"r.yaml": f"groups: [{{name: g, rules: [{rule}]}}]"})
    assert rules is not None and not errors
    ctx = Context(rules=rules)
    assert 7 * DAY in ctx.expiry_watch["orders"]
    state, _ = run(events, ctx)
    assert ts(1.5 + 7) in wakeups(state, ts(1.5 + 100), ctx)


def test_the_on_time_period_of_an_earned_increase_wakes_the_customer_when_it_ends() -> None:
    ctx = Context()
    credit = policy_of(ctx.rules)
    assert credit is not None and credit.increases is not None
    # Reassessed a day later, so that no review falls on the day the period ends.
    events = [customer(0, 1e4, rating="A"), customer(1.3, 1e4, eid="again", rating="A-")]
    state, _ = run(events, ctx)
    assert state.credit_review is not None
    since = state.credit_review["on_time_since"]
    assert since == ts(0)
    fired = wakeups(state, ts(400), ctx)
    assert since + credit.increases.on_time_for in fired


@pytest.mark.parametrize(
    ("record", "now_day", "expected_day"),
    [
        (None, 10, None),
        ({"on_time_since": ts(0)}, 10, 180),
        ({"on_time_since": ts(0)}, 180, None),  # passed: nothing left to wait for
        ({"on_time_since": ts(0), "increased_at": ts(50)}, 10, 140),
        ({"on_time_since": ts(0), "increased_at": ts(50)}, 140, 180),
        ({"on_time_since": None, "extended_at": ts(100)}, 10, 190),
    ],
)
def test_next_increase_clock(
    record: dict[str, Any] | None, now_day: float, expected_day: float | None
) -> None:
    increases = Increases(on_time_for=180 * DAY, cooldown=90 * DAY)
    state = CustomerState("c1", credit_review=record)
    got = review.next_increase_clock(state, ts(now_day), increases)
    assert got == (None if expected_day is None else ts(expected_day))
