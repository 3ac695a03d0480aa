"""``step`` and ``advance``: the only two ways a customer's state changes.

Both are pure: they take the state, an event (or an event time) and a
:class:`~stream_risk.core.context.Context`, mutate and return the state, and
return what should be published. No I/O, no clock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias

from stream_risk.core import features as feats
from stream_risk.core.context import BadEvent, Context
from stream_risk.core.scoring import risk_score, tier_of
from stream_risk.core.state import (
    INV_AMOUNT,
    INV_DUE,
    INV_ISSUED,
    INV_OPEN,
    ORD_ID,
    ORD_TS,
    STMT_TS,
    CustomerState,
)
from stream_risk.schemas.events import (
    CollectionEvent,
    CustomerEvent,
    InvoiceEvent,
    OrderEvent,
    OutcomeEvent,
    PaymentEvent,
    StatementEvent,
)

#: An invoice with less than this left open is settled (float sums of exact
#: payments leave dust far below any currency's smallest unit).
SETTLED_BELOW = 0.005
#: Settled payments remembered so a later bounce or reversal can be undone.
PAYMENTS_REMEMBERED = 32

AnyEvent: TypeAlias = (
    CustomerEvent
    | OrderEvent
    | InvoiceEvent
    | PaymentEvent
    | StatementEvent
    | OutcomeEvent
    | CollectionEvent
)


@dataclass(slots=True)
class Outputs:
    """What one step or advance publishes."""

    warnings: list[dict[str, Any]] = field(default_factory=list)
    #: True when the event was already applied (redelivery): nothing changed.
    duplicate: bool = False


def iso(ts: float) -> str:
    """Event time (epoch seconds) as an RFC 3339 UTC timestamp."""
    return datetime.fromtimestamp(ts, UTC).isoformat()


def event_key(event_id: str) -> str:
    """A short digest of an event id: what de-duplication remembers (ids may be 200 chars)."""
    return hashlib.blake2b(event_id.encode(), digest_size=8).hexdigest()


def warning_id(customer_id: str, rule: str, trigger: str) -> str:
    """Deterministic id of a warning episode: same inputs, same id."""
    digest = hashlib.blake2b(
        f"{customer_id}\x1f{rule}\x1f{trigger}".encode(), digest_size=12
    ).hexdigest()
    return f"w-{digest}"


def step(state: CustomerState, event: AnyEvent, ctx: Context) -> tuple[CustomerState, Outputs]:
    """Apply one input event to its customer's state.

    Raises :class:`BadEvent` (before touching the state) for an event that
    cannot be applied, such as an amount in a currency without a rate.
    """
    seen_key = event_key(event.event_id)
    if seen_key in state.seen:
        return state, Outputs(duplicate=True)
    ts = event.occurred_at.timestamp()
    _apply(state, event, ts, ctx)

    seen = state.seen
    seen[seen_key] = None
    if len(seen) > ctx.dedup_capacity:
        del seen[next(iter(seen))]
    state.updated_at = ts if state.updated_at is None else max(state.updated_at, ts)
    now = max(state.updated_at, state.clock or state.updated_at)
    state.clock = now
    return state, _evaluate(state, now, event.event_id, ts, ctx)


def advance(state: CustomerState, now: float, ctx: Context) -> tuple[CustomerState, Outputs]:
    """Move the customer's clock to event time ``now`` (an overdue check) and re-evaluate."""
    if state.clock is not None and now <= state.clock:
        state.next_wakeup = feats.next_overdue_check(state, state.clock)
        return state, Outputs()
    state.clock = now
    return state, _evaluate(state, now, f"clock@{now:.0f}", now, ctx)


def profile_of(state: CustomerState) -> dict[str, Any]:
    """The customer's risk profile (EVENTS.md) as of its own clock."""
    now = state.clock if state.clock is not None else 0.0
    return {
        "customer_id": state.customer_id,
        "risk_score": state.risk_score,
        "tier": state.tier,
        "features": feats.compute(state, now),
        "active_warnings": [alert[0] for alert in state.alerts.values()],
        "updated_at": iso(state.updated_at if state.updated_at is not None else now),
    }


