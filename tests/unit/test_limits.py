"""Limits: contract bounds, rule-set limits, the segment cap and replay's clock safety."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from risk_factory import collection, customer, invoice, order, payment, statement

from stream_risk import cli
from stream_risk.core.detectors.segment_behaviour import OTHER, SegmentBehaviour
from stream_risk.core.rulefmt import macro_nesting
from stream_risk.core.ruleset import load_files
from stream_risk.schemas.events import INT64, MAX_DAYS, check_free_form, input_event_adapter


def validate(event: dict[str, Any]) -> Any:
    return input_event_adapter.validate_json(json.dumps(event))


# ------------------------------------------------------------------ the contract


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (customer(0, terms=MAX_DAYS + 1), "payment_terms_days"),
        (customer(0, terms=10**30), "payment_terms_days"),
        (statement(0, 1.0, 10**30), "days_past_due"),
        (statement(0, 1e16), "balance"),
        (statement(0, -1e16), "balance"),
        (order(0, "o", 1e16), "amount"),
        (order(0, "o" * 201, 1.0), "order_id"),
        (order(0, "o", 1.0, channel="c" * 201), "channel"),
        (payment(0, "p", 1.0, method="m" * 201), "method"),
        (payment(0, "p", 1.0, invoice_id="i" * 201), "invoice_id"),
        (invoice(0, "i", 1.0, 30, order_id="o" * 201), "order_id"),
        (collection(0, note="n" * 2_001), "note"),
        (collection(0, warning_id="w" * 201), "warning_id"),
        (customer(0, segment={"industry": "x" * 201}), "industry"),
        (customer(0, segment={"region": "eu", "extra": {"n": 2**63}}), "segment"),
        (customer(0, rating="r" * 201), "rating"),
        (customer(0, financials={"x": {"y": 10**30}}), "financials"),
        (customer(0, financials={"x": float("nan")}), "financials"),
        (customer(0, attributes={"a": [[[[[1]]]]]}), "attributes"),
        (customer(0, attributes={str(i): i for i in range(300)}), "attributes"),
        (customer(0, attributes={"a": list(range(300))}), "attributes"),
        (customer(0, attributes={"a": "t" * 2_001}), "attributes"),
        (order(0, "o", 1.0, junk=10**30), "extra fields"),
        (order(0, "o", 1.0, cid="a\x00b"), "customer_id"),
        (order(0, "o", 1.0, cid="a\x1bb"), "customer_id"),
        (order(0, "o", 1.0, cid="a\u202eb"), "customer_id"),
        (order(0, "o", 1.0, cid="a\u200bb"), "customer_id"),
        (order(0, "o", 1.0, cid="a\ufeff"), "customer_id"),
    ],
)
def test_values_beyond_the_limits_are_bad_events(event: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate(event)
    assert field in str(info.value)


@pytest.mark.parametrize(
    "event",
    [
        customer(0, terms=MAX_DAYS, financials={"revenue": INT64[1], "ratio": -1.5}),
        customer(0, attributes={"a": {"b": {"c": [1, "x", None, True]}}}),
        customer(0, segment={"industry": "i" * 200, "size": "sme", "tier_hint": "x"}),
        statement(0, -1e15, MAX_DAYS),
        order(0, "o", 1e15, cid="Müller & Söhne GmbH / 株式会社"),
        collection(0, note="line one\nline two\ttabbed"),
        order(0, "o", 1.0, extra_field={"nested": [1, 2, 3]}),
    ],
)
def test_values_at_the_limits_are_accepted(event: dict[str, Any]) -> None:
    validate(event)


def test_free_form_limits_count_entries_across_levels() -> None:
    check_free_form({"a": list(range(200)), "b": list(range(50))})
    with pytest.raises(ValueError, match="entries"):
        check_free_form({"a": list(range(200)), "b": list(range(60))})


def test_the_exported_schema_states_the_limits() -> None:
    from stream_risk.schemas.export import schemas

    text = json.dumps(schemas()["input-event.schema.json"])
    assert f'"maximum": {MAX_DAYS}' in text
    assert "signed 64 bits" in text
    assert "\\\\u202e" in text or "\\\\u202a-\\\\u202e" in text


# ------------------------------------------------------------------ rule limits

NESTED_4 = (
    "[" + ", ".join(["1.0"] * 40) + "].exists(a, "
    "[" + ", ".join(["2.0"] * 40) + "].exists(b, "
    "[" + ", ".join(["3.0"] * 40) + "].exists(c, "
    "[" + ", ".join(["4.0"] * 40) + "].exists(d, a + b + c + d < days_past_due))))"
)


def rule_file(expr: str, summary: str = "x") -> str:
    return (
        "groups:\n  - name: g\n    rules:\n      - name: r\n"
        f"        expr: {json.dumps(expr)}\n        level: low\n"
        f"        annotations: {{summary: {json.dumps(summary)}}}\n"
    )


def test_four_nested_exists_over_40_element_lists_is_rejected_by_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert len(NESTED_4) < 1_000 and macro_nesting(NESTED_4) == 4
    (tmp_path / "slow.yaml").write_text(rule_file(NESTED_4))
    assert cli.main(["rules", "check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "slow.yaml:5:" in err and "nests comprehension macros 4 deep" in err


def test_a_200_million_wide_format_is_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "wide.yaml").write_text(
        rule_file("days_past_due >= 30", "{{ days_past_due:200000000 }}")
    )
    assert cli.main(["rules", "check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "width 200000000 is above 64" in err
    rules, errors = load_files({"w.yaml": rule_file("days_past_due > 1", "{{ x:.500f }}")})
    assert rules is None and any("precision 500" in str(e) for e in errors)


def test_long_expressions_are_rejected() -> None:
    expr = " || ".join(["days_past_due > 1.0"] * 60)
    rules, errors = load_files({"long.yaml": rule_file(expr)})
    assert rules is None and any("characters long" in str(e) for e in errors)


def test_the_evaluation_budget_is_checked_on_a_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two levels pass the nesting limit; over 220-element lists that is 48,400 steps,
    # several times the budget even on a fast, quiet machine.
    wide = "[" + ",".join(["1"] * 220) + "]"
    # (Iteration variables must be known names to compile, so they shadow features.)
    expr = f"{wide}.exists(risk_score, {wide}.exists(days_past_due, risk_score > days_past_due))"
    (tmp_path / "wide.yaml").write_text(rule_file(expr))
    assert cli.main(["rules", "check", str(tmp_path), "--budget-ms", "5"]) == 1
    err = capsys.readouterr().err
    assert "ms per evaluation on a sample, above the budget of 5 ms" in err
    assert "wide.yaml:5:" in err
    (tmp_path / "wide.yaml").write_text(rule_file("days_past_due >= 30.0"))
    assert cli.main(["rules", "check", str(tmp_path), "--budget-ms", "5"]) == 0


def test_the_default_pack_is_within_the_budget(capsys: pytest.CaptureFixture[str]) -> None:
    repo = Path(__file__).resolve().parents[2]
    assert cli.main(["rules", "check", str(repo / "rules")]) == 0


# ------------------------------------------------------------------ segment cap


def test_segments_beyond_the_cap_share_the_other_forest() -> None:
    peers = SegmentBehaviour(max_segments=3, warm_up=1, window_size=5)
    for n in range(50):
        peers.learn_one(f"industry-{n}", {"credit_utilisation": 0.5})
    assert sorted(peers.forests) == ["industry-0", "industry-1", "industry-2", OTHER]
    assert peers.seen[OTHER] == 47
    assert peers.score_one("industry-99", {"credit_utilisation": 0.5}) is not None
    restored = SegmentBehaviour(max_segments=3, warm_up=1, window_size=5)
    restored.restore(json.loads(json.dumps(peers.to_dict())))
    assert restored.bucket("industry-77") == OTHER and restored.bucket("industry-1") == "industry-1"


# ------------------------------------------------------------------ replay


def test_replay_rejects_an_event_far_ahead_of_the_stream(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = [customer(0, 10_000.0, cid="a"), invoice(0, "ia", 100.0, 5, cid="a")]
    events += [order(d, f"o{d}", 1.0, cid="b") for d in range(1, 20)]
    future = order(0, "o2099", 1.0, cid="b")
    future["occurred_at"] = "2099-01-01T00:00:00+00:00"
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in [future, *events]) + "\n")
    warnings = tmp_path / "w.jsonl"
    capsys.readouterr()
    assert cli.main(["replay", str(path), "--warnings-out", str(warnings), "-q"]) == 0
    err = capsys.readouterr().err
    assert f"{path}:1: bad event: too far ahead" in err
    fired = [json.loads(line) for line in warnings.read_text().splitlines()]
    # a's invoice is 14 days late at day 19, never 75 years.
    assert all(w["occurred_at"] < "2025" for w in fired)
    assert not any(w["rule"] == "overdue_90_days" for w in fired)


def test_costs_times_the_guard_and_the_driver(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = [customer(0, 1000.0, cid=f"c{n}") for n in range(4)]
    events += [order(d, f"o{d}", 10.0, cid=f"c{d % 4}") for d in range(1, 17)]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    assert cli.main(["costs", str(path), "--sample", "4", "--driver-events", "20"]) == 0
    out = capsys.readouterr().out
    assert "monitor guard: state snapshot (encode), decoded copy" in out
    assert "monitor guard: state snapshot (encode), as replayed" in out
    assert "monitor driver on the first 20 events" in out
