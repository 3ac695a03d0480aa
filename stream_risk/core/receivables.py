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

The book is a dict (JSON-ready; a :class:`Book` keeps the invoices' settlement
order beside it, not encoded, so a payment does not sort the open invoices):

``inv``
    invoice_id -> [open amount, amount, due_at, issued_at]
``pay``
    payment_id -> [occurred_at, unapplied part, allocations] (the last
    :data:`PAYMENTS_REMEMBERED` settled payments, for undoing a bounce)
``credit``
    unapplied credit
``closed``
    [closed_at, due_at, amount, days_late, invoice_id] of invoices settled in the
    last 180 days, or due in the last 90, or 30+ days late in the last year
``paid``
    [occurred_at, amount, partial (0/1), payment_id] of settled payments of the
    last 90 days (and back to the oldest promise to pay that still counts), and of
    the payments still remembered in ``pay``
``bounced``
    [occurred_at, payment_id] of bounces and reversals of the last 90 days
``last_paid``
    the latest settled payment no longer in ``paid`` (for the silence feature); a
    bounce of a payment neither remembered nor in the 90 days does not move it
"""

from __future__ import annotations

import bisect
import math
from typing import Any

from stream_risk.core import windows
from stream_risk.core.units import DAY

#: An invoice with less than this left open is settled (float sums of exact
#: payments leave dust far below any currency's smallest unit).
SETTLED_BELOW = 0.005
#: Settled payments remembered so a later bounce or reversal can be undone.
PAYMENTS_REMEMBERED = 32
#: The longest window over settled payments, bounces and invoices falling due.
WINDOW = 90 * DAY
#: Closed invoices feed the days-late trend over this long.
TREND_WINDOW = 180 * DAY
#: A closed invoice that reached a delinquency level counts for a year after.
HISTORY = 366 * DAY
CLOSED_REMEMBERED = 64

INV_OPEN, INV_AMOUNT, INV_DUE, INV_ISSUED = 0, 1, 2, 3

#: An invoice's place in the settlement order: (due_at, issued_at, invoice_id).
DueKey = tuple[float, float, str]


class Book(dict[str, Any]):
    """The book: a plain dict as far as the encoding goes (a subclass encodes as one).

    Beside it, not encoded, the settlement order of its invoices: their
    :data:`DueKey`, ascending, built from the invoices when first needed and kept
    in step with every change, so a payment finds the oldest open invoices
    without sorting them all. A plain dict works as a book too; its order is then
    sorted afresh for every payment.

    Also beside it, not encoded: what the features derive from its closed invoices
    (:class:`stream_risk.core.features.ClosedAges`), kept while they are the same.
    """

    __slots__ = ("closed_ages", "due_order")

    due_order: list[DueKey] | None
    closed_ages: Any


def new_book() -> Book:
    return Book(inv={}, pay={}, credit=0.0, closed=[], paid=[], bounced=[])


def due_key(invoice_id: str, inv: list[Any]) -> DueKey:
    """The place of invoice ``inv`` in the settlement order: earliest due, then issued."""
    return (inv[INV_DUE], inv[INV_ISSUED], invoice_id)


def due_order(book: dict[str, Any]) -> list[DueKey]:
    """The :func:`due_key` of every invoice of ``book`` (open or not), ascending."""
    order: list[DueKey] | None = getattr(book, "due_order", None)
    if order is None:
        order = sorted(due_key(k, inv) for k, inv in book["inv"].items())
        if isinstance(book, Book):
            book.due_order = order
    return order


def _listed(book: dict[str, Any], key: DueKey) -> None:
    """Note that the invoice of ``key`` was added to ``book`` (no-op without a kept order)."""
    order: list[DueKey] | None = getattr(book, "due_order", None)
    if order is not None:
        bisect.insort(order, key)


def _unlisted(book: dict[str, Any], key: DueKey) -> None:
    """Note that the invoice of ``key`` left ``book`` (no-op without a kept order)."""
    order: list[DueKey] | None = getattr(book, "due_order", None)
    if order is not None:
        i = bisect.bisect_left(order, key)
        if i < len(order) and order[i] == key:
            del order[i]
        else:  # pragma: no cover - every change goes through here: rebuild rather than guess
            book.due_order = None  # type: ignore[attr-defined]


# ----------------------------------------------------------------- journal

#: A journal item: ``[entry, undo]``, the entry ``[ts, kind, ...]`` and the changes
#: that undo its application, newest last (see :func:`_log`).
JournalItem = list[Any]


def record(book: Book, journal: list[JournalItem], entry: list[Any]) -> None:
    """Apply a journal ``entry`` ``[ts, kind, ...]`` to ``book`` in event-time order.

    ``kind`` is ``"i"`` (invoice: id, amount, due), ``"p"`` (settled payment:
    id, amount, invoice_id or None) or ``"b"`` (bounce or reversal: id). An
    entry older than the newest one in the journal undoes the newer ones,
    newest first, takes its place, and re-applies them: the book is then what
    in-order arrival gives.
    """
    ts = entry[0]
    cut = len(journal)
    while cut and journal[cut - 1][0][0] > ts:
        cut -= 1
    later = journal[cut:]
    for item in reversed(later):
        _undo_changes(book, item[1])
    del journal[cut:]
    for again in (entry, *(item[0] for item in later)):
        undo: list[list[Any]] = []
        apply(book, again, undo)
        journal.append([again, undo])


def fold(journal: list[JournalItem], horizon: float) -> None:
    """Forget the undo of entries older than ``horizon``: no later arrival can precede them."""
    cut = 0
    while cut < len(journal) and journal[cut][0][0] < horizon:
        cut += 1
    del journal[:cut]


# ----------------------------------------------------------------- undo log
#
# Every change :func:`apply` makes to the book goes through the helpers below,
# which append what reverses it to the entry's undo list:
#   ["c", credit before]
#   ["i", invoice_id, record before or None]
#   ["p", payment_id, record before or None, position in the payments' order]
#   ["+", list name, record inserted]      ["-", list name, record removed]


def _set_credit(book: Book, value: float, undo: list[list[Any]] | None) -> None:
    if undo is not None:
        undo.append(["c", book["credit"]])
    book["credit"] = value


def _touch_invoice(book: Book, invoice_id: str, undo: list[list[Any]] | None) -> None:
    """Note ``invoice_id`` as it is before it changes (in place, popped or added)."""
    if undo is not None:
        inv = book["inv"].get(invoice_id)
        undo.append(["i", invoice_id, None if inv is None else list(inv)])


def _touch_payment(book: Book, payment_id: str, undo: list[list[Any]] | None) -> None:
    if undo is not None:
        payments = book["pay"]
        rec = payments.get(payment_id)
        if rec is None:
            undo.append(["p", payment_id, None, 0])
        else:
            before = [rec[0], rec[1], [list(a) for a in rec[2]]]
            undo.append(["p", payment_id, before, list(payments).index(payment_id)])


def _insert(book: Book, name: str, rec: list[Any], undo: list[list[Any]] | None) -> None:
    windows.insert(book[name], rec)
    if undo is not None:
        undo.append(["+", name, rec])


def _remove(book: Book, name: str, index: int, undo: list[list[Any]] | None) -> None:
    rec = book[name].pop(index)
    if undo is not None:
        undo.append(["-", name, rec])


def _undo_changes(book: Book, undo: list[list[Any]]) -> None:
    for change in reversed(undo):
        what = change[0]
        if what == "c":
            book["credit"] = change[1]
        elif what == "i":
            _restore_invoice(book, change[1], change[2])
        elif what == "p":
            _restore_payment(book, change[1], change[2], change[3])
        elif what == "+":
            records = book[change[1]]
            # The record inserted is the last one equal to it at its time.
            for i in range(len(records) - 1, -1, -1):
                if records[i] == change[2]:
                    del records[i]
                    break
        else:
            windows.insert(book[change[1]], change[2])


def _restore_invoice(book: Book, invoice_id: str, before: list[Any] | None) -> None:
    invoices = book["inv"]
    current = invoices.get(invoice_id)
    if before is None:
        invoices.pop(invoice_id, None)
    else:
        invoices[invoice_id] = before  # in its place: the invoices' order is part of the book
    _moved(
        book,
        None if current is None else due_key(invoice_id, current),
        None if before is None else due_key(invoice_id, before),
    )


def _moved(book: Book, old: DueKey | None, new: DueKey | None) -> None:
    """Keep the settlement order as an invoice's key goes from ``old`` to ``new``."""
    if old == new:
        return
    if old is not None:
        _unlisted(book, old)
    if new is not None:
        _listed(book, new)


