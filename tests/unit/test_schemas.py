"""The wire contract (shared/EVENTS.md): what validates, what is a bad event."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError

from stream_risk.schemas import export
from stream_risk.schemas.events import (
    EVENT_TYPES,
    CollectionEvent,
    CreditReportEvent,
    CustomerEvent,
    InvoiceEvent,
    OrderEvent,
    OutcomeEvent,
    PaymentEvent,
    StatementEvent,
    input_event_adapter,
)

ENVELOPE = {"event_id": "e-1", "customer_id": "cust-1", "occurred_at": "2024-03-01T10:00:00+01:00"}

#: One minimal event per type: the envelope plus the fields EVENTS.md requires.
MINIMAL: dict[str, dict[str, Any]] = {
    "customer": {"credit_limit": 5000, "currency": "EUR", "payment_terms_days": 30},
    "order": {"order_id": "o-1", "amount": 120.5, "currency": "EUR", "status": "placed"},
    "invoice": {
        "invoice_id": "i-1",
        "amount": 120.5,
        "currency": "EUR",
        "due_at": "2024-03-31T00:00:00Z",
    },
    "payment": {"payment_id": "p-1", "amount": 100, "currency": "EUR", "status": "settled"},
    "statement": {
        "statement_id": "s-1",
        "balance": -20.0,
        "currency": "EUR",
        "days_past_due": 0,
        "status": "revolving",
    },
    "outcome": {"outcome": "default"},
    "collection": {"action": "promise_to_pay"},
    "credit_report": {"report_id": "r-1", "source": "bureau"},
}

#: The same, with every optional field EVENTS.md lists.
FULL: dict[str, dict[str, Any]] = {
    "customer": {
        **MINIMAL["customer"],
        "segment": {"industry": "retail", "size": "sme", "region": "EU"},
        "rating": "BBB",
        "financials": {"current_ratio": 1.4, "debt_ratio": 0.3, "revenue": 1_200_000},
        "attributes": {"founded": 1999},
    },
    "order": {**MINIMAL["order"], "channel": "web"},
    "invoice": {**MINIMAL["invoice"], "order_id": "o-1"},
    "payment": {**MINIMAL["payment"], "invoice_id": "i-1", "method": "sepa"},
    "statement": {**MINIMAL["statement"], "minimum_due": 15.0},
    "outcome": MINIMAL["outcome"],
    "collection": {
        **MINIMAL["collection"],
        "warning_id": "w-1",
        "promised_amount": 50,
        "promised_at": "2024-03-10T00:00:00-05:00",
        "note": "will pay friday",
    },
    "credit_report": {
        **MINIMAL["credit_report"],
        "report_date": "2024-02-28T00:00:00Z",
        "score": 712.0,
        "score_min": 300.0,
        "score_max": 850.0,
        "higher_is_better": True,
        "rating": "BBB",
        "currency": "EUR",
        "reported_limits": 250_000.0,
        "arrears_elsewhere": 1_200.0,
        "lawsuits": 1,
        "tax_arrears": 0,
        "insolvency": False,
    },
}

MODELS = {
    "customer": CustomerEvent,
    "order": OrderEvent,
    "invoice": InvoiceEvent,
    "payment": PaymentEvent,
    "statement": StatementEvent,
    "outcome": OutcomeEvent,
    "collection": CollectionEvent,
    "credit_report": CreditReportEvent,
}

#: Fields EVENTS.md requires per type, besides the envelope.
REQUIRED = {
    "customer": ["credit_limit", "currency", "payment_terms_days"],
    "order": ["order_id", "amount", "currency", "status"],
    "invoice": ["invoice_id", "amount", "currency", "due_at"],
    "payment": ["payment_id", "amount", "currency", "status"],
    "statement": ["statement_id", "balance", "currency", "days_past_due", "status"],
    "outcome": ["outcome"],
    "collection": ["action"],
    "credit_report": ["report_id", "source"],
}


def event(kind: str, full: bool = False, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy((FULL if full else MINIMAL)[kind])
    d = {"type": kind, **ENVELOPE, **body}
    d.update(changes)
    return d


def validate(d: dict[str, Any] | str) -> Any:
    raw = d if isinstance(d, str) else json.dumps(d)
    return input_event_adapter.validate_json(raw)


def assert_rejected(raw: dict[str, Any] | str, field: str | None = None) -> None:
    with pytest.raises(ValidationError) as info:
        validate(raw)
    if field is not None:
        locs = [".".join(str(p) for p in err["loc"]) for err in info.value.errors()]
        assert any(field in loc for loc in locs), locs


def test_the_contract_lists_every_type() -> None:
    assert set(EVENT_TYPES) == set(MODELS) == set(MINIMAL)


@pytest.mark.parametrize("full", [False, True], ids=["minimal", "full"])
@pytest.mark.parametrize("kind", list(MODELS))
def test_every_event_type_validates_from_json(kind: str, full: bool) -> None:
    d = event(kind, full=full)
    parsed = validate(d)
    assert type(parsed) is MODELS[kind]
    assert parsed.type == kind
    assert parsed.event_id == "e-1" and parsed.customer_id == "cust-1"
    assert parsed.occurred_at.utcoffset() is not None
    assert parsed.occurred_at.isoformat() == "2024-03-01T10:00:00+01:00"
    for name, value in (FULL if full else MINIMAL)[kind].items():
        got = getattr(parsed, name)
        if hasattr(got, "model_dump"):
            got = got.model_dump(exclude_none=True)
        elif hasattr(got, "isoformat"):
            assert got.utcoffset() is not None
            continue
        assert got == value, name


@pytest.mark.parametrize(
    "stamp",
    [
        "2024-03-01T10:00:00Z",
        "2024-03-01T10:00:00+00:00",
        "2024-03-01T10:00:00.123456+08:00",
        "2024-03-01T10:00:00-05:30",
    ],
)
def test_timestamps_with_offset_are_accepted(stamp: str) -> None:
    assert validate(event("order", occurred_at=stamp)).occurred_at.utcoffset() is not None


@pytest.mark.parametrize("field", ["type", "event_id", "customer_id", "occurred_at"])
@pytest.mark.parametrize("kind", list(MODELS))
def test_missing_envelope_field_is_rejected(kind: str, field: str) -> None:
    d = event(kind)
    del d[field]
    assert_rejected(d)


@pytest.mark.parametrize(
    ("kind", "field"), [(k, f) for k, fields in REQUIRED.items() for f in fields]
)
def test_missing_required_field_is_rejected(kind: str, field: str) -> None:
    d = event(kind)
    del d[field]
    assert_rejected(d, field)


WRONG_TYPES = [
    ("order", "customer_id", 123),
    ("order", "event_id", None),
    ("order", "event_id", ""),
    ("order", "customer_id", "x" * 201),
    ("order", "amount", "a lot"),
    ("order", "amount", [10]),
    ("order", "amount", {"value": 10}),
    ("order", "amount", True),
    ("invoice", "amount", "120.50"),
    ("order", "status", "shipped"),
    ("order", "occurred_at", 1709283600),
    ("order", "occurred_at", "yesterday"),
    ("customer", "payment_terms_days", 1.5),
    ("customer", "payment_terms_days", True),
    ("customer", "segment", "retail"),
    ("customer", "financials", [1, 2]),
    ("statement", "days_past_due", "thirty"),
    ("statement", "status", "late"),
    ("payment", "status", "pending"),
    ("invoice", "due_at", "next month"),
    ("outcome", "outcome", "maybe"),
    ("collection", "action", "threatened"),
]


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    WRONG_TYPES,
    ids=[f"{k}.{f}={json.dumps(v)[:12]}" for k, f, v in WRONG_TYPES],
)
def test_wrong_type_is_rejected(kind: str, field: str, value: Any) -> None:
    """EVENTS.md: "a wrong type ... is a bad event" (a JSON bool or string is not a number)."""
    assert_rejected(event(kind, **{field: value}), field)


NEGATIVE = [
    ("customer", "credit_limit"),
    ("customer", "payment_terms_days"),
    ("order", "amount"),
    ("invoice", "amount"),
    ("payment", "amount"),
    ("statement", "days_past_due"),
    ("collection", "promised_amount"),
]


@pytest.mark.parametrize(("kind", "field"), NEGATIVE)
def test_negative_amount_is_rejected(kind: str, field: str) -> None:
    assert_rejected(event(kind, **{field: -1}), field)


def test_negative_statement_balance_is_allowed() -> None:
    assert validate(event("statement", balance=-250.0)).balance == -250.0


def test_zero_amounts_are_allowed() -> None:
    assert validate(event("order", amount=0)).amount == 0
    assert validate(event("customer", credit_limit=0)).credit_limit == 0


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("order", "occurred_at"),
        ("invoice", "occurred_at"),
        ("invoice", "due_at"),
        ("collection", "promised_at"),
        ("statement", "occurred_at"),
    ],
)
@pytest.mark.parametrize("naive", ["2024-03-01T10:00:00", "2024-03-01 10:00:00", "2024-03-01"])
def test_timestamp_without_offset_is_rejected(kind: str, field: str, naive: str) -> None:
    assert_rejected(event(kind, full=True, **{field: naive}), field)


NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400"]


@pytest.mark.parametrize("literal", NON_FINITE)
@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("order", "amount"),
        ("invoice", "amount"),
        ("payment", "amount"),
        ("customer", "credit_limit"),
        ("statement", "balance"),
        ("statement", "minimum_due"),
        ("collection", "promised_amount"),
    ],
)
def test_non_finite_amounts_are_rejected(kind: str, field: str, literal: str) -> None:
    d = event(kind, full=True, **{field: 1.0})
    raw = json.dumps(d).replace(f'"{field}": 1.0', f'"{field}": {literal}')
    assert literal in raw
    assert_rejected(raw, field)


@pytest.mark.parametrize("literal", ['"NaN"', '"inf"'])
def test_non_finite_amounts_as_strings_are_rejected(literal: str) -> None:
    raw = json.dumps(event("order", amount=1.0)).replace('"amount": 1.0', f'"amount": {literal}')
    assert_rejected(raw, "amount")


@pytest.mark.parametrize("kind", ["invoices", "refund", "", "Order", None, 7])
def test_unknown_type_is_rejected(kind: Any) -> None:
    d = event("order")
    d["type"] = kind
    assert_rejected(d)


@pytest.mark.parametrize("raw", ["", "{", "[]", '"order"', "null", "42", '{"type": "order"}'])
def test_non_events_are_rejected(raw: str) -> None:
    assert_rejected(raw)


@pytest.mark.parametrize("kind", list(MODELS))
def test_unknown_extra_fields_are_kept(kind: str) -> None:
    d = event(kind, full=True, upstream_version=3, trace={"span": "ab12"})
    parsed = validate(d)
    assert parsed.model_extra == {"upstream_version": 3, "trace": {"span": "ab12"}}
    dumped = parsed.model_dump(mode="json")
    assert dumped["upstream_version"] == 3 and dumped["trace"] == {"span": "ab12"}


def test_unknown_segment_fields_are_kept() -> None:
    d = event("customer", full=True)
    d["segment"]["sub_industry"] = "groceries"
    parsed = validate(d)
    assert parsed.segment is not None
    assert parsed.segment.model_dump()["sub_industry"] == "groceries"


@pytest.mark.parametrize("rating", ["AA-", 712, 3.5, None])
def test_rating_is_string_or_number(rating: Any) -> None:
    assert validate(event("customer", rating=rating)).rating == rating


def test_events_are_immutable() -> None:
    parsed = validate(event("order"))
    with pytest.raises(ValidationError):
        parsed.amount = 5  # type: ignore[misc]


def test_json_schema_files_match_the_models() -> None:
    assert export.main(["--check"]) == 0


def test_json_schema_files_cover_every_event_type() -> None:
    schema = json.loads((export.HERE / "input-event.schema.json").read_text())
    mapping = schema["discriminator"]["mapping"]
    assert set(mapping) == set(EVENT_TYPES)


def test_schema_check_detects_drift(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The drift check itself can fail: point it at a copy and change one file."""
    for name in export.schemas():
        (tmp_path / name).write_text((export.HERE / name).read_text())
    monkeypatch.setattr(export, "HERE", tmp_path)
    assert export.main(["--check"]) == 0
    (tmp_path / "warning.schema.json").write_text("{}\n")
    assert export.main(["--check"]) == 1
