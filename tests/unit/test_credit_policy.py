"""Credit policy in both directions: assessment, limit policy, earned increases, reviews."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from risk_factory import DAY, at, customer, invoice, parse, payment, ts, utilisation_context

from stream_risk.core import Context, CustomerState, advance, step
from stream_risk.core.assessment import grade_for, limit_for, points_of, rating_score
from stream_risk.core.creditpolicy import (
    Band,
    CreditPolicy,
    Factor,
    Grade,
    LimitRule,
    Ratings,
    policy_of,
)
from stream_risk.core.ruleset import default_rules, load_files
from stream_risk.core.state import decode, encode
from stream_risk.replay import BadLine, Replayer
from stream_risk.schemas.outputs import CreditAction

INCREASES = {"increase_credit_limit", "extend_terms"}


def default_policy() -> CreditPolicy:
    credit = policy_of(default_rules())
    assert credit is not None and credit.assessment is not None
    return credit


def credit_report(
    days: float, *, cid: str = "c1", rid: str = "r1", **fields: Any
) -> dict[str, Any]:
    return {
        "type": "credit_report",
        "event_id": f"{cid}:report:{rid}:{days}",
        "customer_id": cid,
        "occurred_at": at(days),
        "report_id": rid,
        "source": "bureau",
        **fields,
    }


class Drive:
    """The in-process driver over any number of customers, keeping every output."""

    def __init__(self, ctx: Context | None = None) -> None:
        self.actions: list[dict[str, Any]] = []
        self.warnings: list[dict[str, Any]] = []
        self.bad: list[BadLine] = []
        self.replayer = Replayer(
            ctx or Context(population=None),
            self.warnings.append,
            on_credit_action=self.actions.append,
        )

    def events(self, events: list[dict[str, Any]]) -> Drive:
        for n, raw in enumerate(sorted(events, key=lambda e: e["occurred_at"])):
            self.replayer.apply(parse(raw), "test", n, self.bad.append)
        assert self.bad == []
        return self

    def until(self, days: float) -> Drive:
        self.replayer.advance_to(ts(days))
        return self

    def of(self, cid: str = "c1", source: str | None = None) -> list[dict[str, Any]]:
        return [
            a
            for a in self.actions
            if a["customer_id"] == cid and (source is None or a["source"] == source)
        ]


def kinds(actions: list[dict[str, Any]]) -> set[str]:
    return {r["kind"] for a in actions for r in a["recommendations"]}


# ------------------------------------------------------------------ points table


RATINGS = Ratings({"AAA": 1.0, "BBB": 0.65, "D": 0.0}, (0.0, 100.0))


@pytest.mark.parametrize(
    ("report", "customer_rating", "expected"),
    [
        ({"score": 0.9, "rating": "D", "source": "b"}, "AAA", 0.9),  # the report's score wins
        ({"score": None, "rating": "bbb", "source": "b"}, "AAA", 0.65),  # then its rating
        (None, "AAA", 1.0),
        (None, 25, 0.25),
        (None, 250, 1.0),  # clipped to the scale
        (None, "unrated", None),
        (None, None, None),
    ],
)
def test_rating_score_table(report: Any, customer_rating: Any, expected: float | None) -> None:
    assert rating_score(report, customer_rating, RATINGS)[0] == expected


LIQUIDITY = Factor("current_ratio", (Band(12, 2.0), Band(5, 1.0), Band(0)), missing=4)
LEVERAGE = Factor("debt_ratio", (Band(12, at_most=0.3), Band(3, at_most=0.7), Band(-5)))
RECORD = Factor("avg_days_late_90d", (Band(10, at_most=5), Band(-15)), missing=2, after=90 * DAY)


@pytest.mark.parametrize(
    ("values", "known_days", "expected"),
    [
        ({"current_ratio": 2.5, "debt_ratio": 0.2, "avg_days_late_90d": 0.0}, 200, 12 + 12 + 10),
        ({"current_ratio": 2.0, "debt_ratio": 0.3, "avg_days_late_90d": 5.0}, 200, 12 + 12 + 10),
        ({"current_ratio": 1.99, "debt_ratio": 0.31, "avg_days_late_90d": 6.0}, 200, 5 + 3 - 15),
        ({"current_ratio": 0.5, "debt_ratio": 0.9, "avg_days_late_90d": 40.0}, 200, 0 - 5 - 15),
        # Unknown values score the factor's missing points (0 unless given).
        ({}, 200, 4 + 0 + 2),
        ({"current_ratio": float("nan"), "debt_ratio": True}, 200, 4 + 0 + 2),
        # Behaviour is not scored before the customer has the history.
        ({"current_ratio": 2.5, "debt_ratio": 0.2, "avg_days_late_90d": 40.0}, 30, 12 + 12 + 2),
    ],
)
def test_points_table(values: dict[str, Any], known_days: float, expected: float) -> None:
    total, reasons = points_of((LIQUIDITY, LEVERAGE, RECORD), values, known_days * DAY)
    assert total == expected
    assert [r["factor"] for r in reasons] == ["current_ratio", "debt_ratio", "avg_days_late_90d"]
    assert sum(r["points"] for r in reasons) == expected
    assert all(r["text"] for r in reasons)


@pytest.mark.parametrize(
    ("values", "grade", "points_at_least"),
    [
        # Strong financials, a good rating and a clean report: the best grade.
        (
            {
                "rating_score": 0.9,
                "current_ratio": 2.2,
                "debt_ratio": 0.25,
                "interest_coverage": 8.0,
                "net_margin": 0.12,
                "cash_flow_to_debt": 0.5,
                "legal_events_12m": 0,
                "insolvency_flag": 0.0,
                "external_arrears": 0.0,
            },
            "A",
            80,
        ),
        # Nothing known: the missing points only.
        ({}, "C", 40),
        # Insolvency outweighs everything else.
        (
            {
                "rating_score": 0.9,
                "current_ratio": 2.2,
                "debt_ratio": 0.25,
                "insolvency_flag": 1.0,
                "legal_events_12m": 4,
            },
            "E",
            -1000,
        ),
    ],
)
def test_default_pack_grades(values: dict[str, Any], grade: str, points_at_least: float) -> None:
    method = default_policy().assessment
    assert method is not None
    total, _ = points_of(method.factors, values, known_for=0.0)
    assert total >= points_at_least
    assert grade_for(method.grades, total).name == grade


# ------------------------------------------------------------------ limit policy


RULE = LimitRule(revenue_share=0.1, net_worth_share=0.3, sales_cover_days=60, max=100_000)


@pytest.mark.parametrize(
    ("rule", "values", "limit", "chosen"),
    [
        (RULE, {"revenue": 500_000, "net_worth": 400_000}, 50_000, "revenue"),
        (RULE, {"revenue": 500_000, "net_worth": 100_000}, 30_000, "net_worth"),
        (RULE, {"revenue": 5_000_000, "net_worth": 4_000_000}, 100_000, "revenue"),  # capped
        (RULE, {"order_amount_90d": 9_000.0}, 6_000, "sales"),
        (RULE, {"revenue": 500_000, "order_amount_90d": 9_000.0}, 6_000, "sales"),
        (RULE, {"net_worth": -50_000}, 0, "net_worth"),  # negative equity: no credit
        (RULE, {"credit_limit": 7_000.0}, 7_000, "current"),  # nothing to size it: kept
        (RULE, {"credit_limit": 700_000.0}, 100_000, "current"),  # ... but capped
        (LimitRule(fallback=2_500), {"credit_limit": 7_000.0}, 2_500, "fallback"),
        (LimitRule(revenue_share=0.1), {"revenue": 123_456}, 12_300, "revenue"),  # rounded
    ],
)
def test_limit_policy_table(
    rule: LimitRule, values: dict[str, Any], limit: float, chosen: str
) -> None:
    got, basis = limit_for(Grade("B", 60, 45, rule), values, rounding=100)
    assert got == limit
    assert basis["chosen"] == chosen
    assert basis["text"].endswith(f"{limit:,.0f}")


# ------------------------------------------------------------------ rule pack


def test_the_default_pack_has_a_credit_policy_with_every_part() -> None:
    credit = default_policy()
    assert credit.review is not None and credit.review.every == 90 * DAY
    assert credit.increases is not None and credit.increases.tiers == ("low",)
    assert {a["kind"] for a in credit.increases.actions} == INCREASES
    tiers = default_rules().tiers.actions
    assert set(tiers) == {"low", "medium", "high"}


def _pack(credit_policy: str, extra: dict[str, str] | None = None) -> list[str]:
    files = {
        "rules.yaml": "groups: [{name: g, rules: [{name: r, expr: 'days_past_due > 1', "
        "level: low}]}]",
        "credit.yaml": credit_policy,
        **(extra or {}),
    }
    rules, errors = load_files(files)
    assert (rules is None) == bool(errors)
    return [str(e) for e in errors]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("credit_policy: {review: {every: soon}}", "review.every must be a duration"),
        ("credit_policy: {review: {tolerance: 0.1}}", "review.every is required"),
        ("credit_policy: {bogus: 1}", "unknown key 'bogus'"),
        (
            "credit_policy: {assessment: {factors: [{name: curent_ratio, bands: [{points: 1}]}], "
            "grades: [{grade: A, terms_days: 30, limit: {}}]}}",
            "did you mean 'current_ratio'?",
        ),
        (
            "credit_policy: {assessment: {factors: [{name: current_ratio, bands: [{points: 1}, "
            "{at_least: 2, points: 5}]}], grades: [{grade: A, terms_days: 30, limit: {}}]}}",
            "put it last",
        ),
        (
            "credit_policy: {assessment: {factors: [{name: current_ratio, "
            "bands: [{at_least: 1, at_most: 2, points: 1}]}], "
            "grades: [{grade: A, terms_days: 30, limit: {}}]}}",
            "not both",
        ),
        (
            "credit_policy: {assessment: {factors: [{name: current_ratio, bands: [{points: 1}]}], "
            "grades: [{grade: A, min_points: 10, terms_days: 30, limit: {}}, "
            "{grade: B, min_points: 20, terms_days: 30, limit: {}}, "
            "{grade: C, terms_days: 0, limit: {}}]}}",
            "min_points must fall",
        ),
        (
            "credit_policy: {assessment: {factors: [{name: current_ratio, bands: [{points: 1}]}], "
            "grades: [{grade: A, terms_days: 30, limit: {revenue_share: -1}}]}}",
            "limit.revenue_share must be a number in 0..10",
        ),
        (
            "credit_policy: {increases: {actions: [{kind: reduce_credit_limit, to_share: 0.5}]}}",
            "increases.actions may only be increase_credit_limit, extend_terms",
        ),
        (
            "credit_policy: {increases: {tiers: [gold], actions: [extend_terms]}}",
            "increases.tiers must be among",
        ),
        (
            "credit_policy: {increases: {actions: [{kind: increase_credit_limit, by_share: 0}]}}",
            "increase_credit_limit by_share must be positive",
        ),
        (
            "credit_policy: {assessment: {factors: [{name: current_ratio, bands: [{points: 1}]}], "
            "grades: [{grade: A, terms_days: 30, limit: {}}]}, review: {every: 30d}}",
            "already defined in credit.yaml",
        ),
    ],
)
def test_credit_policy_errors_are_located_and_clear(text: str, message: str) -> None:
    extra = (
        {"more.yaml": "credit_policy: {review: {every: 90d}}"}
        if "already defined" in message
        else None
    )
    errors = _pack(text, extra)
    assert any(message in e for e in errors), errors
    assert all(":" in e.split(" ")[0] for e in errors)  # file:line:col first


def test_a_review_needs_an_assessment() -> None:
    errors = _pack("credit_policy: {review: {every: 90d}}")
    assert any("review needs credit_policy.assessment" in e for e in errors)


def test_a_pack_without_credit_policy_makes_no_assessments() -> None:
    rules, errors = load_files(
        {"r.yaml": "groups: [{name: g, rules: [{name: r, expr: 'days_past_due > 1', level: low}]}]"}
    )
    assert rules is not None and not errors
    assert policy_of(rules) is None
    d = Drive(Context(rules=rules, population=None)).events([customer(0, 5_000.0)]).until(400)
    assert d.actions == []
    assert d.replayer.states["c1"].next_wakeup is None


# ------------------------------------------------------------------ assessment


FINANCIALS = {
    "current_ratio": 2.1,
    "debt_ratio": 0.25,
    "ebit": 900_000,
    "interest_expense": 100_000,
    "net_income": 150_000,
    "revenue": 1_200_000,
    "operating_cash_flow": 200_000,
    "total_debt": 400_000,
    "equity": 800_000,
}


def test_onboarding_assessment_sets_limit_and_terms_with_reasons() -> None:
    d = Drive().events([customer(0, 5_000.0, rating="AA", financials=FINANCIALS)])
    [action] = d.of(source="assessment")
    CreditAction.model_validate(action)
    assert action["status"] == "proposed" and action["requires_approval"] is True
    limit, terms = action["recommendations"]
    assert limit["kind"] == "set_credit_limit" and terms["kind"] == "set_terms"
    # Grade A: the smallest of 10% of revenue and 30% of net worth, capped at 1M.
    assert limit == {"kind": "set_credit_limit", "to": 120_000.0, "from": 5_000.0, "grade": "A"}
    assert terms == {"kind": "set_terms", "days": 60, "from": 30}
    evidence = action["evidence"]
    assert evidence["assessment"] == "initial" and evidence["grade"] == "A"
    by_factor = {r["factor"]: r for r in evidence["factors"]}
    assert by_factor["interest_coverage"]["value"] == 9.0
    assert by_factor["net_margin"]["value"] == pytest.approx(0.125)
    assert by_factor["cash_flow_to_debt"]["value"] == 0.5
    assert by_factor["rating_score"]["points"] == 25
    assert evidence["limit_basis"]["chosen"] == "revenue"
    assert evidence["points"] == sum(r["points"] for r in evidence["factors"])
    profile = d.replayer.states["c1"]
    assert profile.credit_review is not None and profile.credit_review["grade"] == "A"


def test_a_credit_report_with_negative_records_reassesses_and_lowers_the_grade() -> None:
    d = Drive().events(
        [
            customer(0, 5_000.0, rating="AA", financials=FINANCIALS),
            credit_report(
                10,
                score=420.0,
                score_min=300.0,
                score_max=850.0,
                lawsuits=2,
                tax_arrears=1,
                arrears_elsewhere=12_000.0,
                currency="EUR",
                report_date=at(9),
            ),
        ]
    )
    first, second = d.of(source="assessment")
    assert second["evidence"]["assessment"] == "reassessment"
    by_factor = {r["factor"]: r for r in second["evidence"]["factors"]}
    assert (
        by_factor["legal_events_12m"]["value"] == 3 and by_factor["legal_events_12m"]["points"] < 0
    )
    assert by_factor["external_arrears"]["points"] < 0
    assert by_factor["rating_score"]["value"] == pytest.approx(0.2182)
    assert second["evidence"]["points"] < first["evidence"]["points"]
    assert second["recommendations"][0]["to"] < first["recommendations"][0]["to"]
    state = d.replayer.states["c1"]
    assert state.credit_report is not None and state.credit_report["lawsuits"] == 2


def test_the_same_profile_resent_does_not_reassess() -> None:
    events = [
        customer(0, 5_000.0, rating="AA", financials=FINANCIALS),
        customer(5, 5_000.0, rating="AA", financials=FINANCIALS, eid="again"),
    ]
    assert len(Drive().events(events).of(source="assessment")) == 1


def test_credit_features_and_state_survive_the_codec() -> None:
    d = Drive().events(
        [
            customer(0, 5_000.0, financials=FINANCIALS),
            credit_report(1, rating="BB", insolvency=True),
        ]
    )
    state = d.replayer.states["c1"]
    again = decode(encode(state))
    assert again.credit_report == state.credit_report
    assert again.credit_review == state.credit_review
    from stream_risk.core.features import compute

    features = compute(again, ts(1))
    assert features["insolvency_flag"] == 1.0 and features["legal_events_12m"] == 1
    assert features["external_rating"] == "BB"
    assert features["assessment_grade"] == "E"
    assert features["net_worth"] == 800_000.0


def test_an_older_state_without_credit_fields_decodes() -> None:
    raw = encode(CustomerState("old"))
    assert b"credit_" not in raw
    assert decode(raw).credit_review is None


# ------------------------------------------------------------------ earned increases


def _trading(
    cid: str, limit: float, amount: float, days_to_pay: float, months: int
) -> list[dict[str, Any]]:
    """A customer invoiced every 30 days (due in 30) who pays ``days_to_pay`` after each invoice."""
    events = [customer(0, limit, cid=cid, rating="A")]
    for n in range(months):
        day = 1 + 30 * n
        events.append(invoice(day, f"i{n}", amount, day + 30, cid=cid))
        events.append(payment(day + days_to_pay, f"p{n}", amount, invoice_id=f"i{n}", cid=cid))
    return events


def test_a_steady_low_risk_customer_at_high_utilisation_earns_an_increase_once_per_cooldown() -> (
    None
):
    d = Drive().events(_trading("c1", 10_000.0, 8_500.0, days_to_pay=25, months=12))
    earned = d.of(source="tier_policy")
    assert earned, "an increase is earned"
    first = earned[0]
    CreditAction.model_validate(first)
    # Not before the on-time period (180 days) has passed.
    assert first["occurred_at"] >= at(180)
    assert first["recommendations"][0] == {
        "kind": "increase_credit_limit",
        "by_share": 0.25,
        "from": 10_000.0,
        "to": 12_500.0,
    }
    assert first["tier"] == "low"
    assert first["evidence"]["credit_utilisation"] == 0.85
    # Longer terms come too (the quarterly review proposed them first here).
    assert any(
        r == {"kind": "extend_terms", "days": 45, "from": 30}
        for a in d.of()
        for r in a["recommendations"]
    )
    # Never twice within the 90-day cooldown, for the limit and for the terms.
    for kind in INCREASES:
        times = sorted(
            ts_of(a["occurred_at"])
            for a in d.of()
            if any(r["kind"] == kind for r in a["recommendations"])
        )
        assert len(times) >= 2
        assert all(b - a >= 90 * DAY for a, b in itertools.pairwise(times)), kind


def ts_of(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


def test_a_slow_payer_never_gets_an_increase() -> None:
    # Pays every invoice 20 days after its due date, at the same high utilisation.
    d = Drive().events(_trading("c1", 10_000.0, 8_500.0, days_to_pay=50, months=12)).until(400)
    assert d.of(source="tier_policy") == []
    later = [
        a
        for a in d.of()
        if not (a["source"] == "assessment" and a["evidence"]["assessment"] == "initial")
    ]
    assert later, "the slow payer is still reviewed"
    assert not kinds(later) & INCREASES
    for review in d.of(source="review"):
        assert review["evidence"]["decision"] != "raise"


def test_an_active_medium_warning_blocks_the_increase() -> None:
    # 95% utilisation fires a medium utilisation warning all along.
    d = Drive(utilisation_context(population=None)).events(
        _trading("c1", 10_000.0, 9_500.0, days_to_pay=25, months=12)
    )
    assert any(w["rule"] == "high_credit_utilisation" for w in d.warnings)
    assert d.of(source="tier_policy") == []


# ------------------------------------------------------------------ periodic review


def test_reviews_fire_on_event_time_for_quiet_customers() -> None:
    d = Drive().events(
        [
            customer(0, 5_000.0, cid="quiet", rating="BBB"),
            # Another customer's events move event time on; the quiet one sends nothing.
            *[customer(day, 1_000.0, cid="busy", eid=f"busy-{day}") for day in (50, 100, 200)],
        ]
    )
    reviews = d.of("quiet", "review")
    assert [r["occurred_at"] for r in reviews] == [at(90), at(180)]
    first = reviews[0]
    CreditAction.model_validate(first)
    assert first["evidence"]["decision"] == "keep"
    assert first["recommendations"] == [
        {"kind": "keep", "credit_limit": 5_000.0, "payment_terms_days": 30}
    ]
    assert first["evidence"]["next_review"] == at(180)
    assert d.replayer.states["quiet"].next_wakeup == ts(270)


def test_a_review_lowers_the_limit_of_a_deteriorated_customer() -> None:
    state = CustomerState("c1")
    ctx = Context(population=None)
    state, _ = step(state, parse(customer(0, 200_000.0, financials=FINANCIALS, rating="BBB")), ctx)
    state, _ = step(
        state, parse(credit_report(30, insolvency=True, report_date=at(30), lawsuits=5)), ctx
    )
    # The report re-assessed at once; the review at day 120 confirms with a decision.
    state, out = advance(state, ts(120), ctx)
    [review] = out.credit_actions
    assert review["source"] == "review" and review["evidence"]["decision"] == "lower"
    assert review["recommendations"] == [
        {"kind": "reduce_credit_limit", "from": 200_000.0, "to": 0.0}
    ]
    assert review["evidence"]["grade"] == "E"


def test_a_review_raises_the_limit_of_a_steady_customer_within_its_cap() -> None:
    """Reviews decide in both directions: a steady payer whose assessment supports far
    more than its limit gets a raise once on time long enough, capped per review."""
    events = _trading("c1", 10_000.0, 8_500.0, days_to_pay=25, months=12)
    events[0] = customer(0, 10_000.0, cid="c1", rating="A", financials=FINANCIALS)
    reviews = Drive().events(events).until(400).of(source="review")
    decisions = [(r["occurred_at"], r["evidence"]["decision"]) for r in reviews]
    assert decisions[0] == (at(90), "keep")  # on time for 90 days only, 180 needed
    assert "180 needed" in reviews[0]["evidence"]["notes"][0]
    assert decisions[1] == (at(180), "raise")
    raise_ = reviews[1]
    CreditAction.model_validate(raise_)
    # The assessment supports 120,000; one review raises by at most half the limit.
    assert raise_["recommendations"] == [
        {"kind": "increase_credit_limit", "from": 10_000.0, "to": 15_000.0}
    ]
    assert raise_["evidence"]["recommended"]["credit_limit"] == 120_000.0
    assert raise_["evidence"]["notes"] == ["raise limited to 50% of the current limit"]


def test_a_review_extends_the_terms_of_a_steady_customer() -> None:
    d = Drive().events(_trading("c1", 10_000.0, 8_500.0, days_to_pay=25, months=12)).until(400)
    reviews = d.of(source="review")
    assert reviews[0]["evidence"]["decision"] == "keep"
    assert reviews[1]["evidence"]["decision"] == "terms_change"
    assert reviews[1]["recommendations"] == [{"kind": "extend_terms", "days": 45, "from": 30}]


def test_review_ids_are_deterministic() -> None:
    def reviews() -> list[str]:
        d = Drive().events([customer(0, 5_000.0, rating="BBB")])
        d.events([customer(200, 1.0, cid="other")])
        return [a["action_id"] for a in d.of(source="review")]

    assert reviews() == reviews() and len(reviews()) == 2


# ------------------------------------------------------------------ credit features


@pytest.mark.parametrize(
    ("financials", "currency", "expected"),
    [
        (
            FINANCIALS,
            "EUR",
            {
                "interest_coverage": 9.0,
                "net_margin": 0.125,
                "cash_flow_to_debt": 0.5,
                "revenue": 1_200_000.0,
                "net_worth": 800_000.0,
            },
        ),
        # Ratios given directly win over their parts.
        (
            {"interest_coverage": 2.5, "net_margin": -0.1, "cash_flow_to_debt": 0.05},
            "EUR",
            {"interest_coverage": 2.5, "net_margin": -0.1, "cash_flow_to_debt": 0.05},
        ),
        # Amounts convert into the base currency; net worth from assets and liabilities.
        (
            {"revenue": 1_000.0, "total_assets": 500.0, "total_liabilities": 800.0},
            "USD",
            {"revenue": 900.0, "net_worth": -270.0, "net_margin": None},
        ),
        # Nothing usable: nothing made up (zero denominators, strings, booleans).
        (
            {"ebit": 5.0, "interest_expense": 0, "revenue": "lots", "equity": True},
            "EUR",
            {"interest_coverage": None, "revenue": None, "net_worth": None},
        ),
        (None, "EUR", {"interest_coverage": None, "revenue": None, "cash_flow_to_debt": None}),
    ],
)
def test_financial_ratio_features(
    financials: dict[str, Any] | None, currency: str, expected: dict[str, Any]
) -> None:
    from stream_risk.core.features import compute

    ctx = Context(population=None, fx_rates={"USD": 0.9})
    state, _ = step(
        CustomerState("c1"),
        parse(customer(0, 1_000.0, currency=currency, financials=financials)),
        ctx,
    )
    features = compute(state, ts(0))
    for name, value in expected.items():
        assert features[name] == (pytest.approx(value) if value is not None else None), name


def test_report_features_age_and_a_later_report_wins() -> None:
    from stream_risk.core.features import compute

    ctx = Context(population=None)
    state = CustomerState("c1")
    for raw in (
        customer(0, 1_000.0),
        credit_report(10, rid="new", report_date=at(9), lawsuits=2, tax_arrears=1),
        # Arrives later but was written earlier: the held report stays.
        credit_report(12, rid="old", report_date=at(1), lawsuits=9),
    ):
        state, _ = step(state, parse(raw), ctx)
    features = compute(state, ts(12))
    assert features["legal_events_12m"] == 3
    assert features["credit_report_age_days"] == pytest.approx(3.0)
    assert features["insolvency_flag"] == 0.0
    assert features["external_score"] is None and features["external_arrears"] is None
    # The negative records stop counting a year after the report's date.
    assert compute(state, ts(9 + 366))["legal_events_12m"] == 3
    assert compute(state, ts(9 + 367))["legal_events_12m"] is None


def test_no_assessment_before_a_profile_or_a_report() -> None:
    d = Drive().events([invoice(0, "i1", 100.0, 30), payment(10, "p1", 100.0)]).until(200)
    assert d.of() == []
    d.events([customer(200, 2_000.0, rating="BBB")])
    [action] = d.of(source="assessment")
    assert action["recommendations"][0]["from"] == 2_000.0
