"""Backtest metrics against hand-checked values and the replay of a small portfolio."""

from __future__ import annotations

import base64
import gzip
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stream_risk.backtest import (
    Outcome,
    calibrate,
    evaluate,
    parse_target,
    pr_auc,
    roc_auc,
    rule_budget,
)
from stream_risk.cli import main
from stream_risk.core.ruleset import load_files
from stream_risk.report import LIMIT_SECTION, SECTIONS


def _auc_reference(scores: list[float], labels: list[bool]) -> float:
    # Probability that a random adverse customer outscores a random other one.
    s = np.array(scores)
    y = np.array(labels)
    pos, neg = s[y], s[~y]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_matches_the_pairwise_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = [float(x) for x in rng.integers(0, 8, size=60) / 8]  # many ties
    labels = [bool(x) for x in rng.integers(0, 2, size=60)]
    assert roc_auc(scores, labels) == pytest.approx(_auc_reference(scores, labels))


def test_one_class_has_no_auc() -> None:
    assert roc_auc([0.1, 0.2], [True, True]) is None
    assert pr_auc([0.1, 0.2], [False, False]) is None


def test_average_precision_by_hand() -> None:
    # ranked: T (1/1), F, T (2/3) -> (1 + 2/3) / 2
    assert pr_auc([0.9, 0.5, 0.1], [True, False, True]) == pytest.approx((1 + 2 / 3) / 2)


def test_tiers_levels_and_lead_time() -> None:
    day = 86_400.0
    outcomes = {
        "a": Outcome(True, 0.9, "high", 100 * day, {"critical", "high"}, 40 * day),
        "b": Outcome(True, 0.3, "medium", 100 * day, {"medium"}, None),
        "c": Outcome(False, 0.2, "low", 100 * day, set(), None),
        "d": Outcome(False, 0.6, "high", 100 * day, {"high"}, 90 * day),
        "e": Outcome(True, 0.8, "high", 100 * day, {"high"}, 80 * day),
    }
    report = evaluate(outcomes)
    assert report["adverse"] == 3
    assert report["tiers"]["high"] == {
        "customers": 3,
        "adverse": 2,
        "precision": 2 / 3,
        "recall": 2 / 3,
    }
    assert report["levels"]["medium"]["customers"] == 4  # medium or above
    assert report["levels"]["critical"] == {
        "customers": 1,
        "adverse": 1,
        "precision": 1.0,
        "recall": 1 / 3,
    }
    lead = report["lead_days_first_high_or_critical"]
    assert lead["warned_defaulters"] == 2
    assert lead["median"] == pytest.approx(40.0)  # 60 and 20 days ahead


def _event(kind: str, eid: str, cid: str, day: int, **fields: object) -> dict[str, object]:
    return {
        "type": kind,
        "event_id": eid,
        "customer_id": cid,
        "occurred_at": f"2026-{1 + day // 28:02d}-{1 + day % 28:02d}T00:00:00Z",
        **fields,
    }


def _profile(cid: str) -> dict[str, object]:
    return _event(
        "customer", f"{cid}-p", cid, 0, credit_limit=1000.0, currency="EUR", payment_terms_days=30
    )


def _write(path: Path, events: list[dict[str, object]]) -> Path:
    with gzip.open(path, "wt") as fh:
        fh.writelines(json.dumps(e) + "\n" for e in events)
    return path


