"""The invoices' aging sums kept per book (``features.invoice_ages``) against a loop over
the book: after every step of random receivables scripts, at the customer's clock and at
times around the ages where an invoice changes a feature (due date, buckets, delinquency
levels and their 6- and 12-month windows), both by the index (any number of invoices)
and by the loop, and whatever the order of arrival within the allowed lateness.

The reference below is the direct computation the features made before the sums were
kept: one loop over the open invoices and one over the closed ones per feature. What the
closed invoices give is kept beside the book while they are the same (across steps that
change only the open invoices): it is checked against a loop over the closed invoices,
after a round trip through the encoding (which does not carry it) too.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from risk_factory import T0S, iso_ts, late_arrival_order, parse

from stream_risk.core import Context, CustomerState, step
from stream_risk.core import features as feats
from stream_risk.core.features import (
    DELINQUENCY_LEVELS,
    INVOICE_CROSSINGS,
    LATE_HISTORY,
    closed_ages,
    invoice_ages,
)
from stream_risk.core.receivables import INV_DUE, INV_OPEN
from stream_risk.core.state import decode, encode

DAY = 86_400.0
LATENESS = Context().allowed_lateness


def reference(book: dict[str, Any], now: float) -> dict[str, Any]:
    """What the invoices give the features at ``now``, by loops over the book."""
    invoices = book["inv"]
    overdue = 0.0
    for amount, _, due, _ in invoices.values():
        if due < now:
            overdue += amount
    buckets = [0.0] * 5
    overdue_count = 0
    past_30_count = 0
    for amount, _, due, _ in invoices.values():
        if amount <= 0:
            continue
        past_30_count += now - due >= 30 * DAY
        if due < now:
            days = int((now - due) // DAY)
            overdue_count += 1
            buckets[
                0 if days <= 0 else 1 if days <= 30 else 2 if days <= 60 else 3 if days <= 90 else 4
            ] += amount
        else:
            buckets[0] += amount
    fell_due = 0.0
    horizon = now - 90 * DAY
    for _, amount, due, _ in invoices.values():
        if horizon < due <= now:
            fell_due += amount
    for closed in book["closed"]:
        if horizon < closed[1] <= now:
            fell_due += closed[2]
    counts = [[0, 0] for _ in DELINQUENCY_LEVELS]
    reached = [
        (inv[INV_DUE], (now - inv[INV_DUE]) / DAY)
        for inv in invoices.values()
        if inv[INV_OPEN] > 0 and now - inv[INV_DUE] >= 30 * DAY
    ]
    reached += [(c[1], c[3]) for c in book["closed"] if c[3] >= 30]
    for due, days in reached:
        for level, count in zip(DELINQUENCY_LEVELS, counts, strict=True):
            if days < level:
                break
            t = due + level * DAY
            if t > now:
                continue
            count[0] += now - t < 182 * DAY
            count[1] += now - t < 365 * DAY
    crossings = [
        due + offset * DAY
        for amount, _, due, _ in invoices.values()
        if amount > 0
        for offset in INVOICE_CROSSINGS
        if due + offset * DAY > now
    ]
    open_dues = [inv[INV_DUE] for inv in invoices.values() if inv[INV_OPEN] > 0]
    return {
        "open_balance": _in_order(inv[INV_OPEN] for inv in invoices.values()),
        "oldest_due": min(open_dues, default=None),
        "overdue": overdue,
        "buckets": tuple(buckets),
        "overdue_count": overdue_count,
        "past_30_count": past_30_count,
        "fell_due": fell_due,
        "delinquent": tuple((c[0], c[1]) for c in counts),
        "next_crossing": min(crossings, default=None),
    }


def _in_order(values: Any) -> float:
    total = 0.0
    for value in values:
        total += value
    return total


def kept(state: CustomerState, now: float) -> dict[str, Any]:
    ages = invoice_ages(state, now)
    return {name: getattr(ages, name) for name in reference(state.book, now)}


# ------------------------------------------------------------------ scripts

AMOUNTS = st.sampled_from([10.0, 99.99, 100.0, 250.5, 400.0, 1200.0, 0.1, 0.2])
GAPS = st.sampled_from([1, 3600, DAY, 3 * DAY, 7 * DAY, 20 * DAY, 31 * DAY, 61 * DAY])
TERMS = st.sampled_from([0, 14, 30, 30, 30, 30, 45, 60])


@st.composite
def scripts(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Invoices (some re-sent with another amount or due date), payments with and
    without an invoice, bounces, in arrival order within the allowed lateness."""
    n = draw(st.integers(min_value=1, max_value=40))
    t = T0S
    events: list[dict[str, Any]] = []
    invoices: list[str] = []
    payments: list[str] = []
    for k in range(n):
        t += draw(GAPS)
        kind = draw(st.sampled_from(["invoice"] * 4 + ["payment"] * 3 + ["bounce", "resend"]))
        envelope = {"customer_id": "c1", "event_id": f"e{k}", "occurred_at": iso_ts(t)}
        if kind == "resend" and invoices:
            invoice_id = draw(st.sampled_from(invoices))
            kind = "invoice"
        elif kind == "bounce" and payments:
            payment_id = draw(st.sampled_from(payments))
            events.append(
                {
                    **envelope,
                    "type": "payment",
                    "payment_id": payment_id,
                    "amount": draw(AMOUNTS),
                    "currency": "EUR",
                    "status": draw(st.sampled_from(["bounced", "reversed"])),
                }
            )
            continue
        else:
            kind = "invoice" if kind in ("resend", "bounce") else kind
            invoice_id = f"i{k}"
        if kind == "invoice":
            invoices.append(invoice_id)
            events.append(
                {
                    **envelope,
                    "type": "invoice",
                    "invoice_id": invoice_id,
                    "amount": draw(AMOUNTS),
                    "currency": "EUR",
                    "due_at": iso_ts(t + draw(TERMS) * DAY),
                }
            )
        else:
            payment_id = f"p{k}"
            payments.append(payment_id)
            event = {
                **envelope,
                "type": "payment",
                "payment_id": payment_id,
                "amount": draw(AMOUNTS),
                "currency": "EUR",
                "status": "settled",
            }
            if invoices and draw(st.booleans()):
                event["invoice_id"] = draw(st.sampled_from(invoices))
            events.append(event)
    delays = draw(
        st.lists(
            st.sampled_from([0.0, 0.0, 3600.0, 3 * DAY, LATENESS]),
            min_size=len(events),
            max_size=len(events),
        )
    )
    times = [parse(e).occurred_at.timestamp() for e in events]
    return [events[i] for i in late_arrival_order(times, delays, LATENESS)]


