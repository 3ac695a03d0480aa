"""The single writer of the learned risk model: training examples in, snapshots out.

A training example is a customer's model inputs as of ``horizon`` before an
outcome, labelled with whether the outcome was adverse (see
:func:`stream_risk.core.step.step`). Each example is first scored by the
current model (before it learns it) and that held-back score goes into the
calibration reservoir; then the model learns it. Every refit produces a new,
versioned snapshot that every worker loads into its
:class:`~stream_risk.core.scoring.RiskScorer`.

>>> trainer = Trainer(["days_past_due"], refit_every=4)
>>> snapshots = [trainer.learn_one({"features": {"days_past_due": d}, "adverse": d > 30})
...              for d in (0, 60, 0, 90)]
>>> [s is not None for s in snapshots]
[False, False, False, True]
>>> snapshots[-1]["version"], snapshots[-1]["outcomes"]
(1, 4)
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from stream_risk.core.model import RiskModel
from stream_risk.core.scoring import Calibrator

#: Outcomes that count as adverse (the rest: ``current``, ``recovered``).
ADVERSE_OUTCOMES = frozenset({"default", "written_off"})

#: What the learned model reads: behaviour, not who the customer is (segment
#: labels and personal attributes are left out on purpose).
MODEL_FEATURES: tuple[str, ...] = (
    "open_balance",
    "overdue_balance",
    "credit_limit",
    "credit_utilisation",
    "limit_headroom",
    "exposure_growth_30d",
    "exposure_growth_90d",
    "days_past_due",
    "invoice_days_past_due",
    "statement_days_past_due",
    "aging_1_30",
    "aging_31_60",
    "aging_61_90",
    "aging_90_plus",
    "overdue_invoice_count",
    "avg_days_late_90d",
    "dso",
    "times_30dpd_6m",
    "times_60dpd_6m",
    "times_90dpd_6m",
    "days_late_trend",
    "broken_promises_90d",
    "order_count_30d",
    "order_count_90d",
    "order_amount_30d",
    "order_amount_90d",
    "order_amount_mean_90d",
    "days_since_last_order",
    "cancellation_share_90d",
    "payment_count_90d",
    "payment_amount_30d",
    "payment_amount_90d",
    "paid_to_due_ratio_90d",
    "partial_payment_share_90d",
    "bounced_payments_90d",
    "days_since_last_payment",
    "statement_balance",
    "balance_trend",
    "utilisation_trend",
    "revolving_streak",
    "delinquent_streak",
    "payment_terms_days",
    "months_on_book",
    "current_ratio",
    "debt_ratio",
)


class Trainer:
    """Owns the :class:`RiskModel` and its calibrator; emits a snapshot after every refit."""

    def __init__(
        self,
        features: Sequence[str] = MODEL_FEATURES,
        capacity: int = 50_000,
        refit_every: int = 500,
        calibration_capacity: int = 5_000,
        seed: int = 0,
    ) -> None:
        self.model = RiskModel(features, capacity=capacity, refit_every=refit_every, seed=seed)
        self.calibration_capacity = calibration_capacity
        self._rng = random.Random(seed + 1)
        self._held_back: list[tuple[float, int]] = []
        self._held_back_seen = 0
        self.version = 0
        #: The newest customers (months on book) the model has learned from.
        self.min_months_on_book: float | None = None
        #: Outcome event ids learned (a redelivered example is learned once).
        self._learned: set[str] = set()

    def learn_one(self, example: Mapping[str, Any]) -> dict[str, Any] | None:
        """Learn one example; return a new snapshot when the model was refitted."""
        event_id = example.get("event_id")
        if event_id is not None:
            if event_id in self._learned:
                return None
            self._learned.add(event_id)
        features = example["features"]
        adverse = bool(example["adverse"])
        tenure = features.get("months_on_book")
        if isinstance(tenure, (int, float)) and (
            self.min_months_on_book is None or tenure < self.min_months_on_book
        ):
            self.min_months_on_book = float(tenure)
        held_back = self.model.predict_proba_one(features)
        if held_back is not None:
            self._hold_back(held_back, int(adverse))
        before = self.model.weights
        self.model.learn_one(features, adverse)
        if self.model.weights is before:
            return None
        return self.snapshot()

    def _hold_back(self, score: float, label: int) -> None:
        self._held_back_seen += 1
        if len(self._held_back) < self.calibration_capacity:
            self._held_back.append((score, label))
            return
        slot = self._rng.randrange(self._held_back_seen)
        if slot < self.calibration_capacity:
            self._held_back[slot] = (score, label)

    def snapshot(self) -> dict[str, Any]:
        """The model and its calibration as plain, versioned JSON data."""
        self.version += 1
        calibrator = Calibrator.fit(
            [s for s, _ in self._held_back], [y for _, y in self._held_back]
        )
        return {
            "version": self.version,
            "outcomes": self.model.seen,
            "model": self.model.snapshot(),
            "calibration": {"a": calibrator.a, "b": calibrator.b, "n": len(self._held_back)},
            "min_months_on_book": self.min_months_on_book,
        }
