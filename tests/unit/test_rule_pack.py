"""The default rule pack on fixed event sequences of typical trade-credit customers.

Each story is one customer's events in time order, replayed through ``step`` and its
wake-ups with the default pack: what a collections desk should and should not see.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from risk_factory import T0, customer, follow, invoice, order, parse, payment, statement, ts

from stream_risk.core import Context, CustomerState, step
from stream_risk.core.scoring import risk_score
from stream_risk.core.trainer import Trainer
from stream_risk.schemas.outputs import LEVEL_ORDER

SEVERE = ("high", "critical")


def replay(
    events: list[dict[str, Any]], until: float, ctx: Context | None = None
) -> list[tuple[float, dict[str, Any]]]:
    """Apply ``events`` in order, following wake-ups in between; (day, warning) pairs."""
    ctx = ctx or Context()
    state: CustomerState | None = None
    got: list[tuple[float, dict[str, Any]]] = []
    events = sorted(events, key=lambda e: e["occurred_at"])
    for raw in events:
        event = parse(raw)
        if state is None:
            state = CustomerState(event.customer_id)
        else:
            for w in follow(state, event.occurred_at.timestamp(), ctx):
                got.append((_day(w), w))
        state, out = step(state, event, ctx)
        got.extend((_day(w), w) for w in out.warnings)
    assert state is not None
    got.extend((_day(w), w) for w in follow(state, ts(until), ctx))
    return got


def _day(w: dict[str, Any]) -> float:
    return (datetime.fromisoformat(w["occurred_at"]) - T0).total_seconds() / 86_400.0


def firing(
    got: list[tuple[float, dict[str, Any]]], min_level: str = "low"
) -> list[tuple[float, str, str]]:
    return [
        (day, w["rule"], w["level"])
        for day, w in got
        if w["status"] == "firing" and LEVEL_ORDER[w["level"]] >= LEVEL_ORDER[min_level]
    ]


def monthly_trade(
    months: int,
    amount: float,
    *,
    late_days: float = 0.0,
    start: int = 0,
    skip: frozenset[int] = frozenset(),
    amounts: dict[int, float] | None = None,
) -> list[dict[str, Any]]:
    """An order and its 30-day invoice each month, paid in full ``late_days`` after due."""
    events: list[dict[str, Any]] = []
    for m in range(start, start + months):
        day = 30 * m + 2
        value = (amounts or {}).get(m, amount)
        events.append(order(day, f"o{m}", value))
        events.append(invoice(day + 1, f"i{m}", value, day + 31))
        if m not in skip:
            events.append(payment(day + 31 + late_days, f"p{m}", value, invoice_id=f"i{m}"))
    return events


def test_a_steady_slow_payer_is_no_emergency() -> None:
    # Pays every invoice 20 days late, month after month: a habit, priced into its terms.
    events = [customer(0, 20_000.0), *monthly_trade(18, 2_000.0, late_days=20)]
    got = replay(events, 18 * 30 + 60)
    assert firing(got, "medium") == []


def test_a_seasonal_buyer_is_not_warned() -> None:
    # Buys four times as much in the two summer months every year, and pays on time.
    season = {m: 8_000.0 for m in (5, 6, 17, 18)}
    events = [customer(0, 50_000.0), *monthly_trade(24, 2_000.0, amounts=season)]
    got = replay(events, 24 * 30 + 40)
    assert firing(got, "medium") == []


def test_a_disputed_invoice_stays_below_high() -> None:
    # One invoice is disputed and paid 40 days late once the dispute is settled; the
    # customer pays everything else two days before the due date. One invoice a month
    # late while the others are paid is no overdue warning; buying monthly, the customer
    # pays nothing for two months meanwhile, which the payment-stop rules see, at medium.
    trade = monthly_trade(12, 2_000.0, late_days=-2.0, skip=frozenset({6}))
    events = [customer(0, 20_000.0), *trade]
    events.append(payment(6 * 30 + 2 + 31 + 40, "p6", 2_000.0, invoice_id="i6"))
    got = replay(events, 12 * 30 + 60)
    fired = firing(got)
    assert fired and "overdue_30_days" not in {rule for _, rule, _ in fired}, fired
    assert all(level == "medium" for _, _, level in fired), fired
    resolved = {w["rule"] for _, w in got if w["status"] == "resolved"}
    assert resolved == {rule for _, rule, _ in fired}, "every warning resolves once it is paid"


def test_a_bust_out_is_high_before_an_invoice_is_a_month_late() -> None:
    # Six sound months, then orders jump towards the limit and payments stop.
    sound = monthly_trade(6, 2_000.0)
    burst: list[dict[str, Any]] = []
    for n in range(8):
        day = 6 * 30 + 2 + 7 * n
        burst.append(order(day, f"b{n}", 3_000.0))
        burst.append(invoice(day + 1, f"bi{n}", 3_000.0, day + 31))
    events = [customer(0, 25_000.0), *sound, *burst]
    got = replay(events, 6 * 30 + 2 + 150)
    severe = firing(got, "high")
    assert severe, "a bust-out must reach high"
    first_due = 6 * 30 + 2 + 31
    first_severe = min(day for day, _, _ in severe)
    # Before the first unpaid invoice is 30 days past due (where overdue rules start).
    assert first_severe < first_due + 30, severe
    assert severe[0][1] != "overdue_30_days"


def test_one_invoice_two_months_late_while_paying_the_rest_stays_medium() -> None:
    # One invoice stays open 75 days past due (a dispute, a lost delivery note) while the
    # customer pays every other invoice on time: late, but paying what falls due.
    # (It pays two days before the due date, so that no payment falls on the instant the
    # late invoice is a month late: that is the next invoice's due date.)
    trade = monthly_trade(10, 2_000.0, late_days=-2.0, skip=frozenset({4}))
    events = [customer(0, 20_000.0), *trade]
    due = 4 * 30 + 2 + 31
    events.append(payment(due + 75, "p4", 2_000.0, invoice_id="i4"))
    got = replay(events, 10 * 30 + 60)
    overdue = [w for _, w in got if w["rule"] == "overdue_30_days" and w["status"] == "firing"]
    assert overdue and all(w["level"] == "medium" for w in overdue), overdue
    assert not any(w["escalated"] for w in overdue)
    resolved = [
        day for day, w in got if w["rule"] == "overdue_30_days" and w["status"] == "resolved"
    ]
    assert resolved == [due + 75]


def test_two_months_late_without_paying_is_high_once() -> None:
    # Stops paying after four sound months and keeps buying a little.
    events = [customer(0, 20_000.0), *monthly_trade(4, 2_000.0)]
    for m in range(4, 8):
        day = 30 * m + 2
        events.append(order(day, f"o{m}", 500.0))
        events.append(invoice(day + 1, f"i{m}", 500.0, day + 31))
    got = replay(events, 8 * 30)
    first_due = 4 * 30 + 2 + 31
    severe = firing(got, "high")
    assert severe and severe[0][1] == "overdue_30_days", severe
    # Escalated at 60 days past due, as the same warning that fired at 30.
    assert severe[0][0] == first_due + 60
    overdue = [w for _, w in got if w["rule"] == "overdue_30_days" and w["status"] == "firing"]
    assert len({w["warning_id"] for w in overdue}) == 1
    # Once 60 days past due the likely-default warning does not repeat the evidence.
    assert all(day < first_due + 60 for day, rule, _ in severe if rule == "likely_default")


def _learned_context() -> Context:
    """A context whose scorer learned from outcomes that a month late often ends in default."""
    ctx = Context()
    trainer = Trainer(["days_past_due"], refit_every=500)
    rng = random.Random(5)
    for i in range(2_000):
        dpd = rng.choice([0, 0, 0, 15, 30, 45])
        example = {
            "event_id": str(i),
            "features": {"days_past_due": dpd},
            "adverse": rng.random() < (0.8 if dpd >= 30 else 0.05),
        }
        snapshot = trainer.learn_one(example)
        if snapshot is not None:
            ctx.scorer.load(snapshot)
    assert ctx.scorer.model_weight() > 0.5
    return ctx


def test_likely_default_waits_for_a_score_calibrated_on_outcomes() -> None:
    # Four sound months, then 15,000 invoiced on a 10,000 limit and nothing paid.
    events = [customer(0, 10_000.0), *monthly_trade(4, 2_000.0)]
    for n in range(3):
        day = 4 * 30 + 2 + n
        events.append(order(day, f"b{n}", 5_000.0))
        events.append(invoice(day + 1, f"bi{n}", 5_000.0, day + 31))
    first_due = 4 * 30 + 3 + 31
    # The cold-start scorecard alone puts such a customer above one half before it is two
    # months late: a prior, not a probability learned from outcomes.
    assert risk_score({"days_past_due": 50, "credit_utilisation": 1.5}) >= 0.5

    def likely(ctx: Context | None) -> list[float]:
        got = replay(events, first_due + 59, ctx)
        return [day for day, rule, _ in firing(got) if rule == "likely_default"]

    assert likely(None) == []
    learned = likely(_learned_context())
    assert learned and first_due < learned[0] < first_due + 60, learned


def _returned(
    months: tuple[int, ...], made_good_after: float | None
) -> list[tuple[float, str, str]]:
    """Monthly trade; the bank returns the payments of ``months`` three days after they
    came, and the customer pays again ``made_good_after`` days after each return."""
    events = [customer(0, 20_000.0), *monthly_trade(8, 2_000.0)]
    for m in months:
        due = 30 * m + 2 + 31
        events.append(payment(due + 3, f"p{m}", 2_000.0, "bounced", invoice_id=f"i{m}"))
        if made_good_after is not None:
            again = due + 3 + made_good_after
            events.append(payment(again, f"p{m}b", 2_000.0, invoice_id=f"i{m}"))
    return firing(replay(events, 8 * 30 + 60))


def test_a_returned_payment_made_good_within_days_is_no_warning() -> None:
    assert _returned((3,), 7.0) == []


def test_a_returned_payment_not_made_good_is_seen_as_the_invoice_runs_overdue() -> None:
    # The customer goes on paying the later invoices: one invoice a month late is a slip
    # until it is two months late or nothing is paid.
    fired = _returned((3,), None)
    due = 3 * 30 + 2 + 31
    assert (due + 60, "overdue_30_days", "medium") in fired, fired
    assert "bounced_payment" not in {rule for _, rule, _ in fired}
    # One return is no pattern: nothing is high before the invoice is two months late.
    assert all(day >= due + 60 for day, _, level in fired if level in SEVERE), fired


def test_payments_returned_twice_in_90_days_are_medium() -> None:
    fired = _returned((3, 4), 7.0)
    second = 4 * 30 + 2 + 31 + 3
    assert fired == [(second, "bounced_payment", "medium")], fired


def test_returns_made_good_stay_medium_however_many() -> None:
    fired = _returned((3, 4, 5), 7.0)
    assert {(rule, level) for _, rule, level in fired} == {("bounced_payment", "medium")}, fired


def test_returns_not_made_good_are_high() -> None:
    # The second return takes back the only payment of the month before it.
    fired = _returned((3, 4), None)
    second = 4 * 30 + 2 + 31 + 3
    severe = [(day, rule) for day, rule, level in fired if level in SEVERE]
    assert severe[0] == (second, "bounced_payment"), fired


def test_weeks_without_anything_falling_due_are_no_payment_stop() -> None:
    # Orders weekly near a full limit, pays each invoice a few days late; no orders for six
    # weeks (a site closed for the holidays), so for six weeks nothing falls due and nothing
    # is paid, then buying resumes at its usual pace.
    events = [customer(0, 10_000.0)]
    weeks = [w for w in range(40) if not 20 <= w < 26]
    for w in weeks:
        day = 7 * w + 1
        events.append(order(day, f"o{w}", 2_000.0))
        events.append(invoice(day + 1, f"i{w}", 2_000.0, day + 31))
        events.append(payment(day + 31 + 4, f"p{w}", 2_000.0, invoice_id=f"i{w}"))
    got = replay(events, 40 * 7 + 40)
    rules = {rule for _, rule, _ in firing(got)}
    assert not rules & {"bust_out", "payments_stopped_orders_continue"}, firing(got)


def _weekly_buyer(big: dict[int, float]) -> list[tuple[float, dict[str, Any]]]:
    """Orders weekly (900 to 1,100) on 30-day terms, paid on time, near a 6,000 limit;
    ``big`` maps weeks to larger orders."""
    events = [customer(0, 6_000.0)]
    for w in range(30):
        day = 7 * w + 1
        value = big.get(w, 900.0 + 100.0 * (w % 3))
        events.append(order(day, f"o{w}", value))
        events.append(invoice(day + 1, f"i{w}", value, day + 31))
        events.append(payment(day + 31, f"p{w}", value, invoice_id=f"i{w}"))
    return replay(events, 30 * 7 + 40)


def test_one_large_order_near_the_limit_is_no_spike() -> None:
    fired = firing(_weekly_buyer({20: 3_000.0}))
    assert "order_spike_near_limit" not in {rule for _, rule, _ in fired}, fired


def test_buying_up_to_the_limit_is_a_spike() -> None:
    fired = firing(_weekly_buyer({w: 3_000.0 for w in range(20, 24)}))
    assert ("order_spike_near_limit", "medium") in {(rule, level) for _, rule, level in fired}


def _weekly_trade(
    weeks: int, late: dict[int, float | None], amounts: dict[int, float] | None = None
) -> list[dict[str, Any]]:
    """Orders weekly (1,000) on 30-day terms, each invoice paid on its due date; ``late``
    maps weeks to days paid after the due date (``None``: never paid)."""
    events = [customer(0, 20_000.0)]
    for w in range(weeks):
        day = 7 * w + 1
        value = (amounts or {}).get(w, 1_000.0)
        events.append(order(day, f"o{w}", value))
        events.append(invoice(day + 1, f"i{w}", value, day + 31))
        delay = late.get(w, 0.0)
        if delay is not None:
            events.append(payment(day + 31 + delay, f"p{w}", value, invoice_id=f"i{w}"))
    return events


def _due(week: int) -> float:
    return 7 * week + 1 + 31


def _overdue_firings(got: list[tuple[float, dict[str, Any]]]) -> list[tuple[float, str]]:
    return [
        (day, w["level"])
        for day, w in got
        if w["rule"] == "overdue_30_days" and w["status"] == "firing"
    ]


def test_one_invoice_a_month_late_while_the_rest_are_paid_is_no_warning() -> None:
    # One weekly invoice slips 40 days (a query, a lost delivery note); every other is
    # paid on its due date: the dunning run's business, not a credit warning.
    got = replay(_weekly_trade(30, {10: 40.0}), 30 * 7 + 60)
    assert firing(got, "medium") == []


def test_a_second_invoice_a_month_late_is_medium() -> None:
    # Two consecutive invoices slip 45 days while the rest are paid: no longer one slip
    # once the second is a month late too.
    got = replay(_weekly_trade(30, {10: 45.0, 11: 45.0}), 30 * 7 + 60)
    assert _overdue_firings(got) == [(_due(11) + 30, "medium")]


def test_a_bust_out_s_arrears_are_not_hidden_by_its_growing_balance() -> None:
    # Payments stop from week 10 while orders grow fivefold: the first unpaid invoice is
    # a small share of the balance, but nothing is paid: it is warned once the second
    # unpaid invoice is a month late or nothing was paid for 45 days, whichever comes
    # first ...
    amounts = {w: 5_000.0 for w in range(11, 16)}
    late: dict[int, float | None] = {w: None for w in range(10, 16)}
    got = replay(_weekly_trade(16, late, amounts), 16 * 7 + 60)
    last_paid = _due(9)
    assert _overdue_firings(got)[0] == (min(_due(11) + 30, last_paid + 45), "medium")


def test_an_invoice_a_month_late_from_a_customer_that_never_paid_is_medium() -> None:
    # ... or when nothing was ever paid.
    got = replay(_weekly_trade(8, {w: None for w in range(8)}), 8 * 7 + 60)
    assert _overdue_firings(got)[0] == (_due(0) + 30, "medium")


def test_a_statement_account_a_month_late_is_medium_though_it_pays() -> None:
    # A revolving account: the statement reports a missed payment on the whole account,
    # whatever was paid during the month.
    events = [customer(0, 20_000.0)]
    for m in range(6):
        events.append(payment(30 * m + 20, f"p{m}", 300.0))
        events.append(statement(30 * m + 28, 5_000.0, 30 if m == 4 else 0))
    got = replay(events, 6 * 30 + 10)
    assert _overdue_firings(got) == [(4 * 30 + 28, "medium")]
