"""The learning loop in the core: detector features, training examples, the scorer."""

from __future__ import annotations

import math
import random

import pytest
from risk_factory import DAY, at, customer, follow, order, outcome, parse, statement, ts

from stream_risk.core import Context, CustomerState, profile_of, step
from stream_risk.core.scoring import Calibrator, RiskScorer, risk_score, tier_of
from stream_risk.core.trainer import MODEL_FEATURES, Trainer


def apply(events: list[dict], ctx: Context, state: CustomerState | None = None):
    state = state or CustomerState("c1")
    examples = []
    for raw in events:
        state, out = step(state, parse(raw), ctx)
        examples += out.training_examples
    return state, examples


def monthly_statements(months: int, dpd_from: int | None = None) -> list[dict]:
    return [
        statement(30.0 * m + 1, 500.0, dpd=0 if dpd_from is None or m < dpd_from else 60)
        for m in range(months)
    ]


def test_an_outcome_labels_the_features_of_the_horizon_before_it() -> None:
    ctx = Context(population=None)
    events = [customer(0, 1000.0), *monthly_statements(6, dpd_from=5)]
    # Last statement on day 151 says 60 days past due. Snapshots are taken at the
    # weekly period boundaries (days 150 and 157 after T0): the outcome on day 188
    # is labelled with the inputs of day 157, a horizon and more before it.
    _, examples = apply([*events, outcome(188, "default")], ctx)
    assert len(examples) == 1
    example = examples[0]
    assert example["adverse"] is True and example["outcome"] == "default"
    assert example["features"]["statement_days_past_due"] == 60
    assert set(example["features"]) == set(MODEL_FEATURES)
    # A horizon before day 186 is before the boundary of day 157: that of day 150 is used.
    _, early = apply([*events, outcome(186, "current")], Context(population=None))
    assert early[0]["adverse"] is False
    assert early[0]["features"]["statement_days_past_due"] == 0


def test_no_example_for_a_customer_unknown_that_long_before_the_outcome() -> None:
    _, examples = apply([customer(0), outcome(10, "default")], Context(population=None))
    assert examples == []


def test_snapshots_stay_bounded_for_a_busy_customer() -> None:
    ctx = Context(population=None)
    events = [customer(0, 5000.0)] + [order(d * 0.5, f"o{d}", 10.0) for d in range(1, 800)]
    state, _ = apply(events, ctx)
    # One per week over the allowed lateness and the horizon, plus the one that is
    # just old enough.
    span = ctx.allowed_lateness + ctx.outcome_horizon
    assert len(state.snapshots) <= math.ceil(span / ctx.snapshot_every) + 2


def test_an_outcome_within_the_allowed_lateness_labels_its_example() -> None:
    ctx = Context(population=None)
    daily = [statement(d, 500.0, eid=f"s{d}") for d in range(1, 71)]
    # Six and a half days behind the latest statement: late, but applied.
    state, examples = apply([customer(0), *daily, outcome(63.5, "default")], ctx)
    assert state.last_outcome == "default"
    assert len(examples) == 1
    assert examples[0]["as_of"] <= at(63.5 - ctx.outcome_horizon / DAY)


def test_an_outcome_behind_a_clock_moved_by_review_wake_ups_labels_its_example() -> None:
    """Timers move a customer's clock on the partition's newer events (here its quarterly
    reviews, up to day 291); its own statements and outcome come later with older event
    times and apply, so the outcome still finds the inputs of a horizon before it."""
    ctx = Context(population=None)
    state, _ = apply([customer(0)], ctx)
    assert state.next_wakeup == ts(90)  # the first periodic review
    follow(state, ts(291), ctx)
    assert state.clock == ts(291)
    history = [statement(30.0 * m + 1, 800.0, dpd=30 * m, eid=f"s{m}") for m in range(4)]
    state, examples = apply([*history, outcome(125, "default")], ctx, state)
    assert state.updated_at == ts(125) and state.clock == ts(291)
    assert len(examples) == 1
    example = examples[0]
    assert example["adverse"] is True
    assert example["as_of"] <= at(125 - ctx.outcome_horizon / DAY)