def test_backtest_cli_on_a_small_portfolio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = []
    for n in range(6):
        cid = f"c{n}"
        late = n < 3  # the first three fall behind and default
        events.append(_profile(cid))
        events.append(
            _event(
                "statement",
                f"{cid}-s",
                cid,
                30,
                statement_id="s",
                balance=500.0,
                currency="EUR",
                days_past_due=95 if late else 0,
                status="delinquent" if late else "revolving",
            )
        )
        events.append(
            _event("outcome", f"{cid}-o", cid, 80, outcome="default" if late else "current")
        )
    path = _write(tmp_path / "events.jsonl.gz", events)
    assert main(["backtest", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["customers"] == 6 and report["adverse"] == 3
    assert report["roc_auc"] == 1.0
    assert report["levels"]["critical"]["precision"] == 1.0
    assert report["levels"]["critical"]["recall"] == 1.0
    # the 95-days-past-due statement came 50 days before the outcome
    assert report["lead_days_first_high_or_critical"]["median"] == pytest.approx(50.0)


def test_backtest_without_outcomes_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        json.dumps(
            _event("customer", "p", "c", 0, credit_limit=1.0, currency="EUR", payment_terms_days=1)
        )
        + "\n"
    )
    assert main(["backtest", str(path)]) == 1
    assert "no customer has an outcome" in capsys.readouterr().err


def _portfolio(path: Path) -> Path:
    """Six customers: three fall 95 days behind and default, three stay current."""
    events = []
    for n in range(6):
        cid = f"c{n}"
        late = n < 3
        events.append(_profile(cid))
        for month, dpd in enumerate((0, 35, 65, 95) if late else (0, 0, 0, 0)):
            events.append(
                _event(
                    "statement",
                    f"{cid}-s{month}",
                    cid,
                    10 + 28 * month,
                    statement_id=f"s{month}",
                    balance=400.0 + 100 * n,
                    currency="EUR",
                    days_past_due=dpd,
                    status="delinquent" if dpd else "revolving",
                )
            )
        events.append(
            _event("outcome", f"{cid}-o", cid, 140, outcome="default" if late else "current")
        )
    return _write(path, events)


def test_alert_budget_per_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _portfolio(tmp_path / "events.jsonl.gz")
    assert main(["backtest", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    overdue = report["rules"]["overdue_30_days"]
    assert overdue["customers"] == 3 and overdue["precision"] == 1.0
    assert overdue["level"] == "high"  # escalated at 60 days
    # 35 days past due on 11 February, the outcome on 1 June
    assert overdue["median_lead_days"] == pytest.approx(110.0)
    months = 6 * 151 / 30  # 1 January to 1 June, each customer
    assert overdue["per_1000_per_month"] == pytest.approx(1000 * 3 / months)
    critical = report["rules"]["overdue_90_days"]
    assert critical["level"] == "critical" and critical["customers"] == 3
    points = {p["target"]: p for p in report["operating_points"]["precision"]}
    assert points[0.8]["precision"] >= 0.8
    # The default pack's likely-default rule is calibrated to its operating point.
    (likely,) = report["calibration"]["rules"]
    assert likely["rule"] == "likely_default" and likely["kind"] == "precision"
    assert likely["current"] == 0.5 and likely["target"] == 0.7
    assert set(report["calibration"]["tiers"]) == {"high", "medium"}


def test_rule_precision_counts_sixty_days_past_due_as_a_hit() -> None:
    day = 86_400.0
    cured = Outcome(False, 0.2, "low", 100 * day, months=3.0, serious_at=50 * day)
    cured.rules["late"] = [1, 40 * day, "medium"]
    before = Outcome(False, 0.2, "low", 100 * day, months=3.0, serious_at=30 * day)
    before.rules["late"] = [1, 40 * day, "medium"]
    budget = rule_budget({"a": cured, "b": before})["late"]
    # the first went 60+ days past due after the warning; the second only before it
    assert budget["precision"] == 0.5
    assert budget["median_lead_days"] is None  # no adverse outcome


def test_report_has_every_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _portfolio(tmp_path / "events.jsonl.gz")
    challenger = tmp_path / "challenger"
    challenger.mkdir()
    (challenger / "overdue.yaml").write_text(
        "groups:\n  - name: overdue\n    rules:\n"
        "      - {name: overdue_90_days, expr: 'days_past_due >= 90', level: critical}\n"
    )
    out = tmp_path / "report"
    assert main(["backtest", str(path), "--report", str(out), "--challenger", str(challenger)]) == 0
    capsys.readouterr()
    page = (out / "index.html").read_text()
    parser = _Sections()
    parser.feed(page)
    # Limit decisions are shown when the pack proposed any: the default pack's credit
    # policy reduces the limits of customers sliding into default here.
    assert set(parser.sections) == {anchor for anchor, _ in (*SECTIONS, LIMIT_SECTION)}
    limits = parser.sections["limit-decisions"]["text"]
    assert "defaulters with a proposed reduction" in limits
    for anchor in ("roc", "pr", "calibration", "lead-time", "warnings-per-month", "rules"):
        images = parser.sections[anchor]["img"]
        assert images and all(src.startswith("data:image/png;base64,") for src in images), anchor
        png = base64.b64decode(images[0].split(",", 1)[1])
        assert png.startswith(b"\x89PNG"), anchor
        assert (out / f"{anchor}.png").read_bytes() == png
    rules_text = parser.sections["rules"]["text"]
    assert "overdue_30_days" in rules_text and "overdue_90_days" in rules_text
    migration = parser.sections["tier-migration"]["text"]
    assert "from \\ to" in migration
    duel = parser.sections["challenger"]["text"]
    assert str(challenger) in duel and "difference" in duel
    # The challenger has no 30-day rule: its column is empty for that row.
    assert "overdue_30_days" in duel


class _Sections(HTMLParser):
    """Collects, per ``<section id>``, the text and the image sources inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, dict[str, Any]] = {}
        self.current: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "section":
            self.current = values.get("id") or ""
            self.sections[self.current] = {"img": [], "text": ""}
        elif tag == "img" and self.current is not None:
            self.sections[self.current]["img"].append(values.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self.current = None

    def handle_data(self, data: str) -> None:
        if self.current is not None:
            self.sections[self.current]["text"] += data


def test_the_pack_s_operating_points_are_calibrated_from_the_scores() -> None:
    rules, errors = load_files(
        {
            "p.yaml": """
groups:
  - name: scores
    rules:
      - name: likely_default
        expr: risk_score >= 0.5
        level: high
        labels: {operating_point: "precision 0.75"}
      - name: plain
        expr: risk_score >= 0.9
        level: medium
"""
        },
        "t",
    )
    assert errors == [] and rules is not None
    scores = [0.9, 0.8, 0.7, 0.6, 0.3, 0.2, 0.1, 0.05]
    labels = [True, True, False, True, False, True, False, False]
    got = calibrate(rules, scores, labels, {"high": ("precision", 0.75), "medium": ("share", 0.5)})
    (rule,) = got["rules"]  # only the labelled rule
    # 0.6 flags four customers, three adverse: the lowest threshold with precision 0.75
    assert (rule["rule"], rule["current"], rule["threshold"]) == ("likely_default", 0.5, 0.6)
    assert (rule["precision"], rule["recall"], rule["share"]) == (0.75, 0.75, 0.5)
    assert got["tiers"]["medium"]["threshold"] == 0.6  # half of the portfolio
    assert got["tier_thresholds"] == {"default": {"medium": 0.6, "high": 0.6}}


@pytest.mark.parametrize("text", ["precision", "recall 0.5", "share 0", "precision 1.5", "x y"])
def test_an_operating_point_that_is_not_a_target_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_target(text)


def test_the_budget_counts_the_watch_list_once_and_each_member_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "watch.yaml").write_text(
        """
groups:
  - name: watch
    rules:
      - name: near_limit
        expr: credit_utilisation >= 0.9
        level: low
        labels: {group: watch}
      - name: slightly_late
        expr: days_past_due >= 10
        level: low
        labels: {group: watch}
"""
    )
    events = []
    for cid, adverse in (("a", True), ("b", False)):
        events.append(_profile(cid))
        outcome = "default" if adverse else "current"
        events.append(_event("outcome", f"{cid}-o", cid, 80, outcome=outcome))
    # a: at the limit on day 1, its invoice 10 days late on day 20: one watch-list
    # warning that the second rule joins.
    events.append(
        _event(
            "invoice",
            "a-i",
            "a",
            1,
            invoice_id="i1",
            amount=950.0,
            currency="EUR",
            due_at="2026-01-11T00:00:00Z",
        )
    )
    path = _write(tmp_path / "events.jsonl.gz", events)
    assert main(["backtest", str(path), "--rules", str(rules), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    budget = report["rules"]
    assert budget["watch"]["firings"] == 1 and budget["watch"]["customers"] == 1
    for member in ("watch/near_limit", "watch/slightly_late"):
        assert budget[member]["firings"] == 1 and budget[member]["precision"] == 1.0
    assert (
        budget["watch/near_limit"]["median_lead_days"]
        > budget["watch/slightly_late"]["median_lead_days"]
    )
    # The members are not warnings of their own: the watch list is the only warning.
    assert report["warnings_per_1000_customers_per_month"] == pytest.approx(
        budget["watch"]["per_1000_per_month"]
    )
