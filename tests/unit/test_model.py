"""The reservoir-refitted logistic risk model."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from stream_risk.backtest import roc_auc
from stream_risk.core.model import RiskModel


def _portfolio(n: int, seed: int) -> list[tuple[dict[str, float | None], bool]]:
    """Synthetic customers whose default odds rise with days past due and utilisation."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        dpd = rng.choice([0, 0, 0, 30, 60, 90])
        utilisation = rng.random() * 1.2
        noise = rng.gauss(0, 1)
        logit = -2.0 + 0.03 * dpd + 1.5 * utilisation + noise
        x: dict[str, float | None] = {
            "days_past_due": dpd,
            "credit_utilisation": utilisation if rng.random() > 0.1 else None,
            "order_count_30d": rng.randint(0, 5),  # unrelated to the outcome
        }
        out.append((x, logit > 0))
    return out


FEATURES = ["days_past_due", "credit_utilisation", "order_count_30d"]


def test_learns_to_rank_held_out_customers() -> None:
    model = RiskModel(FEATURES, refit_every=500)
    for x, y in _portfolio(3000, 1):
        model.learn_one(x, y)
    held_out = _portfolio(1000, 2)
    scores = [model.predict_proba_one(x) or 0.0 for x, _ in held_out]
    auc = roc_auc(scores, [y for _, y in held_out])
    assert auc is not None and auc > 0.8
    assert all(0.0 < s < 1.0 for s in scores)


def test_not_ready_before_both_outcomes_were_seen() -> None:
    model = RiskModel(FEATURES, refit_every=1)
    model.learn_one({"days_past_due": 0}, False)
    model.learn_one({"days_past_due": 10}, False)
    assert not model.ready and model.predict_proba_one({"days_past_due": 0}) is None
    model.learn_one({"days_past_due": 90}, True)
    assert model.ready


def test_reservoir_is_bounded_and_seeded() -> None:
    a = RiskModel(FEATURES, capacity=100, refit_every=10**9, seed=3)
    b = RiskModel(FEATURES, capacity=100, refit_every=10**9, seed=3)
    for x, y in _portfolio(1000, 4):
        a.learn_one(x, y)
        b.learn_one(x, y)
    assert len(a._rows) == 100 and a.seen == 1000
    assert a._rows == b._rows and a._labels == b._labels


def test_missing_and_non_numeric_values_are_indicated_not_fatal() -> None:
    model = RiskModel(["rating", "days_past_due"])
    assert model.encode({"rating": "BBB", "days_past_due": None}) == [0.0, 1.0, 0.0, 1.0]
    assert model.encode({"rating": float("nan"), "days_past_due": 30})[2:] == [
        pytest.approx(np.log1p(30)),
        0.0,
    ]


def test_snapshot_round_trips_through_json() -> None:
    model = RiskModel(FEATURES, refit_every=200)
    for x, y in _portfolio(1000, 5):
        model.learn_one(x, y)
    restored = RiskModel.restore(json.loads(json.dumps(model.snapshot())))
    for x, _ in _portfolio(50, 6):
        assert restored.predict_proba_one(x) == pytest.approx(model.predict_proba_one(x))
    with pytest.raises(ValueError, match="version"):
        RiskModel.restore({"v": 99})


def test_explanation_names_what_pushed_the_score_up() -> None:
    model = RiskModel(FEATURES, refit_every=500)
    for x, y in _portfolio(3000, 7):
        model.learn_one(x, y)
    top = model.explain_one({"days_past_due": 90, "credit_utilisation": 0.1, "order_count_30d": 2})
    assert top and top[0][0] == "days_past_due" and top[0][1] > 0