def test_snapshots_stay_bounded_for_a_quiet_customer_woken_for_years() -> None:
    ctx = Context(population=None)
    state, _ = apply([customer(0), statement(1, 500.0)], ctx)
    follow(state, ts(3650), ctx)
    period = ctx.snapshot_every
    lateness_and_horizon = math.ceil((ctx.allowed_lateness + ctx.outcome_horizon) / period)
    bound = lateness_and_horizon + math.ceil(ctx.outcome_horizon / period) + 3
    assert len(state.snapshots) <= bound
    assert state.snapshots[-1][0] == ts(3650)
    # An outcome that comes in with an event time soon after the customer's latest
    # event still finds the inputs of the period boundary right after that event (day 3).
    _, examples = apply([outcome(40, "current")], ctx, state)
    assert len(examples) == 1
    assert examples[0]["as_of"] == at(3)
    assert examples[0]["features"]["statement_balance"] == 500.0


def test_order_detectors_score_before_learning_and_show_as_features() -> None:
    ctx = Context(population=None)
    usual = [order(7.0 * w, f"o{w}", 100.0 + (w % 3)) for w in range(1, 9)]
    state, _ = apply([customer(0, 10_000.0), *usual], ctx)
    quiet = profile_of(state)["features"]
    assert quiet["order_amount_zscore"] == pytest.approx(0.0, abs=1.0)
    state, _ = apply([order(57.5, "big", 5_000.0)], ctx, state)
    features = profile_of(state)["features"]
    assert features["order_amount_zscore"] > 6
    # Half a day after a weekly rhythm: orders come much faster than usual.
    assert features["order_frequency_zscore"] > 3
    # The spike is a confirmed anomaly: it does not join the history.
    assert 5_000.0 not in state.detectors["amount"]["values"]


def test_days_late_drift_flags_a_customer_who_starts_paying_late() -> None:
    ctx = Context(population=None)
    state, _ = apply([customer(0), *monthly_statements(8)], ctx)
    assert profile_of(state)["features"]["days_late_drift"] == 0.0
    state, _ = apply([statement(30.0 * m + 1, 500.0, dpd=90) for m in range(8, 10)], ctx, state)
    assert profile_of(state)["features"]["days_late_drift"] == 1.0


def test_behaviour_anomaly_appears_after_the_segment_warm_up() -> None:
    ctx = Context()
    assert ctx.population is not None
    ctx.population.warm_up = 20
    for i in range(25):
        apply([customer(0, 1000.0, cid=f"c{i}", eid=f"e{i}")], ctx, CustomerState(f"c{i}"))
    state, _ = apply([customer(0, 1000.0, cid="late")], ctx, CustomerState("late"))
    score = profile_of(state)["features"]["behaviour_anomaly"]
    assert score is not None and 0.0 <= score <= 1.0


# ------------------------------------------------------------------ the scorer


@pytest.mark.parametrize(
    ("features", "tier"),
    [
        ({}, "low"),
        ({"days_past_due": 60}, "medium"),
        ({"days_past_due": 120}, "high"),
        ({"days_past_due": 60, "bounced_payments_90d": 2}, "high"),
        ({"credit_utilisation": 1.5, "delinquent_streak": 6}, "high"),
    ],
)
def test_scorecard_tiers(features: dict, tier: str) -> None:
    assert tier_of(risk_score(features)) == tier


def test_tiers_use_the_thresholds_of_the_customer_segment() -> None:
    scorer = RiskScorer(
        tiers={"default": {"medium": 0.25, "high": 0.5}, "retail": {"medium": 0.1, "high": 0.2}}
    )
    assert scorer.tier(0.3, {"industry": "retail"}) == "high"
    assert scorer.tier(0.3, {"industry": "steel"}) == "medium"
    assert scorer.tier(0.3, None) == "medium"


