"""The ``credit_report`` event: what validates, what is a bad event, and where bad ones go."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError
from risk_factory import at, customer
from test_monitor_driver import Harness, state_of

from stream_risk.core import Context
from stream_risk.schemas.events import CreditReportEvent, input_event_adapter
from stream_risk.schemas.outputs import CreditAction


def report(**fields: Any) -> dict[str, Any]:
    base = {
        "type": "credit_report",
        "event_id": "r-e1",
        "customer_id": "c1",
        "occurred_at": at(1),
        "report_id": "r1",
        "source": "bureau",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None or k not in fields}


GOOD = [
    pytest.param({}, id="minimal"),
    pytest.param({"score": 712, "score_min": 300, "score_max": 850}, id="integer-score"),
    pytest.param(
        {"score": 2.0, "score_min": 1.0, "score_max": 6.0, "higher_is_better": False},
        id="lower-is-better",
    ),
    pytest.param({"rating": "BB+"}, id="rating-only"),
    pytest.param({"arrears_elsewhere": 0.0, "currency": "EUR"}, id="zero-arrears"),
    pytest.param({"insolvency": True, "lawsuits": 3, "tax_arrears": 2}, id="negative-records"),
    pytest.param({"report_date": "2024-01-01T00:00:00+02:00"}, id="report-date"),
]


@pytest.mark.parametrize("fields", GOOD)
def test_good_credit_reports_validate(fields: dict[str, Any]) -> None:
    parsed = input_event_adapter.validate_json(json.dumps(report(**fields)))
    assert isinstance(parsed, CreditReportEvent)
    for name, value in fields.items():
        got = getattr(parsed, name)
        assert (got.isoformat() if hasattr(got, "isoformat") else got) == value


BAD = [
    pytest.param({"score": 700}, "score needs its scale", id="score-without-scale"),
    pytest.param(
        {"score": 900, "score_min": 300, "score_max": 850}, "within", id="score-off-scale"
    ),
    pytest.param({"score": 1, "score_min": 5, "score_max": 5}, "below", id="empty-scale"),
    pytest.param({"reported_limits": 1000.0}, "currency is required", id="amount-no-currency"),
    pytest.param(
        {"arrears_elsewhere": -5.0, "currency": "EUR"}, "arrears_elsewhere", id="negative-arrears"
    ),
    pytest.param({"lawsuits": -1}, "lawsuits", id="negative-count"),
    pytest.param({"lawsuits": 1.5}, "lawsuits", id="fractional-count"),
    pytest.param({"tax_arrears": 10**7}, "tax_arrears", id="absurd-count"),
    pytest.param({"insolvency": "maybe"}, "insolvency", id="flag-not-bool"),
    pytest.param({"report_date": "2024-01-01T00:00:00"}, "report_date", id="naive-report-date"),
    pytest.param({"source": ""}, "source", id="empty-source"),
    pytest.param({"report_id": None}, "report_id", id="missing-report-id"),
    pytest.param({"rating": "x" * 17}, "rating", id="rating-too-long"),
]


@pytest.mark.parametrize(("fields", "reason"), BAD)
def test_bad_credit_reports_are_rejected(fields: dict[str, Any], reason: str) -> None:
    raw = report(**fields)  # a field given as None is left out
    with pytest.raises(ValidationError) as info:
        input_event_adapter.validate_json(json.dumps(raw))
    assert reason in str(info.value)


def test_non_finite_scores_are_rejected() -> None:
    raw = json.dumps(report(score=1.0, score_min=0.0, score_max=2.0)).replace(
        '"score": 1.0', '"score": NaN'
    )
    with pytest.raises(ValidationError):
        input_event_adapter.validate_json(raw)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"score": 700}, "score needs its scale"),
        ({"reported_limits": 1000.0, "currency": "GBP"}, "GBP"),  # no exchange rate
        ({"lawsuits": -1}, "lawsuits"),
    ],
)
def test_bad_credit_reports_go_to_dead_letters(fields: dict[str, Any], reason: str) -> None:
    h = Harness()
    value = json.dumps(report(**fields)).encode()
    result = h.process(h.msg(value, key=b"c1", topic="in.credit_report"))
    [(key, dead)] = result.dead_letters
    assert key == b"c1"
    assert reason in dead["reason"]
    assert dead["original"] == value.decode()
    assert h.driver.counts["dead_letters"] == 1


def test_a_credit_report_on_its_topic_is_applied_and_reassesses() -> None:
    h = Harness(Context(population=None))
    h.process(h.msg(customer(0, 5_000.0, rating="A")))
    result = h.process(
        h.msg(report(insolvency=True, arrears_elsewhere=900.0, currency="EUR"), topic=None)
    )
    assert result.dead_letters == []
    state = state_of(h, "c1")
    assert state.credit_report["insolvent"] is True
    assert state.credit_report["arrears"] == 900.0
    assessments = [a for _, a in result.credit_actions if a["source"] == "assessment"]
    [action] = assessments
    CreditAction.model_validate(action)
    assert action["evidence"]["grade"] == "E"
    assert action["recommendations"][0]["to"] == 0.0


def test_a_credit_report_on_another_topic_is_dead() -> None:
    h = Harness()
    result = h.process(h.msg(report(), topic="in.order"))
    [(_, dead)] = result.dead_letters
    assert "credit_report" in dead["reason"]
