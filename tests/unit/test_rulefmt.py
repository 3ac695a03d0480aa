"""Rule files: good ones load, bad ones report every error with file, line, column, group, rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stream_risk import cli
from stream_risk.core.rulefmt import parse_duration
from stream_risk.core.ruleset import default_rules, load_dir, load_files

FIXTURES = Path(__file__).parent / "fixtures" / "rules"
REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<where>[^ ]+/[^ ]+): (?P<msg>.+)$"
)


def load(name: str) -> tuple[object, list[str]]:
    rules, errors = load_files({name: (FIXTURES / name).read_text()})
    return rules, [str(e) for e in errors]


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.good.yaml")))
def test_good_files_load(name: str) -> None:
    rules, errors = load(name)
    assert errors == []
    assert rules is not None


def test_a_full_rule_keeps_every_part() -> None:
    rules, _ = load_files({"full.yaml": (FIXTURES / "full.good.yaml").read_text()}, "7")
    assert rules is not None
    (rule,) = rules.rules
    assert rules.version == "7"
    assert (rule.name, rule.group, rule.level) == ("over_limit_retail", "exposure", "medium")
    assert rule.hold == 2 * 86_400 and rule.cooldown == 7 * 86_400
    assert rule.segments == {
        "industry": ("retail", "wholesale"),
        "size": ("sme",),
        "tier": ("medium", "high"),
    }
    assert [e.level for e in rule.escalate] == ["high", "critical"]
    assert rule.escalate[1].actions == ({"kind": "reduce_credit_limit", "to_share": 0.25},)
    assert [a["kind"] for a in rule.actions] == [
        "contact_customer",
        "reduce_credit_limit",
        "shorten_terms",
        "hold_orders",
        "require_prepayment",
    ]
    assert rules.tiers.down_after == 45 * 86_400
    assert {"credit_utilisation", "segment_industry", "days_past_due", "risk_score", "tier"} <= set(
        rules.variables
    )


BAD = {
    "yaml-syntax.bad.yaml": [(4, "not valid YAML")],
    "shape.bad.yaml": [
        (2, "group name must be snake_case"),
        (3, "unknown key 'colour'"),
        (5, "level is required"),
        (7, "rule name is required"),
        (11, "level must be one of low, medium, high, critical, got 'severe'"),
        (12, "for must be a duration"),
        (13, "segments.tier values must be among"),
        (13, "unknown key 'planet'"),
        (14, "unknown action 'call_the_police'"),
        (14, "to_share must be a share in (0, 1), got 2"),
        (14, "shorten_terms needs exactly one of days"),
    ],
    "expr.bad.yaml": [
        (5, "expr does not compile: Syntax error"),
        (8, "unknown name 'dayz_past_due'"),
        (8, "did you mean 'days_past_due'?"),
        (11, "expr does not type-check"),
        (14, "expr must be a condition"),
        (16, "rule name 'syntax' is already used at expr.bad.yaml:4"),
        (19, "unknown name 'nope' in template"),
    ],
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_files_report_every_error_with_its_position(name: str) -> None:
    rules, errors = load(name)
    assert rules is None
    parsed = [LINE.match(e) for e in errors]
    assert all(parsed), errors
    assert {m.group("file") for m in parsed if m} == {name}
    for line, fragment in BAD[name]:
        assert any(
            m and int(m.group("line")) == line and fragment in m.group("msg") for m in parsed
        ), (line, fragment, errors)
    assert len(errors) == len({(line, frag) for line, frag in BAD[name] if "did you" not in frag})


def test_a_cel_syntax_error_points_into_the_expression() -> None:
    _, errors = load("expr.bad.yaml")
    syntax = next(e for e in errors if "does not compile" in e)
    # `expr: days_past_due >>= 30` starts at column 15; the stray '>=' is 15 characters in.
    assert syntax.startswith("expr.bad.yaml:5:30: exprs/syntax:")


def test_errors_from_several_files_are_all_reported() -> None:
    files = {n: (FIXTURES / n).read_text() for n in ("shape.bad.yaml", "expr.bad.yaml")}
    files["ok.yaml"] = (FIXTURES / "minimal.good.yaml").read_text()
    rules, errors = load_files(files)
    assert rules is None
    assert {e.file for e in errors} == {"shape.bad.yaml", "expr.bad.yaml"}
    assert len(errors) == 11 + 6


def test_names_are_unique_across_files_and_tiers_are_defined_once() -> None:
    full = (FIXTURES / "full.good.yaml").read_text()
    rules, errors = load_files({"a.yaml": full, "b.yaml": full})
    assert rules is None
    messages = [f"{e.file}:{e.line} {e.message}" for e in errors]
    assert any("b.yaml:2 group 'exposure' is already defined at a.yaml:2" in m for m in messages)
    assert any("rule name 'over_limit_retail' is already used at a.yaml:5" in m for m in messages)
    assert any("tiers is already defined in a.yaml" in m for m in messages)


def test_an_empty_rule_set_is_an_error() -> None:
    assert load_files({})[1][0].message == "no rule files (*.yaml, *.yml)"
    assert "empty rule file" in str(load_files({"e.yaml": ""})[1][0])


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        *[("0", 0.0), ("90s", 90.0), ("15m", 900.0), ("12h", 43_200.0), ("7d", 604_800.0)],
        *[("2w", 1_209_600.0), ("1d12h", 129_600.0), ("1.5d", None), ("", None), ("d", None)],
    ],
)
def test_durations(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_the_default_pack_covers_the_domain() -> None:
    rules = default_rules()
    names = rules.names()
    # Kept from the first built-in rules, so warnings keep their names. Utilisation alone
    # is no longer a warning: it is read as evidence beside a payment sign (below).
    assert {"overdue_30_days", "overdue_90_days"} <= names
    assert "high_credit_utilisation" not in names
    read = set(rules.variables)
    for needed in (
        "days_past_due",
        "paid_to_due_ratio_90d",
        "credit_utilisation",
        "exposure_growth_30d",
        "bounced_payments_90d",
        "broken_promises_90d",
        "order_amount_zscore",
        "order_frequency_change",
        "days_since_last_order",
        "days_since_last_payment",
        "partial_payment_share_90d",
        "avg_days_late_90d",
        "days_late_drift",
        "risk_score",
        "tier",
    ):
        assert needed in read, needed
    assert {r.level for r in rules.rules} == {"low", "medium", "high", "critical"}
    assert rules.tiers.actions["high"]
    assert rules.version.startswith("default-")


def test_the_shipped_rules_directory_is_the_default_pack() -> None:
    rules, errors = load_dir(REPO / "rules")
    assert errors == [] and rules is not None
    default = default_rules()
    assert {r.name: r.condition.source for r in rules.rules} == {
        r.name: r.condition.source for r in default.rules
    }
    assert rules.tiers == default.tiers


def test_cli_check_lists_every_error_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("shape.bad.yaml", "expr.bad.yaml", "minimal.good.yaml"):
        (tmp_path / name).write_text((FIXTURES / name).read_text())
    assert cli.main(["rules", "check", str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()
    located = [line for line in err if LINE.match(line)]
    assert len(located) == 17
    assert all(line.startswith(str(tmp_path)) for line in located)
    assert err[-1] == f"stream-risk rules: 17 error(s) in {tmp_path}"


def test_cli_check_accepts_the_default_pack(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rules", "check", str(REPO / "rules")]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith(": OK")
    assert f"{len(default_rules().rules)} rules" in out


def test_cli_check_of_a_missing_directory(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rules", "check", "/nonexistent/rules"]) == 1
    assert "is not a directory" in capsys.readouterr().err