def _restore_payment(book: Book, payment_id: str, before: list[Any] | None, at: int) -> None:
    payments = book["pay"]
    if before is None:
        payments.pop(payment_id, None)
    elif payment_id in payments:
        payments[payment_id] = before
    else:
        # Payments are applied oldest first: the position is part of the state.
        items = list(payments.items())
        items.insert(at, (payment_id, before))
        book["pay"] = dict(items)


# ----------------------------------------------------------------- book


def apply(book: Book, entry: list[Any], undo: list[list[Any]] | None = None) -> None:
    """Apply ``entry`` to ``book``; with ``undo``, append what reverses it there."""
    kind = entry[1]
    if kind == "i":
        _invoice(book, entry[2], entry[3], entry[4], entry[0], undo)
    elif kind == "p":
        _settle(book, entry[2], entry[3], entry[4], entry[0], undo)
    elif kind == "b":
        _undo(book, entry[2], entry[0], undo)
    else:  # pragma: no cover - entries are written by this module only
        raise ValueError(f"unknown receivables entry {kind!r}")


def _invoice(
    book: Book, invoice_id: str, amount: float, due: float, ts: float, undo: list[list[Any]] | None
) -> None:
    invoices = book["inv"]
    _touch_invoice(book, invoice_id, undo)
    existing = invoices.get(invoice_id)
    if existing is not None:
        # A re-sent invoice corrects the amount or the due date; payments already made stay.
        existing[INV_OPEN] = max(existing[INV_OPEN] + amount - existing[INV_AMOUNT], 0.0)
        existing[INV_AMOUNT] = amount
        before = due_key(invoice_id, existing)
        existing[INV_DUE] = due
        _moved(book, before, due_key(invoice_id, existing))
        return
    invoices[invoice_id] = inv = [amount, amount, due, ts]
    _listed(book, due_key(invoice_id, inv))
    if book["credit"] > 0:
        _apply_credit(book, invoice_id, ts, undo)


