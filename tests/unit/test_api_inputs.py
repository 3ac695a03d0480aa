"""Pure parts of the API: query parsing, API-key checks, collections actions as events."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from stream_risk.api import actions, auth
from stream_risk.api.problems import Problem
from stream_risk.api.queries import WarningQuery, parse_page_limit, parse_warning_query
from stream_risk.schemas.events import CollectionEvent, input_event_adapter

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


# ---- GET /warnings query --------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, WarningQuery()),
        ({"level": ["high"]}, WarningQuery(levels=frozenset({"high"}))),
        ({"level": ["high", "critical"]}, WarningQuery(levels=frozenset({"high", "critical"}))),
        ({"level": ["low, medium"]}, WarningQuery(levels=frozenset({"low", "medium"}))),
        ({"status": ["resolved"]}, WarningQuery(statuses=frozenset({"resolved"}))),
        ({"customer_id": ["c-7"]}, WarningQuery(customer_id="c-7")),
        (
            {"segment": ["industry:retail", "region:DACH"]},
            WarningQuery(segments=(("industry", "retail"), ("region", "DACH"))),
        ),
        (
            {"since": ["2026-03-01T00:00:00Z"], "until": ["2026-03-01T01:00:00+01:00"]},
            WarningQuery(since_ms=1772323200000, until_ms=1772323200000),
        ),
        (
            {"cursor": ["1772323200000-3"], "limit": ["500"]},
            WarningQuery(cursor="1772323200000-3", limit=500),
        ),
    ],
)
def test_valid_warning_queries(params: dict[str, list[str]], expected: WarningQuery) -> None:
    assert parse_warning_query(params) == expected


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"level": ["severe"]}, ["level"]),
        ({"status": ["open"]}, ["status"]),
        ({"segment": ["retail"]}, ["segment"]),
        ({"segment": ["colour:red"]}, ["segment"]),
        ({"segment": ["industry:"]}, ["segment"]),
        ({"since": ["yesterday"]}, ["since"]),
        ({"until": ["2026-03-01T00:00:00"]}, ["until"]),
        ({"since": ["2026-03-02T00:00:00Z"], "until": ["2026-03-01T00:00:00Z"]}, ["since"]),
        ({"cursor": ["abc"]}, ["cursor"]),
        ({"limit": ["0"]}, ["limit"]),
        ({"limit": ["501"]}, ["limit"]),
        ({"limit": ["ten"]}, ["limit"]),
        ({"limit": ["1", "2"]}, ["limit"]),
        ({"customer_id": ["x" * 201]}, ["customer_id"]),
        ({"levle": ["high"]}, ["levle"]),
        ({"level": ["severe"], "limit": ["0"], "page": ["2"]}, ["page", "level", "limit"]),
    ],
)
def test_invalid_warning_queries_list_every_field(
    params: dict[str, list[str]], fields: list[str]
) -> None:
    with pytest.raises(Problem) as err:
        parse_warning_query(params)
    assert err.value.status == 400
    assert [e["field"] for e in err.value.errors or []] == fields


@pytest.mark.parametrize(
    ("query", "fields", "passes"),
    [
        (WarningQuery(), {"level": "low", "status": "firing", "customer_id": "a"}, True),
        (WarningQuery(levels=frozenset({"high"})), {"level": "high", "status": "firing"}, True),
        (WarningQuery(levels=frozenset({"high"})), {"level": "low", "status": "firing"}, False),
        (
            WarningQuery(statuses=frozenset({"resolved"})),
            {"level": "low", "status": "firing"},
            False,
        ),
        (WarningQuery(customer_id="a"), {"customer_id": "a"}, True),
        (WarningQuery(customer_id="a"), {"customer_id": "b"}, False),
    ],
)
def test_stream_entry_filter(query: WarningQuery, fields: dict[str, str], passes: bool) -> None:
    assert query.matches(fields) is passes


def test_page_limit_rejects_other_parameters() -> None:
    assert parse_page_limit({}, 20) == 20
    with pytest.raises(Problem) as err:
        parse_page_limit({"level": ["high"]}, 20)
    assert err.value.errors == [{"field": "level", "message": "unknown parameter; known: limit"}]


# ---- API keys -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "keys", "accepted"),
    [
        ({"X-API-Key": "k1"}, ["k1"], True),
        ({"X-API-Key": " k1 "}, ["k1"], True),
        ({"X-API-Key": "k2"}, ["k1", "k2"], True),
        ({"Authorization": "Bearer k1"}, ["k1"], True),
        ({"Authorization": "bearer k1"}, ["k1"], True),
        ({"Authorization": "Basic azE="}, ["k1"], False),
        ({"Authorization": "Bearer "}, ["k1"], False),
        ({"X-API-Key": "k1x"}, ["k1"], False),
        ({"X-API-Key": "k"}, ["k1"], False),
        ({"X-API-Key": "k1"}, [], False),
        ({}, ["k1"], False),
        ({"X-API-Key": "k1"}, ["ops:k1"], True),
        ({"X-API-Key": "ops:k1"}, ["ops:k1"], False),  # the name is not part of the key
        ({"X-API-Key": "k2"}, ["ops:k1", "desk:k2"], True),
    ],
)
def test_api_keys(headers: dict[str, str], keys: list[str], accepted: bool) -> None:
    if accepted:
        auth.check(headers, auth.parse_keys(keys))
        return
    with pytest.raises(Problem) as err:
        auth.check(headers, auth.parse_keys(keys))
    assert err.value.status == 401
    assert err.value.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("entry", "name", "secret"),
    [
        ("ops:KEY1", "ops", "KEY1"),
        ("desk-2:a:b", "desk-2", "a:b"),  # the name ends at the first colon
        ("KEY1", "key-" + hashlib.sha256(b"KEY1").hexdigest()[:8], "KEY1"),
        ("not a name:KEY", None, "not a name:KEY"),  # not a name: one bare key
        ("ops:", None, "ops:"),
    ],
)
def test_named_keys(entry: str, name: str | None, secret: str) -> None:
    key = auth.parse_key(entry)
    assert key.secret == secret
    assert key.id == name if name else key.id.startswith("key-")
    assert secret not in repr(key)


# ---- actions as collection events ------------------------------------------------------


def _valid(event: dict[str, Any]) -> CollectionEvent:
    parsed = input_event_adapter.validate_json(json.dumps(event))
    assert isinstance(parsed, CollectionEvent)
    return parsed


def test_acknowledgement_event() -> None:
    event = actions.acknowledgement("c-1", "w-9", actions.AckRequest(note="seen"), NOW, "api-1")
    assert event == {
        "type": "collection",
        "event_id": "api-1",
        "customer_id": "c-1",
        "occurred_at": "2026-03-01T12:00:00+00:00",
        "action": "acknowledged",
        "warning_id": "w-9",
        "note": "seen",
    }
    _valid(event)


def test_contact_event_leaves_out_what_was_not_given() -> None:
    event = actions.contact("c-1", actions.ContactRequest(), NOW, "api-2")
    assert set(event) == {"type", "event_id", "customer_id", "occurred_at", "action"}
    assert _valid(event).action == "contacted"


@pytest.mark.parametrize(
    ("amount", "currency", "day", "expected_amount", "expected_due"),
    [
        (100.0, "EUR", date(2026, 3, 31), 100.0, "2026-03-31T23:59:59+00:00"),
        (100.0, "USD", date(2026, 3, 31), 90.0, "2026-03-31T23:59:59+00:00"),
        (33.333, "USD", date(2026, 3, 1), 30.0, "2026-03-01T23:59:59+00:00"),
    ],
)
def test_promise_to_pay_in_base_currency(
    amount: float, currency: str, day: date, expected_amount: float, expected_due: str
) -> None:
    body = actions.PromiseRequest(amount=amount, currency=currency, date=day, warning_id="w-1")
    event = actions.promise_to_pay("c-1", body, NOW, "api-3", "EUR", {"USD": 0.9})
    parsed = _valid(event)
    assert event["promised_amount"] == expected_amount
    assert event["promised_at"] == expected_due
    assert event["currency"] == "EUR"
    assert parsed.warning_id == "w-1"


@pytest.mark.parametrize(
    ("currency", "day", "field"),
    [
        ("JPY", date(2026, 3, 31), "currency"),
        ("EUR", date(2026, 2, 28), "date"),
    ],
)
def test_promise_to_pay_rejects(currency: str, day: date, field: str) -> None:
    body = actions.PromiseRequest(amount=10.0, currency=currency, date=day)
    with pytest.raises(Problem) as err:
        actions.promise_to_pay("c-1", body, NOW, "api-4", "EUR", {"USD": 0.9})
    assert err.value.status == 422
    assert err.value.errors and err.value.errors[0]["field"] == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": "10", "currency": "EUR", "date": "2026-03-31"}, "amount"),
        ({"amount": 0, "currency": "EUR", "date": "2026-03-31"}, "amount"),
        ({"amount": -5, "currency": "EUR", "date": "2026-03-31"}, "amount"),
        ({"amount": 10, "currency": "eur", "date": "2026-03-31"}, "currency"),
        ({"amount": 10, "currency": "EUR", "date": "31.03.2026"}, "date"),
        ({"amount": 10, "currency": "EUR"}, "date"),
        ({"amount": 10, "currency": "EUR", "date": "2026-03-31", "colour": "red"}, "colour"),
        ({"amount": 10, "currency": "EUR", "date": "2026-03-31", "note": ""}, "note"),
    ],
)
def test_promise_request_validation(body: dict[str, Any], field: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as err:
        actions.PromiseRequest.model_validate_json(json.dumps(body))
    assert err.value.errors()[0]["loc"][0] == field


LATER = datetime(2026, 3, 9, tzinfo=UTC)
EARLIER = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("mode", "stream_time", "customer_time", "expected"),
    [
        ("wall", LATER, EARLIER, NOW),
        ("stream", LATER, EARLIER, LATER),
        # Timers or another worker's partitions: the customer may be ahead of the watermark.
        ("stream", EARLIER, LATER, LATER),
        ("stream", None, EARLIER, EARLIER),
        ("stream", LATER, None, LATER),
        ("stream", None, None, NOW),
    ],
)
def test_event_time(
    mode: Any, stream_time: datetime | None, customer_time: datetime | None, expected: datetime
) -> None:
    assert actions.event_time(mode, NOW, stream_time, customer_time) == expected
