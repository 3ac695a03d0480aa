"""Input events of the wire contract, version 1 (EVENTS.md).

One model per event ``type``; :data:`InputEvent` is their union, discriminated
on ``type``. Unknown extra fields are kept and ignored, so upstreams can evolve
without breaking the engine.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    model_validator,
)

# -- limits of the contract: a value beyond them is a bad event, never a crash downstream.
#: Largest amount of money (a quadrillion): sums of amounts stay finite and exact enough.
MAX_AMOUNT = 1e15
#: Largest day count (payment terms, days past due): about 27 years.
MAX_DAYS = 10_000
#: Longest identifier or label (ids, segment values, channel, method, rating).
MAX_ID_CHARS = 200
#: Longest free text (a collection note; strings inside free-form objects).
MAX_TEXT_CHARS = 2_000
#: Free-form objects (``financials``, ``attributes``, unknown extra fields): nesting
#: depth, entries in all (keys and list items) and the signed 64-bit integer range.
MAX_DEPTH = 4
MAX_ENTRIES = 256
INT64 = (-(2**63), 2**63 - 1)
#: Characters no customer id may hold: C0/C1 controls (NUL included) and the
#: invisible formatting and bidirectional controls that make two ids look alike.
_ID_FORBIDDEN = (
    "\\x00-\\x1f\\x7f-\\x9f\\xad\\u061c\\u180e\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2069\\ufeff"
)

#: An RFC 3339 timestamp that must carry an offset (naive times are bad events).
Timestamp = Annotated[AwareDatetime, Strict()]
#: An identifier: 1..200 characters.
Identifier = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
#: A customer id: an identifier without control, invisible or bidi characters.
CustomerId = Annotated[
    str, Field(min_length=1, max_length=MAX_ID_CHARS, pattern=f"^[^{_ID_FORBIDDEN}]+$")
]
#: An optional short label (an id reference, channel, method, segment value).
Label = Annotated[str, Field(max_length=MAX_ID_CHARS)]
#: A non-negative, finite amount of money.
Amount = Annotated[float, Strict(), Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False)]
#: A signed, finite amount of money (a statement balance may be negative).
SignedAmount = Annotated[float, Strict(), Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT, allow_inf_nan=False)]
#: A whole number of days, 0..10,000.
Days = Annotated[int, Strict(), Field(ge=0, le=MAX_DAYS)]
Currency = Annotated[str, Field(min_length=1, max_length=16)]


def check_free_form(value: Any, what: str = "") -> None:
    """Raise ``ValueError`` when a free-form JSON value is beyond the contract's limits.

    Limits: :data:`MAX_DEPTH` levels of objects and lists, :data:`MAX_ENTRIES`
    entries in all, strings of at most :data:`MAX_TEXT_CHARS`, integers within
    signed 64 bits, finite numbers.

    >>> check_free_form({"revenue": 1.5e6, "ratios": {"current": 1.2}})
    >>> check_free_form({"x": {"y": 10**30}}, "financials")
    Traceback (most recent call last):
    ...
    ValueError: financials.x.y: integer outside signed 64 bits
    """
    budget = [MAX_ENTRIES]
    _check_json(value, what, 0, budget)


def _check_json(value: Any, path: str, depth: int, budget: list[int]) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise ValueError(f"{path}: integer outside signed 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: number must be finite")
    elif isinstance(value, str):
        if len(value) > MAX_TEXT_CHARS:
            raise ValueError(f"{path}: string longer than {MAX_TEXT_CHARS} characters")
    elif isinstance(value, (dict, list)):
        if depth >= MAX_DEPTH:
            raise ValueError(f"{path or 'object'}: nested deeper than {MAX_DEPTH} levels")
        budget[0] -= len(value)
        if budget[0] < 0:
            raise ValueError(f"{path or 'object'}: more than {MAX_ENTRIES} entries in all")
        if isinstance(value, dict):
            for key, item in value.items():
                if len(key) > MAX_ID_CHARS:
                    raise ValueError(f"{path or 'object'}: key longer than {MAX_ID_CHARS} chars")
                _check_json(item, f"{path}.{key}" if path else key, depth + 1, budget)
        else:
            for n, item in enumerate(value):
                _check_json(item, f"{path}[{n}]", depth + 1, budget)
    else:  # pragma: no cover - JSON has no other types
        raise ValueError(f"{path}: not a JSON value")


def _free_form(value: dict[str, Any]) -> dict[str, Any]:
    check_free_form(value)
    return value


#: A free-form JSON object within the limits of :func:`check_free_form`.
FreeForm = Annotated[
    dict[str, Any],
    AfterValidator(_free_form),
    Field(
        max_length=MAX_ENTRIES,
        description=f"free-form; at most {MAX_DEPTH} levels deep, {MAX_ENTRIES} entries, "
        f"strings of {MAX_TEXT_CHARS} characters, integers within signed 64 bits",
    ),
]


class _Event(BaseModel):
    """Fields every input event carries (the envelope)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event_id: Identifier
    customer_id: CustomerId
    occurred_at: Timestamp

    @model_validator(mode="after")
    def _bounded_extras(self) -> _Event:
        # Unknown fields are kept, so they obey the free-form limits too.
        if self.model_extra:
            check_free_form(self.model_extra, "extra fields")
        return self


class Segment(BaseModel):
    """Where a customer sits in the portfolio; every part is optional."""

    model_config = ConfigDict(extra="allow", frozen=True)

    industry: Label | None = None
    size: Label | None = None
    region: Label | None = None

    @model_validator(mode="after")
    def _bounded_extras(self) -> Segment:
        # Kept in the customer's state, so bounded like the named parts.
        if self.model_extra:
            check_free_form(self.model_extra, "segment")
        return self


class CustomerEvent(_Event):
    """Credit assessment: a later one replaces the earlier."""

    type: Literal["customer"]
    credit_limit: Amount
    currency: Currency
    payment_terms_days: Days
    segment: Segment | None = None
    rating: Label | Annotated[float, Field(allow_inf_nan=False)] | None = None
    financials: FreeForm | None = None
    attributes: FreeForm | None = None


class OrderEvent(_Event):
    """An order placed, or a cancellation reversing a placed one."""

    type: Literal["order"]
    order_id: Identifier
    amount: Amount
    currency: Currency
    status: Literal["placed", "cancelled"]
    channel: Label | None = None


class InvoiceEvent(_Event):
    """An open receivable; overdue from ``due_at`` on, even if nothing else arrives."""

    type: Literal["invoice"]
    invoice_id: Identifier
    amount: Amount
    currency: Currency
    due_at: Timestamp
    order_id: Label | None = None


class PaymentEvent(_Event):
    """A payment; ``bounced``/``reversed`` undo a settled one with the same ``payment_id``."""

    type: Literal["payment"]
    payment_id: Identifier
    amount: Amount
    currency: Currency
    status: Literal["settled", "bounced", "reversed"]
    invoice_id: Label | None = None
    method: Label | None = None


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
    warning_id: Label | None = None
    promised_amount: Amount | None = None
    promised_at: Timestamp | None = None
    note: Annotated[str, Field(max_length=MAX_TEXT_CHARS)] | None = None


#: A count of records in a credit report (lawsuits, tax arrears): 0..100,000.
RecordCount = Annotated[int, Strict(), Field(ge=0, le=100_000)]
#: A finite number within +-1e9 (a score on its scale).
Score = Annotated[float, Strict(), Field(ge=-1e9, le=1e9, allow_inf_nan=False)]


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
