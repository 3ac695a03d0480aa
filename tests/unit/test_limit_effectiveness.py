"""Backtest effectiveness of limit decisions: by hand, and through ``stream-risk backtest``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from risk_factory import at, customer, statement

from stream_risk.cli import main
from stream_risk.limit_effectiveness import LimitDecisions, direction_of, render

DAY = 86_400.0


@pytest.mark.parametrize(
    ("recommendation", "expected"),
    [
        ({"kind": "increase_credit_limit", "from": 10.0, "to": 12.5}, ("increase", 12.5)),
        ({"kind": "reduce_credit_limit", "from": 10.0, "to": 5.0}, ("reduce", 5.0)),
        ({"kind": "reduce_credit_limit", "to_share": 0.5}, None),  # limit unknown: no amount
        ({"kind": "set_credit_limit", "from": 10.0, "to": 20.0}, ("increase", 20.0)),
        ({"kind": "set_credit_limit", "from": 10.0, "to": 0.0}, ("reduce", 0.0)),
        ({"kind": "set_credit_limit", "from": 10.0, "to": 10.0}, None),
        ({"kind": "set_credit_limit", "from": None, "to": 10.0}, None),
        ({"kind": "extend_terms", "days": 45, "from": 30}, None),
        ({"kind": "keep", "credit_limit": 10.0}, None),
    ],
)
def test_which_recommendations_are_limit_decisions(
    recommendation: dict[str, Any], expected: tuple[str, float] | None
) -> None:
    assert direction_of(recommendation) == expected


def _action(cid: str, day: float, *recommendations: dict[str, Any]) -> dict[str, Any]:
    return {"customer_id": cid, "occurred_at": at(day), "recommendations": list(recommendations)}


def test_effectiveness_by_hand() -> None:
    d = LimitDecisions()
    up = {"kind": "increase_credit_limit", "from": 100.0, "to": 150.0}
    d.add(_action("good", 10, up))
    d.add(_action("good", 50, up))
    d.add(_action("bad", 10, up))
    d.add(_action("bad", 20, {"kind": "reduce_credit_limit", "from": 1000.0, "to": 600.0}))
    d.add(_action("bad", 30, {"kind": "set_credit_limit", "from": 1000.0, "to": 250.0}))
    # After the default: does not count.
    d.add(_action("bad", 95, {"kind": "reduce_credit_limit", "from": 1000.0, "to": 0.0}))
    d.add(_action("late", 40, {"kind": "reduce_credit_limit", "from": 500.0, "to": 400.0}))
    d.add(_action("nobody", 40, up))  # no outcome: not counted
    t0 = 1704067200.0
    d.settle("good", adverse=False, at=t0 + 90 * DAY, balance=120.0)
    d.settle("bad", adverse=True, at=t0 + 90 * DAY, balance=900.0)
    d.settle("late", adverse=True, at=t0 + 90 * DAY, balance=300.0)  # below its proposed limit
    d.settle("bad", adverse=False, at=t0 + 99 * DAY, balance=0.0)  # only the first outcome counts
    report = d.report()
    assert report is not None
    assert report["increases"] == {
        "proposed": 3,
        "customers": 2,
        "to_customers_without_default": 2,
        "share_without_default": 2 / 3,
    }
    # bad: 900 open at default, 250 at the latest proposed limit -> 650 avoided; late: 0.
    assert report["reductions"] == {
        "defaulters_with_a_reduction": 2,
        "exposure_at_default": 1200.0,
        "exposure_avoided": 650.0,
        "share_avoided": 650.0 / 1200.0,
    }
    lines = render(report)
    assert "3 to 2 customers" in lines[1] and "(0.667)" in lines[1]
    assert "avoided at the proposed limits 650" in lines[2]


def test_no_decisions_no_section() -> None:
    d = LimitDecisions()
    d.settle("a", adverse=True, at=None, balance=10.0)
    assert d.report() is None
    assert render(None) == []


def _report(**fields: Any) -> dict[str, Any]:
    body = {
        "type": "credit_report",
        "report_id": "r",
        "source": "bureau",
        **fields,
    }
    return body


def test_backtest_reports_limit_decisions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    strong = {"revenue": 1_200_000, "equity": 900_000, "current_ratio": 2.2, "debt_ratio": 0.2}
    events: list[dict[str, Any]] = []
    for n in range(3):
        # Strong financials: the assessment proposes far more than the 1,000 they have.
        cid = f"good{n}"
        events.append(customer(0, 1_000.0, cid=cid, rating="AA", financials=strong))
        events.append(statement(30, 400.0, cid=cid))
        events.append(
            {**_envelope("outcome", cid, 80), "outcome": "current"},
        )
    for n in range(2):
        # Insolvent by the report: the assessment proposes no credit; they default later
        # with 8,000 open.
        cid = f"bad{n}"
        events.append(customer(0, 10_000.0, cid=cid, rating="BB"))
        events.append({**_envelope("credit_report", cid, 5), **_report(insolvency=True)})
        events.append(statement(60, 8_000.0, 95, "delinquent", cid=cid))
        events.append({**_envelope("outcome", cid, 80), "outcome": "default"})
    events.sort(key=lambda e: e["occurred_at"])
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))

    assert main(["backtest", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    decisions = report["limit_decisions"]
    assert decisions["increases"]["customers"] == 3
    assert decisions["increases"]["share_without_default"] == 1.0
    reductions = decisions["reductions"]
    assert reductions["defaulters_with_a_reduction"] == 2
    assert reductions["exposure_at_default"] == 16_000.0
    # The assessment proposed 0 on day 5; on day 60 the 95-days-past-due statement made
    # the critical warning propose half the limit (5,000) and the high tier 70 % (7,000):
    # the latest and lowest, 5,000, would have left 5,000 of the 8,000 open.
    assert reductions["exposure_avoided"] == 6_000.0

    assert main(["backtest", str(path)]) == 0
    text = capsys.readouterr().out
    assert "limit increases proposed:" in text
    assert "limit reductions before a default: 2 defaulters" in text


def _envelope(kind: str, cid: str, day: float) -> dict[str, Any]:
    return {
        "type": kind,
        "event_id": f"{cid}-{kind}-{day}",
        "customer_id": cid,
        "occurred_at": at(day),
    }