def probe_times(state: CustomerState) -> list[float]:
    """The clock, and the ages around which an invoice changes what it gives."""
    now = state.clock
    assert now is not None
    times = [now]
    dues = [inv[INV_DUE] for inv in state.book["inv"].values()]
    dues += [c[1] for c in state.book["closed"]]
    for due in dues[-6:]:
        for offset in INVOICE_CROSSINGS:
            t = due + offset * DAY
            times += [t - 1.0, t, t + 1.0]
    return [t for t in times if t >= now - LATENESS]


@pytest.mark.parametrize("indexed_from", [0, feats.INDEXED_FROM, 10**9])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=scripts())
def test_kept_sums_match_a_loop_over_the_book_after_every_step(
    events: list[dict[str, Any]], indexed_from: int
) -> None:
    default, feats.INDEXED_FROM = feats.INDEXED_FROM, indexed_from
    try:
        ctx = Context()
        state = CustomerState("c1")
        for event in events:
            state, _ = step(state, parse(event), ctx)
            for now in probe_times(state):
                # Each time twice: once aged, once kept from that same time.
                assert kept(state, now) == reference(state.book, now)
                assert kept(state, now) == reference(state.book, now)
    finally:
        feats.INDEXED_FROM = default


def test_the_index_is_used_for_many_invoices_in_due_order() -> None:
    ctx = Context()
    state = CustomerState("c1")
    for k in range(feats.INDEXED_FROM + 4):
        t = T0S + k * 7 * DAY
        event = {
            "type": "invoice",
            "customer_id": "c1",
            "event_id": f"e{k}",
            "occurred_at": iso_ts(t),
            "invoice_id": f"i{k}",
            "amount": 100.0 + k,
            "currency": "EUR",
            "due_at": iso_ts(t + 30 * DAY),
        }
        state, _ = step(state, parse(event), ctx)
    now = T0S + 400 * DAY
    ages = invoice_ages(state, now)
    assert ages.dues is not None
    assert kept(state, now) == reference(state.book, now)
    assert ages.buckets[4] > 0 and ages.delinquent[2][1] > 0


def closed_reference(closed: list[list[Any]], now: float) -> dict[str, Any]:
    """What the closed invoices give at ``now``, by loops over them."""
    horizon = now - 90 * DAY
    counts = [[0, 0] for _ in DELINQUENCY_LEVELS]
    for c in closed:
        for level, count in zip(DELINQUENCY_LEVELS, counts, strict=True):
            if c[3] < 30 or c[3] < level:
                break
            t = c[1] + level * DAY
            if t <= now:
                count[0] += now - t < 182 * DAY
                count[1] += now - t < 365 * DAY
    return {
        "fell_due": [c[2] for c in closed if horizon < c[1] <= now],
        "delinquent": tuple((c[0], c[1]) for c in counts),
        # The latest 24 of the year (with no statements), by time and then days late.
        "observations": sorted(
            (float(c[0]), float(c[3])) for c in closed if now - LATE_HISTORY < c[0] <= now
        )[-24:],
    }


def closed_kept(state: CustomerState, now: float) -> dict[str, Any]:
    closed = feats._age_closed(closed_ages(state.book), now)
    observations = feats._days_late_observations(state, now)
    return {
        "fell_due": closed.fell_due,
        "delinquent": closed.delinquent,
        "observations": observations,
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=scripts())
def test_what_closed_invoices_give_is_kept_while_they_are_the_same(
    events: list[dict[str, Any]],
) -> None:
    ctx = Context()
    state = CustomerState("c1")
    for event in events:
        before = getattr(state.book, "closed_ages", None)
        closed_before = list(state.book["closed"])
        state, _ = step(state, parse(event), ctx)
        if before is not None and state.book["closed"] == closed_before:
            assert closed_ages(state.book) is before  # kept, not rebuilt
        for now in probe_times(state):
            # Twice: aged, then kept from that same time.
            assert closed_kept(state, now) == closed_reference(state.book["closed"], now)
            assert closed_kept(state, now) == closed_reference(state.book["closed"], now)
        # The encoding does not carry it: a decoded state builds its own, the same.
        raw = encode(state)
        again = decode(raw)
        assert getattr(again.book, "closed_ages", None) is None
        assert encode(again) == raw
        for now in probe_times(again)[::7]:
            assert kept(again, now) == reference(again.book, now) == kept(state, now)
