"""Input events of the wire contract, version 1 (EVENTS.md).

One model per event ``type``; :data:`InputEvent` is their union, discriminated
on ``type``. Unknown extra fields are kept and ignored, so upstreams can evolve
without breaking the engine.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
)

#: An RFC 3339 timestamp that must carry an offset (naive times are bad events).
Timestamp = Annotated[AwareDatetime, Strict()]
#: An identifier: 1..200 characters.
Identifier = Annotated[str, Field(min_length=1, max_length=200)]
#: A non-negative, finite amount of money.
Amount = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
#: A signed, finite amount of money (a statement balance may be negative).
SignedAmount = Annotated[float, Strict(), Field(allow_inf_nan=False)]
#: A whole number of days, >= 0.
Days = Annotated[int, Strict(), Field(ge=0)]
Currency = Annotated[str, Field(min_length=1, max_length=16)]


class _Event(BaseModel):
    """Fields every input event carries (the envelope)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event_id: Identifier
    customer_id: Identifier
    occurred_at: Timestamp


class Segment(BaseModel):
    """Where a customer sits in the portfolio; every part is optional."""

    model_config = ConfigDict(extra="allow", frozen=True)

    industry: str | None = None
    size: str | None = None
    region: str | None = None


class CustomerEvent(_Event):
    """Credit assessment: a later one replaces the earlier."""

    type: Literal["customer"]
    credit_limit: Amount
    currency: Currency
    payment_terms_days: Days
    segment: Segment | None = None
    rating: str | float | None = None
    financials: dict[str, Any] | None = None
    attributes: dict[str, Any] | None = None


class OrderEvent(_Event):
    """An order placed, or a cancellation reversing a placed one."""

    type: Literal["order"]
    order_id: Identifier
    amount: Amount
    currency: Currency
    status: Literal["placed", "cancelled"]
    channel: str | None = None


class InvoiceEvent(_Event):
    """An open receivable; overdue from ``due_at`` on, even if nothing else arrives."""

    type: Literal["invoice"]
    invoice_id: Identifier
    amount: Amount
    currency: Currency
    due_at: Timestamp
    order_id: str | None = None


class PaymentEvent(_Event):
    """A payment; ``bounced``/``reversed`` undo a settled one with the same ``payment_id``."""

    type: Literal["payment"]
    payment_id: Identifier
    amount: Amount
    currency: Currency
    status: Literal["settled", "bounced", "reversed"]
    invoice_id: str | None = None
    method: str | None = None


class StatementEvent(_Event):
    """A periodic account statement with the delinquency the billing system reports."""

    type: Literal["statement"]
    statement_id: Identifier
    balance: SignedAmount
    currency: Currency
    days_past_due: Days
    status: Literal["no_balance", "paid_in_full", "revolving", "delinquent"]
    minimum_due: SignedAmount | None = None


class OutcomeEvent(_Event):
    """A later, confirmed outcome: the label models learn from and backtests score against."""

    type: Literal["outcome"]
    outcome: Literal["default", "written_off", "recovered", "current"]


class CollectionEvent(_Event):
    """Feedback from the collections team."""

    type: Literal["collection"]
    action: Literal["acknowledged", "contacted", "promise_to_pay", "disputed", "resolved"]
    warning_id: str | None = None
    promised_amount: Amount | None = None
    promised_at: Timestamp | None = None
    note: str | None = None


#: Any input event model (a validated event is one of these).
AnyEvent: TypeAlias = (
    CustomerEvent
    | OrderEvent
    | InvoiceEvent
    | PaymentEvent
    | StatementEvent
    | OutcomeEvent
    | CollectionEvent
)

#: The union as validated from the wire: discriminated on ``type``.
InputEvent = Annotated[AnyEvent, Field(discriminator="type")]

EVENT_TYPES: tuple[str, ...] = (
    "customer",
    "order",
    "invoice",
    "payment",
    "statement",
    "outcome",
    "collection",
)

input_event_adapter: TypeAdapter[InputEvent] = TypeAdapter(InputEvent)


def event_time(event: _Event) -> datetime:
    """The event time of ``event`` (kept as a function so drivers need not know the field)."""
    return event.occurred_at


def describe_validation_error(exc: ValidationError) -> str:
    """A short, readable reason for a rejected event: ``field: message; ...``."""
    parts = []
    for err in exc.errors()[:5]:
        # The discriminator (the event type) is noise in a field path.
        loc = ".".join(str(p) for p in err["loc"] if p not in EVENT_TYPES)
        parts.append(f"{loc or 'event'}: {err['msg']}")
    return "; ".join(parts)