def _evaluate(
    state: CustomerState, now: float, trigger: str, occurred_at: float, ctx: Context
) -> Outputs:
    features = feats.compute(state, now)
    score = risk_score(features)
    tier = tier_of(score)
    state.risk_score = score
    state.tier = tier
    out = Outputs()
    alerts = state.alerts
    for rule in ctx.rules:
        holds = rule.holds(features)
        active = alerts.get(rule.name)
        if holds and active is None:
            wid = warning_id(state.customer_id, rule.name, trigger)
            alerts[rule.name] = [wid, rule.level, occurred_at]
            out.warnings.append(
                _warning(
                    state,
                    wid,
                    rule.level,
                    "firing",
                    rule.name,
                    occurred_at,
                    ctx,
                    [rule.reason(features)],
                    [dict(a) for a in rule.actions],
                )
            )
        elif not holds and active is not None:
            del alerts[rule.name]
            out.warnings.append(
                _warning(
                    state,
                    active[0],
                    active[1],
                    "resolved",
                    rule.name,
                    occurred_at,
                    ctx,
                    [rule.reason(features)],
                    [],
                )
            )
    state.next_wakeup = feats.next_overdue_check(state, now)
    return out


def _warning(
    state: CustomerState,
    wid: str,
    level: str,
    status: str,
    rule: str,
    occurred_at: float,
    ctx: Context,
    reasons: list[dict[str, Any]],
    actions: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "warning_id": wid,
        "customer_id": state.customer_id,
        "level": level,
        "status": status,
        "rule": rule,
        "occurred_at": iso(occurred_at),
        "detected_at": ctx.detected_at.isoformat(),
        "reasons": reasons,
        "risk_score": state.risk_score,
        "tier": state.tier,
        "actions": actions,
    }


def _apply(state: CustomerState, event: AnyEvent, ts: float, ctx: Context) -> None:
    if isinstance(event, StatementEvent):
        balance = ctx.to_base(event.balance, event.currency)
        if state.statement is None or ts >= state.statement[STMT_TS]:
            state.statement = [ts, balance, event.days_past_due, event.status]
    elif isinstance(event, PaymentEvent):
        amount = ctx.to_base(event.amount, event.currency)
        if event.status == "settled":
            _settle(state, event.payment_id, amount, event.invoice_id, ts)
        else:
            _undo_payment(state, event.payment_id)
    elif isinstance(event, OrderEvent):
        amount = ctx.to_base(event.amount, event.currency)
        _order(state, event.order_id, amount, event.status, ts)
    elif isinstance(event, InvoiceEvent):
        amount = ctx.to_base(event.amount, event.currency)
        _invoice(state, event.invoice_id, amount, event.due_at.timestamp(), ts)
    elif isinstance(event, CustomerEvent):
        state.credit_limit = ctx.to_base(event.credit_limit, event.currency)
        state.payment_terms_days = event.payment_terms_days
        state.segment = event.segment.model_dump(exclude_none=True) if event.segment else None
        state.rating = event.rating
        state.financials = _plain_numbers(event.financials)
    elif isinstance(event, OutcomeEvent):
        state.last_outcome = event.outcome
    elif isinstance(event, CollectionEvent):
        pass  # collections feedback is remembered by de-duplication only, for now
    else:  # pragma: no cover - the union is exhaustive
        raise BadEvent(f"unsupported event type {type(event).__name__}")


def _plain_numbers(values: dict[str, Any] | None) -> dict[str, Any] | None:
    """Integers beyond 64 bits become floats, so the state always encodes."""
    if values is None:
        return None
    return {
        k: float(v) if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2**63 else v
        for k, v in values.items()
    }


