"""Receivables against direct computations: the late-arrival journal, and what is forgotten.

- The journal: entries arriving out of order within the allowed lateness, recorded with
  their undo, give after EVERY arrival the book that applying the entries received so
  far in event-time order from an empty book gives (the direct computation).
- What is forgotten: a customer stepped with the bounded engine and the same customer
  stepped with nothing ever forgotten (the direct computation over the whole history)
  have the same receivables and statement features after EVERY event and after long
  silences, including events arriving late within the allowed lateness; and what the
  bounded state keeps does not grow with how long the customer has existed.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from risk_factory import T0S, feature_differences, iso_ts, late_arrival_order, parse

from stream_risk.core import Context, CustomerState, advance, receivables, step
from stream_risk.core import features as feats
from stream_risk.core.features import REGISTRY, compute
from stream_risk.core.receivables import apply, fold, new_book, record
from stream_risk.core.state import encode

DAY = 86_400.0
LATENESS = Context().allowed_lateness
#: The groups whose state the receivables and the statements keep.
GROUPS = frozenset({"exposure", "aging", "repayment", "delinquency", "statements"})
NAMES = sorted(name for name, f in REGISTRY.items() if f.group in GROUPS)

# ------------------------------------------------------------------ the journal

AMOUNTS = st.sampled_from([10.0, 99.99, 100.0, 250.5, 400.0, 1200.0])
DELAYS = st.sampled_from([0, 0, 0, 1, 3600, DAY, 3 * DAY, LATENESS - 1, LATENESS])


@st.composite
def entries(draw: st.DrawFn, resent: bool = False, most: int = 30) -> list[list[Any]]:
    """Receivables entries ``[ts, kind, ...]`` at distinct, increasing times; with
    ``resent``, invoices re-sent with another amount and due date among them."""
    n = draw(st.integers(1, most))
    t = T0S
    out: list[list[Any]] = []
    invoices = payments = 0
    for _ in range(n):
        t += draw(st.sampled_from([60, 3600, DAY, 3 * DAY, 8 * DAY]))
        kind = draw(st.sampled_from("iiirppb" if resent else "iiippb"))
        if kind == "r" and invoices:
            invoice_id = f"i{draw(st.integers(0, invoices - 1))}"
            due = t + draw(st.sampled_from([-5, 0, 10, 30])) * DAY
            out.append([t, "i", invoice_id, draw(AMOUNTS | st.just(0.001)), due])
        elif kind in "ir":
            due = t + draw(st.sampled_from([-5, 0, 10, 30])) * DAY
            out.append([t, "i", f"i{invoices}", draw(AMOUNTS), due])
            invoices += 1
        elif kind == "p":
            ref = draw(st.none() | st.integers(0, invoices + 1).map(lambda i: f"i{i}"))
            out.append([t, "p", f"p{payments}", draw(AMOUNTS), ref])
            payments += 1
        else:
            out.append([t, "b", f"p{draw(st.integers(0, payments))}"])
    return out


def direct(received: list[list[Any]]) -> receivables.Book:
    book = new_book()
    for entry in sorted(received, key=lambda e: e[0]):
        apply(book, orjson.loads(orjson.dumps(entry)))
    return book


def _plain(book: receivables.Book) -> Any:
    # The payments' order is part of the book (the oldest unapplied credit is used first).
    return orjson.loads(orjson.dumps({**book, "pay": list(book["pay"].items())}))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries(), st.data())
def test_the_journal_gives_the_in_order_book_after_every_arrival(
    timeline: list[list[Any]], data: st.DataObject
) -> None:
    delays = data.draw(st.lists(DELAYS, min_size=len(timeline), max_size=len(timeline)))
    arrival = late_arrival_order([e[0] for e in timeline], delays, LATENESS)
    book = new_book()
    journal: list[list[Any]] = []
    received: list[list[Any]] = []
    latest = -float("inf")
    for i in arrival:
        entry = timeline[i]
        received.append(entry)
        record(book, journal, orjson.loads(orjson.dumps(entry)))
        latest = max(latest, entry[0])
        # What the driver does after each event: nothing later can precede the horizon.
        fold(journal, latest - LATENESS)
        assert _plain(book) == _plain(direct(received))
        assert all(item[0][0] >= latest - LATENESS for item in journal)
        # The journal holds entries of the lateness window only, each with its undo.
        assert [item[0][0] for item in journal] == sorted(item[0][0] for item in journal)


def test_undoing_an_entry_restores_the_book_exactly() -> None:
    book = new_book()
    journal: list[list[Any]] = []
    t = T0S
    for entry in (
        [t, "i", "i1", 100.0, t + 10 * DAY],
        [t + 1, "p", "p1", 250.0, None],  # settles i1, 150 left as credit
        [t + 2, "i", "i2", 100.0, t + 5 * DAY],  # paid by the credit at once
    ):
        record(book, journal, entry)
    before = _plain(book)
    # An invoice due first, issued before the payment: the payment settles it instead.
    record(book, journal, [t + 0.5, "i", "i0", 100.0, t + 2 * DAY])
    assert _plain(book) == _plain(
        direct(
            [
                [t, "i", "i1", 100.0, t + 10 * DAY],
                [t + 0.5, "i", "i0", 100.0, t + 2 * DAY],
                [t + 1, "p", "p1", 250.0, None],
                [t + 2, "i", "i2", 100.0, t + 5 * DAY],
            ]
        )
    )
    assert before != _plain(book)
    assert {k for k, v in book["inv"].items() if v[0] > 0} == {"i2"}  # 50 of i2 still open


# ------------------------------------------------------------------ what is forgotten


def ev(kind: str, t: float, eid: str, **fields: Any) -> dict[str, Any]:
    event = {"type": kind, "event_id": eid, "customer_id": "c1", "occurred_at": iso_ts(t)}
    if kind in {"invoice", "payment", "statement"}:
        event["currency"] = "EUR"
    for name in ("due_at", "promised_at"):
        if name in fields:
            fields[name] = iso_ts(fields[name])
    event.update(fields)
    return event


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A receivables customer over up to a few years, with long quiet spells."""
    n = draw(st.integers(1, 40))
    t = T0S
    events: list[dict[str, Any]] = []
    invoices = payments = 0
    for k in range(n):
        t += draw(st.sampled_from([3600, DAY, 6 * DAY, 20 * DAY, 45 * DAY, 100 * DAY]))
        kind = draw(
            st.sampled_from(
                ["invoice", "invoice", "payment", "payment", "bounce", "statement", "promise"]
            )
        )
        eid = f"e{k}"
        if kind == "invoice":
            due = t + draw(st.sampled_from([-40, 0, 10, 30])) * DAY
            events.append(
                ev("invoice", t, eid, invoice_id=f"i{invoices}", amount=draw(AMOUNTS), due_at=due)
            )
            invoices += 1
        elif kind == "payment":
            ref = draw(st.none() | st.integers(0, invoices).map(lambda i: f"i{i}"))
            extra = {} if ref is None else {"invoice_id": ref}
            events.append(
                ev(
                    "payment",
                    t,
                    eid,
                    payment_id=f"p{payments}",
                    amount=draw(AMOUNTS),
                    status="settled",
                    **extra,
                )
            )
            payments += 1
        elif kind == "bounce":
            events.append(
                ev(
                    "payment",
                    t,
                    eid,
                    payment_id=f"p{draw(st.integers(0, payments))}",
                    amount=draw(AMOUNTS),
                    status="bounced",
                )
            )
        elif kind == "statement":
            events.append(
                ev(
                    "statement",
                    t,
                    eid,
                    statement_id=f"s{k}",
                    balance=draw(st.sampled_from([0.0, 300.0, 2000.0])),
                    days_past_due=draw(st.sampled_from([0, 30, 60, 90])),
                    status=draw(st.sampled_from(["revolving", "delinquent"])),
                )
            )
        else:
            events.append(
                ev(
                    "collection",
                    t,
                    eid,
                    action="promise_to_pay",
                    promised_at=t + draw(st.sampled_from([DAY, 40 * DAY, 120 * DAY])),
                    promised_amount=draw(AMOUNTS),
                )
            )
    return events


