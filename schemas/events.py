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
    model_validator,
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


#: A count of records in a credit report (lawsuits, tax arrears): 0..100,000.
RecordCount = Annotated[int, Strict(), Field(ge=0, le=100_000)]
#: A finite number (a score on its scale).
Score = Annotated[float, Strict(), Field(allow_inf_nan=False)]


class CreditReportEvent(_Event):
    """A bureau or commercial credit report on the customer; a later one replaces the earlier.

    ``score`` is read on its scale, ``score_min`` to ``score_max`` (higher is
    better unless ``higher_is_better`` is false); ``rating`` is a letter grade.
    Counts are of the 12 months before ``report_date``; amounts are in
    ``currency``, which is required when an amount is given.
    """

    type: Literal["credit_report"]
    report_id: Identifier
    source: Identifier
    report_date: Timestamp | None = None
    score: Score | None = None
    score_min: Score | None = None
    score_max: Score | None = None
    higher_is_better: bool = True
    rating: Annotated[str, Field(min_length=1, max_length=16)] | None = None
    currency: Currency | None = None
    reported_limits: Amount | None = None
    arrears_elsewhere: Amount | None = None
    lawsuits: RecordCount = 0
    tax_arrears: RecordCount = 0
    insolvency: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> CreditReportEvent:
        if self.score is not None:
            if self.score_min is None or self.score_max is None:
                raise ValueError("score needs its scale: score_min and score_max")
            if not self.score_min < self.score_max:
                raise ValueError("score_min must be below score_max")
            if not self.score_min <= self.score <= self.score_max:
                raise ValueError("score must lie within score_min..score_max")
        amounts = self.reported_limits is not None or self.arrears_elsewhere is not None
        if amounts and self.currency is None:
            raise ValueError("currency is required with reported_limits or arrears_elsewhere")
        return self


#: Any input event model (a validated event is one of these).
AnyEvent: TypeAlias = (
    CustomerEvent
    | OrderEvent
    | InvoiceEvent
    | PaymentEvent
    | StatementEvent
    | OutcomeEvent
    | CollectionEvent
    | CreditReportEvent
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
    "credit_report",
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