def _examples(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        dpd = rng.choice([0, 0, 0, 30, 60, 90])
        logit = -2.5 + 0.6 * math.log1p(dpd)  # the model's own input scale
        out.append(
            {
                "event_id": f"{seed}-{i}",
                "features": {"days_past_due": dpd},
                "adverse": rng.random() < 1 / (1 + math.exp(-logit)),
            }
        )
    return out


def test_the_learned_model_takes_over_and_reads_as_a_probability() -> None:
    trainer = Trainer(["days_past_due"], refit_every=500)
    scorer = RiskScorer(prior_outcomes=200)
    for example in _examples(4000, 1):
        snapshot = trainer.learn_one(example)
        if snapshot is not None:
            scorer.load(snapshot)
    assert scorer.version == 8 and scorer.model_weight() > 0.9
    held_out = _examples(4000, 2)
    for dpd in (0, 60, 90):
        group = [e["adverse"] for e in held_out if e["features"]["days_past_due"] == dpd]
        observed = sum(group) / len(group)
        assert scorer.score({"days_past_due": dpd}) == pytest.approx(observed, abs=0.06)
    reasons = scorer.explain({"days_past_due": 90})
    assert reasons and reasons[0]["feature"] == "days_past_due"


def test_a_redelivered_example_is_learned_once() -> None:
    trainer = Trainer(["days_past_due"], refit_every=2)
    example = {"event_id": "x", "features": {"days_past_due": 1}, "adverse": True}
    assert trainer.learn_one(example) is None
    assert trainer.learn_one(dict(example)) is None
    assert trainer.model.seen == 1


def test_trainers_fed_the_same_examples_publish_the_same_snapshots() -> None:
    first, second = Trainer(refit_every=50), Trainer(refit_every=50)
    rng = random.Random(3)
    for i in range(200):
        example = {
            "event_id": str(i),
            "features": {name: rng.random() for name in MODEL_FEATURES},
            "adverse": rng.random() < 0.3,
        }
        assert first.learn_one(example) == second.learn_one(example)


@pytest.mark.parametrize(
    ("scores", "labels", "expect_a_below_one"),
    [
        ([0.9, 0.9, 0.9, 0.1, 0.1, 0.1] * 20, [1, 0, 0, 0, 1, 0] * 20, True),  # overconfident
        ([0.5] * 10, [1] * 10, False),  # one class: identity
    ],
)
def test_platt_calibration(
    scores: list[float], labels: list[int], expect_a_below_one: bool
) -> None:
    calibrator = Calibrator.fit(scores, labels)
    assert (calibrator.a < 1.0) is expect_a_below_one
    if expect_a_below_one:
        assert calibrator.apply(0.9) == pytest.approx(1 / 3, abs=0.02)
        assert calibrator.apply(0.1) == pytest.approx(1 / 3, abs=0.02)


def test_the_profile_score_uses_the_loaded_model() -> None:
    ctx = Context(population=None)
    trainer = Trainer(["statement_days_past_due"], refit_every=100)
    for example in _examples(400, 4):
        renamed = dict(
            example, features={"statement_days_past_due": example["features"]["days_past_due"]}
        )
        snapshot = trainer.learn_one(renamed)
        if snapshot is not None:
            ctx.scorer.load(snapshot)
    # Known for a day: the model never learned from customers that new.
    fresh, _ = apply([customer(0), statement(1, 100.0, dpd=90)], ctx)
    card_fresh, _ = apply([customer(0), statement(1, 100.0, dpd=90)], Context(population=None))
    assert fresh.risk_score == card_fresh.risk_score
    # Known for longer than the outcome horizon: the learned model scores it.
    state, _ = apply([customer(0), statement(40, 100.0, dpd=90)], ctx)
    card_only, _ = apply([customer(0), statement(40, 100.0, dpd=90)], Context(population=None))
    assert state.risk_score != card_only.risk_score
    assert ts(40) - ts(0) == 40 * DAY


def _scorer_learned_at(months_on_book: float) -> RiskScorer:
    """A scorer whose model learned from examples all on the books that long."""
    trainer = Trainer(["days_past_due", "months_on_book"], refit_every=200)
    scorer = RiskScorer()
    for example in _examples(400, 5):
        aged = dict(example, features={**example["features"], "months_on_book": months_on_book})
        snapshot = trainer.learn_one(aged)
        if snapshot is not None:
            scorer.load(snapshot)
    return scorer


def test_the_model_scores_only_customers_as_seasoned_as_its_examples() -> None:
    scorer = _scorer_learned_at(6.0)
    assert scorer.min_months_on_book == 6.0
    young = {"days_past_due": 90, "months_on_book": 1.0}
    a_day_short = {"days_past_due": 90, "months_on_book": 5.97}
    old = {"days_past_due": 90, "months_on_book": 6.5}
    assert scorer.score(young) == risk_score(young)
    assert scorer.score(a_day_short) == risk_score(a_day_short)
    assert scorer.score(old) != risk_score(old)


def test_the_model_scores_customers_in_the_same_completed_month_as_its_examples() -> None:
    # Examples are taken a horizon before the outcome, which need not fall on a month
    # boundary: a customer scored on the day of its sixth statement has six completed
    # months on book, as the examples taken a few days later had.
    scorer = _scorer_learned_at(6.03)
    on_statement_day = {"days_past_due": 60, "months_on_book": 6.0}
    assert scorer.score_and_weight(on_statement_day)[1] > 0.0
    assert scorer.score(on_statement_day) != risk_score(on_statement_day)