def _keep_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    """The direct computation: the same engine, forgetting no receivables history."""
    monkeypatch.setattr(receivables, "expire", lambda *args, **kw: None)
    monkeypatch.setattr(feats, "PROMISE_WINDOW", float("inf"))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.data())
def test_the_bounded_state_has_the_features_of_the_whole_history(
    events: list[dict[str, Any]], data: st.DataObject
) -> None:
    delays = data.draw(st.lists(DELAYS, min_size=len(events), max_size=len(events)))
    times = [parse(e).occurred_at.timestamp() for e in events]
    arrival = late_arrival_order(times, delays, LATENESS)
    ctx = Context()
    bounded = CustomerState("c1")
    everything = CustomerState("c1")
    for i in arrival:
        step(bounded, parse(events[i]), ctx)
        with pytest.MonkeyPatch.context() as patch:
            _keep_everything(patch)
            step(everything, parse(events[i]), ctx)
        _same(bounded, everything, bounded.clock or 0.0)
    end = max(times)
    for later in (end + 31 * DAY, end + 91 * DAY, end + 200 * DAY, end + 400 * DAY):
        advance(bounded, later, ctx)
        with pytest.MonkeyPatch.context() as patch:
            _keep_everything(patch)
            advance(everything, later, ctx)
        _same(bounded, everything, later)


def _same(bounded: CustomerState, everything: CustomerState, now: float) -> None:
    got = {k: v for k, v in compute(bounded, now).items() if k in NAMES}
    want = {k: v for k, v in compute(everything, now).items() if k in NAMES}
    assert feature_differences(got, want) == {}


def test_what_the_state_keeps_does_not_grow_with_the_customers_age() -> None:
    """A customer invoiced weekly and paying each invoice 10 days late for three years:
    the receivables part of the state after three years is what it is after one."""
    ctx = Context()
    state = CustomerState("c1")
    sizes = {}
    for week in range(3 * 52):
        t = T0S + week * 7 * DAY
        step(
            state,
            parse(
                ev(
                    "invoice",
                    t,
                    f"i{week}",
                    invoice_id=f"i{week}",
                    amount=100.0,
                    due_at=t + 30 * DAY,
                )
            ),
            ctx,
        )
        if week >= 6:
            step(
                state,
                parse(
                    ev(
                        "payment",
                        t + 1,
                        f"p{week}",
                        payment_id=f"p{week}",
                        amount=100.0,
                        status="settled",
                    )
                ),
                ctx,
            )
        if week in (52, 3 * 52 - 1):
            data = orjson.loads(encode(state))
            sizes[week] = len(orjson.dumps([data["book"], data["journal"], data.get("ledger")]))
    assert sizes[3 * 52 - 1] <= sizes[52] * 1.05
