"""Open receivables: invoices, payments, unapplied credit, bounces.

Payments without an ``invoice_id`` settle the oldest open invoices first
(earliest due date); money with nothing to settle becomes unapplied credit,
which later invoices consume, oldest payment first. A bounced or reversed
payment re-opens exactly what it settled.

Allocation depends on the order in which payments and invoices are applied,
so late arrivals are handled by a short journal: every receivables event
within the allowed lateness is kept in event-time order on top of a base
snapshot; one that arrives out of order is inserted and the journal re-applied
to the base. Entries older than the lateness horizon are folded into the base.

The book is a plain dict (JSON-ready):

``inv``
    invoice_id -> [open amount, amount, due_at, issued_at]
``pay``
    payment_id -> [occurred_at, unapplied part, allocations] (the last
    :data:`PAYMENTS_REMEMBERED` settled payments, for undoing a bounce)
``credit``
    unapplied credit
``closed``
    [closed_at, due_at, amount, days_late, invoice_id] of invoices settled in the last year
``paid``
    [occurred_at, amount, partial (0/1), payment_id] of settled payments
``bounced``
    [occurred_at, payment_id] of bounces and reversals
``last_paid``
    the latest settled payment no longer in ``paid`` (for the silence feature)
"""

from __future__ import annotations

from typing import Any

import orjson

from stream_risk.core import windows
from stream_risk.core.units import DAY

#: An invoice with less than this left open is settled (float sums of exact
#: payments leave dust far below any currency's smallest unit).
SETTLED_BELOW = 0.005
#: Settled payments remembered so a later bounce or reversal can be undone.
PAYMENTS_REMEMBERED = 32
#: How long closed invoices, payments and bounces are kept for the windows.
HISTORY = 366 * DAY
CLOSED_REMEMBERED = 64

INV_OPEN, INV_AMOUNT, INV_DUE, INV_ISSUED = 0, 1, 2, 3

Book = dict[str, Any]


def new_book() -> Book:
    return {"inv": {}, "pay": {}, "credit": 0.0, "closed": [], "paid": [], "bounced": []}


# ----------------------------------------------------------------- journal


def record(
    state_book: Book,
    journal: list[list[Any]],
    base: Book | None,
    entry: list[Any],
) -> tuple[Book, Book | None]:
    """Apply a journal ``entry`` ``[ts, kind, ...]``; return the (book, base) to keep.

    ``kind`` is ``"i"`` (invoice: id, amount, due), ``"p"`` (settled payment:
    id, amount, invoice_id or None) or ``"b"`` (bounce or reversal: id).
    """
    if not journal:
        base = _copy(state_book)
        journal.append(entry)
        apply(state_book, entry)
        return state_book, base
    if entry[0] >= journal[-1][0]:
        journal.append(entry)
        apply(state_book, entry)
        return state_book, base
    windows.insert(journal, entry)
    assert base is not None
    book = _copy(base)
    for item in journal:
        apply(book, item)
    return book, base


def _copy(book: Book) -> Book:
    # The book is plain JSON data: a round trip is the fastest deep copy.
    copied: Book = orjson.loads(orjson.dumps(book))
    return copied


def fold(journal: list[list[Any]], base: Book | None, horizon: float) -> Book | None:
    """Fold journal entries older than ``horizon`` into ``base``; ``None`` when none remain."""
    if base is None:
        return None
    while journal and journal[0][0] < horizon:
        apply(base, journal.pop(0))
    return base if journal else None


# ----------------------------------------------------------------- book


def apply(book: Book, entry: list[Any]) -> None:
    kind = entry[1]
    if kind == "i":
        _invoice(book, entry[2], entry[3], entry[4], entry[0])
    elif kind == "p":
        _settle(book, entry[2], entry[3], entry[4], entry[0])
    elif kind == "b":
        _undo(book, entry[2], entry[0])
    else:  # pragma: no cover - entries are written by this module only
        raise ValueError(f"unknown receivables entry {kind!r}")


def _invoice(book: Book, invoice_id: str, amount: float, due: float, ts: float) -> None:
    invoices = book["inv"]
    existing = invoices.get(invoice_id)
    if existing is not None:
        # A re-sent invoice corrects the amount or the due date; payments already made stay.
        existing[INV_OPEN] = max(existing[INV_OPEN] + amount - existing[INV_AMOUNT], 0.0)
        existing[INV_AMOUNT] = amount
        existing[INV_DUE] = due
        return
    invoices[invoice_id] = [amount, amount, due, ts]
    if book["credit"] > 0:
        _apply_credit(book, invoice_id, ts)


