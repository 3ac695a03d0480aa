"""The receivables book's kept settlement order and bounded expiry, against direct computations.

- The settlement order kept beside a book equals the invoices sorted by due date,
  issue time and id after EVERY arrival: new invoices, re-sent ones with another
  due date, payments closing invoices, bounces re-opening them, and late arrivals
  that undo and re-apply the journal.
- Every payment settles the invoice it names, then the oldest open invoices, as
  sorting the open invoices at that moment gives, and stops only when its money
  runs out.
- Expiry looks only at what is old enough to go and keeps exactly what a filter
  over the whole lists keeps.
- A decoded book keeps its order too and encodes as the plain dict it was.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from risk_factory import T0S, late_arrival_order
from test_receivables_bounded import DELAYS, LATENESS, entries

from stream_risk.core import CustomerState
from stream_risk.core import receivables as rb
from stream_risk.core.receivables import INV_DUE, INV_ISSUED, INV_OPEN, Book, apply, fold, record
from stream_risk.core.state import decode, encode

DAY = 86_400.0


def sorted_keys(book: dict[str, Any]) -> list[tuple[float, float, str]]:
    """The settlement order by a sort of all the invoices (the direct computation)."""
    return sorted((inv[INV_DUE], inv[INV_ISSUED], k) for k, inv in book["inv"].items())


def oldest_open(book: dict[str, Any], named: str | None) -> list[str]:
    """The invoices a payment naming ``named`` settles, in order, by sorting the open ones."""
    invoices = book["inv"]
    ids = [k for k, inv in invoices.items() if inv[INV_OPEN] > 0]
    ids.sort(key=lambda k: (invoices[k][INV_DUE], invoices[k][INV_ISSUED], k))
    if named in ids:
        ids.remove(named)
        ids.insert(0, named)
    return ids


def _plain(book: dict[str, Any]) -> Any:
    return orjson.loads(orjson.dumps({**book, "pay": list(book["pay"].items())}))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries(resent=True, most=40), st.data())
def test_the_kept_order_is_the_sorted_order_after_every_arrival(
    timeline: list[list[Any]], data: st.DataObject
) -> None:
    delays = data.draw(st.lists(DELAYS, min_size=len(timeline), max_size=len(timeline)))
    arrival = late_arrival_order([e[0] for e in timeline], delays, LATENESS)
    book = rb.new_book()
    plain: dict[str, Any] = dict(rb.new_book())  # no order kept: sorted afresh
    journal: list[list[Any]] = []
    plain_journal: list[list[Any]] = []
    latest = -math.inf
    for i in arrival:
        entry = timeline[i]
        record(book, journal, orjson.loads(orjson.dumps(entry)))
        record(plain, plain_journal, orjson.loads(orjson.dumps(entry)))  # type: ignore[arg-type]
        latest = max(latest, entry[0])
        fold(journal, latest - LATENESS)
        fold(plain_journal, latest - LATENESS)
        assert rb.due_order(book) is book.due_order  # kept, not rebuilt
        assert book.due_order == sorted_keys(book)
        assert _plain(book) == _plain(plain)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries(resent=True, most=40))
def test_a_payment_settles_the_oldest_open_invoices_as_sorting_them_gives(
    timeline: list[list[Any]],
) -> None:
    book = rb.new_book()
    for entry in timeline:
        if entry[1] != "p":
            apply(book, entry)
            continue
        _, _, payment_id, amount, named = entry
        expected = oldest_open(book, named)
        opens = {k: book["inv"][k][INV_OPEN] for k in expected}
        apply(book, entry)
        _, unapplied, allocations = book["pay"][payment_id]
        settled = [a[0] for a in allocations]
        assert settled == expected[: len(settled)]
        # Each invoice reached gets what is open or what is left of the payment ...
        left = amount
        for invoice_id, paid, *_ in allocations:
            assert paid == min(opens[invoice_id], left)
            left -= paid
        # ... and it stops only when the money runs out or nothing is open.
        assert unapplied == left
        assert left <= 0 or settled == expected
        assert book.due_order == sorted_keys(book)


def test_a_decoded_book_keeps_its_order_and_encodes_as_before() -> None:
    state = CustomerState("c1")
    t = T0S
    for entry in (
        [t, "i", "i1", 100.0, t + 30 * DAY],
        [t + 1, "i", "i2", 100.0, t + 10 * DAY],
        [t + 2, "i", "i3", 100.0, t + 20 * DAY],
    ):
        record(state.book, state.journal, entry)
    raw = encode(state)
    again = decode(raw)
    assert type(again.book) is Book
    assert encode(again) == raw
    record(again.book, again.journal, [t + 3, "p", "p1", 150.0, None])
    # The payment went to the invoice due first, then the next one due.
    assert {k: v[INV_OPEN] for k, v in again.book["inv"].items()} == {"i1": 100.0, "i3": 50.0}
    assert again.book.due_order == sorted_keys(again.book)
    assert b"due_order" not in encode(again)


# ------------------------------------------------------------------ expiry


def expire_directly(book: dict[str, Any], earliest: float, payments_from: float | None) -> None:
    """:func:`receivables.expire` as filters over the whole lists."""
    horizon = earliest - rb.WINDOW
    paid_horizon = horizon
    if payments_from is not None and payments_from <= horizon:
        paid_horizon = math.nextafter(payments_from, -math.inf)
    paid = book["paid"]
    remembered = book["pay"]
    expired = [p[0] for p in paid if p[0] <= paid_horizon and p[3] not in remembered]
    if expired:
        latest = max(expired)
        book["last_paid"] = max(book.get("last_paid") or latest, latest)
        book["paid"] = [p for p in paid if p[0] > paid_horizon or p[3] in remembered]
    book["bounced"] = [b for b in book["bounced"] if b[0] > horizon]
    trend_horizon = earliest - rb.TREND_WINDOW
    year = earliest - rb.HISTORY
    book["closed"] = [
        c
        for c in book["closed"]
        if c[0] > trend_horizon or c[1] > horizon or (c[3] >= 30 and c[0] > year)
    ]


#: Days on a coarse grid, so that records fall exactly on the horizons often.
DAYS = st.integers(0, 50).map(lambda n: 10 * n)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(DAYS, st.booleans()), max_size=40),
    st.lists(st.tuples(DAYS, st.sampled_from([-30, -10, 0, 10, 30]), st.sampled_from([0, 30, 90]))),
    DAYS,
    st.none() | DAYS,
)
def test_expiry_keeps_what_filtering_the_whole_lists_keeps(
    payments: list[tuple[int, bool]],
    closings: list[tuple[int, int, int]],
    at_day: int,
    promise_day: int | None,
) -> None:
    book = rb.new_book()
    for n, (day, remembered) in enumerate(sorted(payments)):
        book["paid"].append([T0S + day * DAY, 10.0, 0, f"p{n}"])
        if remembered:
            book["pay"][f"p{n}"] = [T0S + day * DAY, 0.0, []]
    for n, (day, due_offset, late) in enumerate(sorted(closings)):
        closed_at = T0S + day * DAY
        book["closed"].append([closed_at, closed_at - due_offset * DAY, 5.0, late, f"i{n}"])
    expected: dict[str, Any] = orjson.loads(orjson.dumps(book))
    earliest = T0S + at_day * DAY
    payments_from = None if promise_day is None else T0S + promise_day * DAY
    rb.expire(book, earliest, payments_from)
    expire_directly(expected, earliest, payments_from)
    assert orjson.loads(orjson.dumps(book)) == expected
