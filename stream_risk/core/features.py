"""Features: the customer's rolling statistics at an event time, by name.

Names are API: rules, warning reasons and profiles use them.
"""

from __future__ import annotations

from typing import Any

from stream_risk.core.state import (
    INV_DUE,
    INV_OPEN,
    ORD_AMOUNT,
    ORD_TS,
    STMT_BALANCE,
    STMT_DPD,
    CustomerState,
)

DAY = 86_400.0
ORDER_WINDOW = 30 * DAY

#: name -> (unit, description): the catalogue of what :func:`compute` returns.
CATALOGUE: dict[str, tuple[str, str]] = {
    "open_balance": (
        "base currency",
        "open receivables: open invoices, else the last statement balance",
    ),
    "overdue_balance": ("base currency", "open invoice amounts past their due date"),
    "credit_limit": ("base currency", "the credit limit of the latest customer assessment"),
    "credit_utilisation": ("ratio", "open_balance / credit_limit"),
    "days_past_due": ("days", "days past due of the oldest open item (invoices or statement)"),
    "invoice_days_past_due": ("days", "days since the due date of the oldest overdue open invoice"),
    "statement_days_past_due": ("days", "days past due reported by the latest statement"),
    "overdue_invoice_count": ("count", "open invoices past their due date"),
    "order_count_30d": ("count", "orders placed in the last 30 days (cancellations removed)"),
    "order_amount_30d": ("base currency", "amount ordered in the last 30 days"),
    "bounced_payments": ("count", "payments bounced or reversed"),
}


def compute(state: CustomerState, now: float) -> dict[str, Any]:
    """The features of ``state`` as of event time ``now``."""
    open_invoices = 0.0
    overdue = 0.0
    overdue_count = 0
    oldest_due: float | None = None
    for inv in state.invoices.values():
        amount = inv[INV_OPEN]
        if amount <= 0:
            continue
        open_invoices += amount
        due = inv[INV_DUE]
        if due < now:
            overdue += amount
            overdue_count += 1
            if oldest_due is None or due < oldest_due:
                oldest_due = due
    invoice_dpd = int((now - oldest_due) // DAY) if oldest_due is not None else 0

    stmt = state.statement
    statement_dpd = int(stmt[STMT_DPD]) if stmt is not None else 0
    if state.invoiced:
        open_balance = open_invoices
    elif stmt is not None:
        open_balance = max(float(stmt[STMT_BALANCE]), 0.0)
    else:
        open_balance = 0.0

    limit = state.credit_limit
    utilisation = open_balance / limit if limit else None

    horizon = now - ORDER_WINDOW
    order_count = 0
    order_amount = 0.0
    for order in state.orders:
        if horizon < order[ORD_TS] <= now:
            order_count += 1
            order_amount += order[ORD_AMOUNT]

    return {
        "open_balance": round(open_balance, 2),
        "overdue_balance": round(overdue, 2),
        "credit_limit": limit,
        "credit_utilisation": None if utilisation is None else round(utilisation, 6),
        "days_past_due": max(invoice_dpd, statement_dpd),
        "invoice_days_past_due": invoice_dpd,
        "statement_days_past_due": statement_dpd,
        "overdue_invoice_count": overdue_count,
        "order_count_30d": order_count,
        "order_amount_30d": round(order_amount, 2),
        "bounced_payments": state.bounced_payments,
    }


def next_overdue_check(state: CustomerState, now: float) -> float | None:
    """The next event time at which an open invoice's days past due ticks over.

    Days past due change once a day from each open invoice's due date on; the
    driver wakes the customer then, so an invoice turns overdue (and crosses
    30, 60, 90 days) even when no further event arrives for the customer.
    """
    best: float | None = None
    for inv in state.invoices.values():
        if inv[INV_OPEN] <= 0:
            continue
        due = inv[INV_DUE]
        if due > now:
            candidate = due
        else:
            days = (now - due) // DAY + 1
            if days > 366:  # a year overdue: daily checks no longer change anything that matters
                continue
            candidate = due + days * DAY
        if best is None or candidate < best:
            best = candidate
    return best