def invoiced_amount(book: Book, invoice_id: str) -> float:
    """The amount ``invoice_id`` was last issued for (0 when unknown)."""
    inv = book["inv"].get(invoice_id)
    if inv is not None:
        return float(inv[INV_AMOUNT])
    for closed in reversed(book["closed"]):
        if closed[4] == invoice_id:
            return float(closed[2])
    return 0.0


def _apply_credit(book: Book, invoice_id: str, ts: float) -> None:
    inv = book["inv"][invoice_id]
    # Credit of payments no longer remembered (evicted, oldest) is used first.
    tracked = sum(rec[1] for rec in book["pay"].values())
    untracked = book["credit"] - tracked
    if untracked > 0:
        used = min(untracked, inv[INV_OPEN])
        book["credit"] -= used
        inv[INV_OPEN] -= used
    for rec in book["pay"].values():
        if inv[INV_OPEN] <= 0:
            break
        if rec[1] <= 0:
            continue
        used = min(rec[1], inv[INV_OPEN])
        rec[1] -= used
        book["credit"] = max(book["credit"] - used, 0.0)
        inv[INV_OPEN] -= used
        rec[2].append([invoice_id, used, inv[INV_DUE], inv[INV_ISSUED], inv[INV_AMOUNT]])
    if inv[INV_OPEN] <= SETTLED_BELOW:
        _close(book, invoice_id, ts)


def oldest_open(book: Book) -> list[str]:
    invoices = book["inv"]
    ids = [k for k, inv in invoices.items() if inv[INV_OPEN] > 0]
    ids.sort(key=lambda k: (invoices[k][INV_DUE], invoices[k][INV_ISSUED], k))
    return ids


def _close(book: Book, invoice_id: str, ts: float) -> None:
    inv = book["inv"].pop(invoice_id)
    days_late = max((ts - inv[INV_DUE]) // DAY, 0.0)
    windows.insert(book["closed"], [ts, inv[INV_DUE], inv[INV_AMOUNT], days_late, invoice_id])
    if len(book["closed"]) > CLOSED_REMEMBERED:
        del book["closed"][0]


def _settle(book: Book, payment_id: str, amount: float, invoice_id: str | None, ts: float) -> None:
    allocations: list[list[Any]] = []
    remaining = amount
    targets = oldest_open(book)
    if invoice_id is not None and invoice_id in targets:
        targets.remove(invoice_id)
        targets.insert(0, invoice_id)
    for inv_id in targets:
        if remaining <= 0:
            break
        inv = book["inv"][inv_id]
        paid = min(inv[INV_OPEN], remaining)
        inv[INV_OPEN] -= paid
        remaining -= paid
        allocations.append([inv_id, paid, inv[INV_DUE], inv[INV_ISSUED], inv[INV_AMOUNT]])
        if inv[INV_OPEN] <= SETTLED_BELOW:
            _close(book, inv_id, ts)
    book["credit"] += remaining
    payments = book["pay"]
    payments[payment_id] = [ts, remaining, allocations]
    if len(payments) > PAYMENTS_REMEMBERED:
        del payments[next(iter(payments))]
    # Partial: something that was already due is still open after paying.
    partial = any(inv[INV_DUE] <= ts for inv in book["inv"].values() if inv[INV_OPEN] > 0)
    windows.insert(book["paid"], [ts, amount, int(partial), payment_id])


def _undo(book: Book, payment_id: str, ts: float) -> None:
    windows.insert(book["bounced"], [ts, payment_id])
    book["paid"] = [p for p in book["paid"] if p[3] != payment_id]
    rec = book["pay"].pop(payment_id, None)
    if rec is None:
        return  # not remembered (or never settled): counted, nothing to reopen
    _, unapplied, allocations = rec
    book["credit"] = max(book["credit"] - unapplied, 0.0)
    for inv_id, paid, due, issued, original in allocations:
        inv = book["inv"].get(inv_id)
        if inv is None:
            book["inv"][inv_id] = [paid, original, due, issued]
            book["closed"] = [c for c in book["closed"] if c[4] != inv_id]
        else:
            inv[INV_OPEN] += paid


def expire(book: Book, horizon: float) -> None:
    """Forget closed invoices, payments and bounces older than ``horizon``."""
    paid = book["paid"]
    if paid and paid[0][0] <= horizon:
        expired = max(p[0] for p in paid if p[0] <= horizon)
        book["last_paid"] = max(book.get("last_paid") or expired, expired)
    for name in ("closed", "paid", "bounced"):
        windows.expire(book[name], horizon)