def invoiced_amount(book: Book, invoice_id: str) -> float:
    """The amount ``invoice_id`` was last issued for (0 when unknown)."""
    inv = book["inv"].get(invoice_id)
    if inv is not None:
        return float(inv[INV_AMOUNT])
    for closed in reversed(book["closed"]):
        if closed[4] == invoice_id:
            return float(closed[2])
    return 0.0


def _apply_credit(book: Book, invoice_id: str, ts: float, undo: list[list[Any]] | None) -> None:
    inv = book["inv"][invoice_id]
    # Credit of payments no longer remembered (evicted, oldest) is used first.
    tracked = sum(rec[1] for rec in book["pay"].values())
    untracked = book["credit"] - tracked
    if untracked > 0:
        used = min(untracked, inv[INV_OPEN])
        _set_credit(book, book["credit"] - used, undo)
        inv[INV_OPEN] -= used
    for payment_id, rec in list(book["pay"].items()):
        if inv[INV_OPEN] <= 0:
            break
        if rec[1] <= 0:
            continue
        _touch_payment(book, payment_id, undo)
        used = min(rec[1], inv[INV_OPEN])
        rec[1] -= used
        _set_credit(book, max(book["credit"] - used, 0.0), undo)
        inv[INV_OPEN] -= used
        rec[2].append([invoice_id, used, inv[INV_DUE], inv[INV_ISSUED], inv[INV_AMOUNT]])
    if inv[INV_OPEN] <= SETTLED_BELOW:
        _close(book, invoice_id, ts, undo)


def _targets(book: Book, amount: float, first: str | None) -> list[str]:
    """The open invoices a payment of ``amount`` reaches, in the order it settles them.

    ``first`` (open, or ``None``), then the oldest open ones by :func:`due_key`: the
    settlement order is walked only as far as the amount goes, subtracting as
    :func:`_settle` does, so a payment costs what it settles, not the whole book.
    """
    invoices = book["inv"]
    targets: list[str] = []
    remaining = amount
    if first is not None:
        targets.append(first)
        remaining -= min(invoices[first][INV_OPEN], remaining)
    for _, _, invoice_id in due_order(book):
        if remaining <= 0:
            break
        open_amount = invoices[invoice_id][INV_OPEN]
        if open_amount > 0 and invoice_id != first:
            targets.append(invoice_id)
            remaining -= min(open_amount, remaining)
    return targets


