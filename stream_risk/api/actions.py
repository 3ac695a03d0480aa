"""Collections actions as ``collection`` events of the contract.

The API turns each action (acknowledge a warning, record a contact, record a
promise to pay) into one ``collection`` input event, produced on the
collection topic with key ``customer_id``, so it flows back into the
customer's state like any upstream event. Everything here is pure: the clock
(``now``) and the event id are passed in.

>>> from datetime import UTC, datetime
>>> now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
>>> ev = acknowledgement("c-1", "w-1", AckRequest(), now, "api-1")
>>> ev["type"], ev["action"], ev["warning_id"], ev["occurred_at"]
('collection', 'acknowledged', 'w-1', '2026-03-01T12:00:00+00:00')
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, Strict

from stream_risk.api.problems import Problem
from stream_risk.core import BadEvent, Context
from stream_risk.schemas.events import CollectionEvent, input_event_adapter

Note = Annotated[str, Field(min_length=1, max_length=2000)]
WarningId = Annotated[str, Field(min_length=1, max_length=200)]
#: A calendar day (an alias, so a field may be called ``date``).
Day = date


class AckRequest(BaseModel):
    """Body of ``POST /warnings/{warning_id}/ack`` (optional)."""

    model_config = ConfigDict(extra="forbid")

    note: Note | None = None


class ContactRequest(BaseModel):
    """Body of ``POST /customers/{customer_id}/contact`` (optional)."""

    model_config = ConfigDict(extra="forbid")

    note: Note | None = None
    warning_id: WarningId | None = Field(
        None, description="the warning the contact answers, if any"
    )


class PromiseRequest(BaseModel):
    """Body of ``POST /customers/{customer_id}/promise-to-pay``."""

    model_config = ConfigDict(extra="forbid")

    amount: Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)] = Field(
        description="the promised amount, in `currency`"
    )
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = Field(
        description="ISO 4217 code: the base currency or one with a configured rate"
    )
    date: Day = Field(description="the day by which the customer promises to pay (YYYY-MM-DD)")
    note: Note | None = None
    warning_id: WarningId | None = Field(
        None, description="the warning the promise answers, if any"
    )


Action = Literal["acknowledged", "contacted", "promise_to_pay"]


def event_time(
    mode: Literal["wall", "stream"],
    now: datetime,
    stream_time: datetime | None,
    customer_time: datetime | None,
) -> datetime:
    """The ``occurred_at`` of an action: the wall clock, or the stream's own time.

    A stream on simulated or replayed time must not be pushed to the wall clock:
    an action stamped far ahead of the events would make the next upstream
    events too late to apply. Nor may it be stamped behind the customer's clock
    (timers move it past the last event), or it is itself too late. ``stream``
    takes the latest event time the worker has processed, or the customer's
    last event time if that is later; the wall clock when neither is known.

    >>> a, b = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC)
    >>> wall = datetime(2026, 11, 30, tzinfo=UTC)
    >>> [event_time("wall", wall, b, a) == wall, event_time("stream", wall, b, a) == b]
    [True, True]
    >>> event_time("stream", wall, None, a) == a, event_time("stream", wall, None, None) == wall
    (True, True)
    """
    if mode == "stream":
        known = [t for t in (stream_time, customer_time) if t is not None]
        if known:
            return max(known)
    return now


def _event(
    customer_id: str,
    action: Action,
    occurred_at: datetime,
    event_id: str,
    **fields: Any,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "collection",
        "event_id": event_id,
        "customer_id": customer_id,
        "occurred_at": occurred_at.astimezone(UTC).isoformat(),
        "action": action,
    }
    event.update({k: v for k, v in fields.items() if v is not None})
    # What the monitor will accept, checked here so a bad event is a 500 now, not a
    # dead letter later.
    parsed = input_event_adapter.validate_json(orjson.dumps(event))
    if not isinstance(parsed, CollectionEvent):  # pragma: no cover - the type is fixed above
        raise TypeError("not a collection event")
    return event


def acknowledgement(
    customer_id: str, warning_id: str, body: AckRequest, now: datetime, event_id: str
) -> dict[str, Any]:
    """The ``acknowledged`` event for a warning of ``customer_id``."""
    return _event(customer_id, "acknowledged", now, event_id, warning_id=warning_id, note=body.note)


def contact(customer_id: str, body: ContactRequest, now: datetime, event_id: str) -> dict[str, Any]:
    """The ``contacted`` event: the collections team reached the customer."""
    return _event(
        customer_id, "contacted", now, event_id, warning_id=body.warning_id, note=body.note
    )


def promise_to_pay(
    customer_id: str,
    body: PromiseRequest,
    now: datetime,
    event_id: str,
    base_currency: str,
    fx_rates: dict[str, float],
) -> dict[str, Any]:
    """The ``promise_to_pay`` event; the amount is converted into the base currency.

    The promise falls due at the end of ``body.date`` (UTC), which must not be
    before ``now``. The event carries ``currency`` (the base currency) as a
    compatible extra field, so the amount's unit is explicit on the wire.

    >>> body = PromiseRequest(amount=100.0, currency="USD", date=date(2026, 3, 31))
    >>> now = datetime(2026, 3, 1, tzinfo=UTC)
    >>> ev = promise_to_pay("c-1", body, now, "api-2", "EUR", {"USD": 0.9})
    >>> ev["promised_amount"], ev["currency"], ev["promised_at"]
    (90.0, 'EUR', '2026-03-31T23:59:59+00:00')
    """
    try:
        amount = Context(base_currency=base_currency, fx_rates=fx_rates).to_base(
            body.amount, body.currency
        )
    except BadEvent as exc:
        raise Problem(
            422,
            "invalid-body",
            str(exc),
            errors=[{"field": "currency", "message": str(exc)}],
        ) from None
    due = datetime.combine(body.date, time(23, 59, 59), tzinfo=UTC)
    if due < now:
        message = (
            f"the promised date {body.date.isoformat()} is before the action's event time "
            f"{now.astimezone(UTC).date().isoformat()}"
        )
        raise Problem(422, "invalid-body", message, errors=[{"field": "date", "message": message}])
    return _event(
        customer_id,
        "promise_to_pay",
        now,
        event_id,
        warning_id=body.warning_id,
        note=body.note,
        promised_amount=round(amount, 2),
        promised_at=due.isoformat(),
        currency=base_currency,
    )