def _order(state: CustomerState, order_id: str, amount: float, status: str, ts: float) -> None:
    orders = state.orders
    if status == "placed":
        orders.append([ts, amount, order_id])
    else:
        for i, order in enumerate(orders):
            if order[ORD_ID] == order_id:
                del orders[i]
                break
    horizon = max(ts, state.clock or ts) - feats.ORDER_WINDOW
    if orders and orders[0][ORD_TS] <= horizon:
        state.orders = [o for o in orders if o[ORD_TS] > horizon]


def _invoice(state: CustomerState, invoice_id: str, amount: float, due: float, ts: float) -> None:
    existing = state.invoices.get(invoice_id)
    if existing is not None:
        # A re-sent invoice corrects the amount or the due date; payments already made stay.
        existing[INV_OPEN] = max(existing[INV_OPEN] + amount - existing[INV_AMOUNT], 0.0)
        existing[INV_AMOUNT] = amount
        existing[INV_DUE] = due
        return
    state.invoiced = True
    state.invoices[invoice_id] = [amount, amount, due, ts]
    if state.unapplied_credit > 0:
        _apply_credit(state, invoice_id)


def _apply_credit(state: CustomerState, invoice_id: str) -> None:
    """Pay ``invoice_id`` from earlier unapplied payments, oldest payment first.

    The allocation is recorded on each payment, so a later bounce of that
    payment re-opens this invoice too.
    """
    inv = state.invoices[invoice_id]
    for record in state.payments.values():
        if inv[INV_OPEN] <= 0:
            break
        unapplied = record[1]
        if unapplied <= 0:
            continue
        used = min(unapplied, inv[INV_OPEN])
        record[1] -= used
        state.unapplied_credit = max(state.unapplied_credit - used, 0.0)
        inv[INV_OPEN] -= used
        record[2].append([invoice_id, used, inv[INV_DUE], inv[INV_ISSUED], inv[INV_AMOUNT]])
    if inv[INV_OPEN] <= SETTLED_BELOW:
        del state.invoices[invoice_id]


def _oldest_open(state: CustomerState) -> list[str]:
    open_ids = [k for k, inv in state.invoices.items() if inv[INV_OPEN] > 0]
    open_ids.sort(key=lambda k: (state.invoices[k][INV_DUE], state.invoices[k][INV_ISSUED], k))
    return open_ids


def _settle(
    state: CustomerState, payment_id: str, amount: float, invoice_id: str | None, ts: float
) -> None:
    allocations: list[list[Any]] = []
    remaining = amount
    targets = _oldest_open(state)
    if invoice_id is not None and invoice_id in targets:
        targets.remove(invoice_id)
        targets.insert(0, invoice_id)
    for inv_id in targets:
        if remaining <= 0:
            break
        inv = state.invoices[inv_id]
        paid = min(inv[INV_OPEN], remaining)
        inv[INV_OPEN] -= paid
        remaining -= paid
        allocations.append([inv_id, paid, inv[INV_DUE], inv[INV_ISSUED], inv[INV_AMOUNT]])
        if inv[INV_OPEN] <= SETTLED_BELOW:
            del state.invoices[inv_id]
    state.unapplied_credit += remaining
    state.payments[payment_id] = [ts, remaining, allocations]
    if len(state.payments) > PAYMENTS_REMEMBERED:
        del state.payments[next(iter(state.payments))]


def _undo_payment(state: CustomerState, payment_id: str) -> None:
    state.bounced_payments += 1
    record = state.payments.pop(payment_id, None)
    if record is None:
        return  # not remembered (or never settled): counted, nothing to reopen
    _, unapplied, allocations = record
    state.unapplied_credit = max(state.unapplied_credit - unapplied, 0.0)
    for inv_id, paid, due, issued, original in allocations:
        inv = state.invoices.get(inv_id)
        if inv is None:
            state.invoices[inv_id] = [paid, original, due, issued]
        else:
            inv[INV_OPEN] += paid