def _close(book: Book, invoice_id: str, ts: float, undo: list[list[Any]] | None) -> None:
    # The callers noted the invoice before changing it in this entry: undo restores that.
    inv = book["inv"].pop(invoice_id)
    _unlisted(book, due_key(invoice_id, inv))
    days_late = max((ts - inv[INV_DUE]) // DAY, 0.0)
    _insert(book, "closed", [ts, inv[INV_DUE], inv[INV_AMOUNT], days_late, invoice_id], undo)
    if len(book["closed"]) > CLOSED_REMEMBERED:
        _remove(book, "closed", 0, undo)


def _settle(
    book: Book,
    payment_id: str,
    amount: float,
    invoice_id: str | None,
    ts: float,
    undo: list[list[Any]] | None,
) -> None:
    allocations: list[list[Any]] = []
    remaining = amount
    named = book["inv"].get(invoice_id) if invoice_id is not None else None
    first = invoice_id if named is not None and named[INV_OPEN] > 0 else None
    for inv_id in _targets(book, amount, first):
        if remaining <= 0:
            break
        _touch_invoice(book, inv_id, undo)
        inv = book["inv"][inv_id]
        paid = min(inv[INV_OPEN], remaining)
        inv[INV_OPEN] -= paid
        remaining -= paid
        allocations.append([inv_id, paid, inv[INV_DUE], inv[INV_ISSUED], inv[INV_AMOUNT]])
        if inv[INV_OPEN] <= SETTLED_BELOW:
            _close(book, inv_id, ts, undo)
    _set_credit(book, book["credit"] + remaining, undo)
    payments = book["pay"]
    _touch_payment(book, payment_id, undo)
    payments[payment_id] = [ts, remaining, allocations]
    if len(payments) > PAYMENTS_REMEMBERED:
        oldest = next(iter(payments))
        _touch_payment(book, oldest, undo)
        del payments[oldest]
    # Partial: the payment went into an invoice already due and left part of it open (only
    # the last invoice it reached can be left open). An invoice it did not touch, one held
    # back over a dispute or a payment returned by the bank, does not make it partial.
    reached = book["inv"].get(allocations[-1][0]) if allocations else None
    partial = reached is not None and reached[INV_OPEN] > 0 and reached[INV_DUE] <= ts
    _insert(book, "paid", [ts, amount, int(partial), payment_id], undo)


def _undo(book: Book, payment_id: str, ts: float, undo: list[list[Any]] | None) -> None:
    _insert(book, "bounced", [ts, payment_id], undo)
    paid = book["paid"]
    for i in range(len(paid) - 1, -1, -1):
        if paid[i][3] == payment_id:
            _remove(book, "paid", i, undo)
    _touch_payment(book, payment_id, undo)
    rec = book["pay"].pop(payment_id, None)
    if rec is None:
        return  # not remembered (or never settled): counted, nothing to reopen
    _, unapplied, allocations = rec
    _set_credit(book, max(book["credit"] - unapplied, 0.0), undo)
    for inv_id, paid_amount, due, issued, original in allocations:
        _touch_invoice(book, inv_id, undo)
        inv = book["inv"].get(inv_id)
        if inv is None:
            book["inv"][inv_id] = inv = [paid_amount, original, due, issued]
            _listed(book, due_key(inv_id, inv))
            closed = book["closed"]
            for i in range(len(closed) - 1, -1, -1):
                if closed[i][4] == inv_id:
                    _remove(book, "closed", i, undo)
        else:
            inv[INV_OPEN] += paid_amount


def expire(book: Book, earliest: float, payments_from: float | None = None) -> None:
    """Forget closed invoices, payments and bounces no feature can read any more.

    ``earliest`` is the earliest event time a later evaluation or a late entry can
    have; the windows over settled payments and bounces are :data:`WINDOW` long,
    and payments from ``payments_from`` on (the earliest open or recent promise
    to pay) are kept for the promises. Closed invoices are kept for the
    days-late trend (:data:`TREND_WINDOW`), while their due date can still be in
    the window, and for a year when they reached a delinquency level: what the
    features read, so a customer's history does not grow the state.
    """
    horizon = earliest - WINDOW
    paid_horizon = horizon
    if payments_from is not None and payments_from <= horizon:
        paid_horizon = math.nextafter(payments_from, -math.inf)  # keep one made then
    paid = book["paid"]
    if paid and paid[0][0] <= paid_horizon:
        # A payment that can still bounce (remembered for the undo) stays: its bounce
        # must take it out of the time since the last payment. Only the payments up to
        # the horizon (in time order: bisected) are looked at, and of those only the
        # remembered ones stay: what is visited is bounded, not the whole window.
        old = bisect.bisect_right(paid, paid_horizon, key=windows.time_of)
        remembered = book["pay"]
        expired = [p[0] for p in paid[:old] if p[3] not in remembered]
        if expired:
            latest = max(expired)
            book["last_paid"] = max(book.get("last_paid") or latest, latest)
            book["paid"] = [p for p in paid[:old] if p[3] in remembered] + paid[old:]
    windows.expire(book["bounced"], horizon)
    closed = book["closed"]
    trend_horizon = earliest - TREND_WINDOW
    if closed and closed[0][0] <= trend_horizon:
        # Those closed after the trend horizon stay: only the older ones are looked at.
        old = bisect.bisect_right(closed, trend_horizon, key=windows.time_of)
        year = earliest - HISTORY
        kept = [c for c in closed[:old] if c[1] > horizon or (c[3] >= 30 and c[0] > year)]
        if len(kept) < old:
            book["closed"] = kept + closed[old:]
