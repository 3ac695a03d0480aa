"""The risk score: a cold-start scorecard blended with the learned model, and tiers.

**Scorecard** (before any outcome is known). Points on the log-odds scale,
summed and squashed into [0, 1]; the intercept puts a clean record near the
portfolio's typical default rate (about 10 %):

============================  =========================================
input                         points (log-odds)
============================  =========================================
days past due                 +0.025 per day, capped at 180 days
credit utilisation            +1.2 per unit above 50 %, capped at 150 %
bounced payments (90 days)    +0.6 each, capped at 3
delinquent statement streak   +0.3 per statement, capped at 6
utilisation trend             +0.5 per unit of rise per month, capped at 1
============================  =========================================

**Learned model.** Once outcomes arrive, the trainer's
:class:`~stream_risk.core.model.RiskModel` (with a Platt calibrator trained on
the model's own scores *before* it learned each example) is blended in with
weight ``n / (n + prior_outcomes)``, ``n`` being the outcomes seen: the score
reads as a calibrated probability once there are enough of them.

**Tiers.** ``low``, ``medium``, ``high`` from the score, with thresholds per
segment (``industry``, ``size`` or ``region`` value, or ``default``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stream_risk.core.model import RiskModel

#: The features the scorecard reads.
SCORE_FEATURES = (
    "days_past_due",
    "credit_utilisation",
    "bounced_payments_90d",
    "delinquent_streak",
    "utilisation_trend",
)

INTERCEPT = -2.2
POINTS_PER_DAY_PAST_DUE = 0.025  # capped at 180 days
POINTS_PER_UTILISATION = 1.2  # above 50 % of the limit, capped at 150 %
POINTS_PER_BOUNCE = 0.6  # capped at 3 bounces
POINTS_PER_DELINQUENT_STATEMENT = 0.3  # capped at 6 in a row
POINTS_PER_UTILISATION_RISE = 0.5  # per unit of utilisation per month, capped at 1

HIGH_TIER_FROM = 0.5
MEDIUM_TIER_FROM = 0.25
#: Tier thresholds when the configuration names none for a segment.
DEFAULT_TIERS: dict[str, float] = {"medium": MEDIUM_TIER_FROM, "high": HIGH_TIER_FROM}


def _number(features: Mapping[str, Any], name: str) -> float:
    value = features.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value)


def scorecard_points(features: Mapping[str, Any]) -> dict[str, float]:
    """Log-odds points per scorecard input (the intercept excluded)."""
    utilisation = features.get("credit_utilisation")
    over_half = 0.0 if utilisation is None else min(max(float(utilisation) - 0.5, 0.0), 1.0)
    return {
        "days_past_due": POINTS_PER_DAY_PAST_DUE * min(_number(features, "days_past_due"), 180.0),
        "credit_utilisation": POINTS_PER_UTILISATION * over_half,
        "bounced_payments_90d": POINTS_PER_BOUNCE
        * min(_number(features, "bounced_payments_90d"), 3.0),
        "delinquent_streak": POINTS_PER_DELINQUENT_STATEMENT
        * min(_number(features, "delinquent_streak"), 6.0),
        "utilisation_trend": POINTS_PER_UTILISATION_RISE
        * min(max(_number(features, "utilisation_trend"), 0.0), 1.0),
    }


def completed_months(months_on_book: float) -> int:
    """Whole months on book, the unit in which credit compares account ages.

    >>> completed_months(5.97), completed_months(6.0), completed_months(6.03)
    (5, 6, 6)
    """
    return math.floor(months_on_book)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


def risk_score(features: Mapping[str, Any]) -> float:
    """The scorecard's probability-like score in [0, 1]; higher is riskier.

    >>> risk_score({"days_past_due": 0}) < 0.15 < risk_score({"days_past_due": 90})
    True
    """
    return round(_sigmoid(INTERCEPT + sum(scorecard_points(features).values())), 6)


def tier_of(score: float, thresholds: Mapping[str, float] = DEFAULT_TIERS) -> str:
    """``low``, ``medium`` or ``high`` for ``score`` under ``thresholds``.

    >>> tier_of(0.3), tier_of(0.3, {"medium": 0.1, "high": 0.3})
    ('medium', 'high')
    """
    if score >= thresholds["high"]:
        return "high"
    if score >= thresholds["medium"]:
        return "medium"
    return "low"


@dataclass(slots=True)
class Calibrator:
    """Platt scaling: ``P(adverse) = sigmoid(a * logit + b)``, fitted on held-back scores."""

    a: float = 1.0
    b: float = 0.0

    def apply(self, p: float) -> float:
        return _sigmoid(self.a * _logit(p) + self.b)

    @classmethod
    def fit(cls, scores: list[float], labels: list[int], l2: float = 1e-3) -> Calibrator:
        """Damped Newton on the log loss of (logit(score), label) pairs.

        >>> c = Calibrator.fit([0.9, 0.9, 0.9, 0.1, 0.1, 0.1], [1, 0, 0, 0, 1, 0])
        >>> round(c.apply(0.9), 2), round(c.apply(0.1), 2)  # overconfident scores tamed
        (0.33, 0.33)
        """
        if len(set(labels)) < 2:
            return cls()
        xs = [_logit(p) for p in scores]

        def loss(a: float, b: float) -> float:
            total = 0.5 * l2 * (a - 1.0) ** 2
            for x, y in zip(xs, labels, strict=True):
                z = a * x + b
                # log(1 + e^z) - y z, computed without overflow
                total += max(z, 0.0) + math.log1p(math.exp(-abs(z))) - y * z
            return total

        a, b = 1.0, 0.0
        current = loss(a, b)
        for _ in range(100):
            g_a = g_b = h_aa = h_ab = h_bb = 0.0
            for x, y in zip(xs, labels, strict=True):
                p = _sigmoid(a * x + b)
                g_a += (p - y) * x
                g_b += p - y
                w = p * (1 - p)
                h_aa += w * x * x
                h_ab += w * x
                h_bb += w
            g_a += l2 * (a - 1.0)
            h_aa += l2
            det = h_aa * h_bb - h_ab * h_ab
            if det <= 1e-12:
                break
            da = (h_bb * g_a - h_ab * g_b) / det
            db = (h_aa * g_b - h_ab * g_a) / det
            step = 1.0
            while step > 1e-6:  # halve the step until the loss goes down
                trial = loss(a - step * da, b - step * db)
                if trial <= current:
                    break
                step /= 2
            a, b, current = a - step * da, b - step * db, trial
            if max(abs(step * da), abs(step * db)) < 1e-7:
                break
        return cls(a, b)


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


@dataclass(slots=True)
class RiskScorer:
    """Scores a customer from its features: scorecard, learned model, calibration, tier.

    Load a trainer snapshot with :meth:`load`; until then the scorecard alone scores.
    """

    #: segment key (``default``, or a segment value such as ``retail``) -> tier thresholds.
    tiers: dict[str, dict[str, float]] = field(default_factory=lambda: {"default": DEFAULT_TIERS})
    #: Outcomes after which the learned model and the scorecard weigh the same.
    prior_outcomes: int = 200
    model: RiskModel | None = None
    calibrator: Calibrator = field(default_factory=Calibrator)
    #: Outcomes the loaded model has learned from.
    outcomes_seen: int = 0
    #: Version of the loaded snapshot (0: none, scorecard only).
    version: int = 0
    #: The newest customers (months on book) the loaded model learned from.
    min_months_on_book: float | None = None

    def load(self, snapshot: Mapping[str, Any]) -> None:
        """Switch to a trainer snapshot (see :meth:`stream_risk.core.trainer.Trainer.snapshot`)."""
        self.prepare(snapshot)()

    def prepare(self, snapshot: Mapping[str, Any]) -> Callable[[], None]:
        """Build a trainer snapshot's model; return the switch to it.

        Building is the costly part and touches nothing of the scorer, so it may
        run in another thread; the switch only assigns (a scorer is never
        half-loaded).
        """
        model = RiskModel.restore(snapshot["model"])
        calibration = snapshot.get("calibration") or {}
        calibrator = Calibrator(float(calibration.get("a", 1.0)), float(calibration.get("b", 0.0)))
        outcomes = int(snapshot.get("outcomes", model.seen))
        tenure = snapshot.get("min_months_on_book")
        min_months = None if tenure is None else float(tenure)
        version = int(snapshot.get("version", 0))

        def switch() -> None:
            self.model, self.calibrator = model, calibrator
            self.outcomes_seen = outcomes
            self.min_months_on_book = min_months
            self.version = version

        return switch

    def model_weight(self) -> float:
        if self.model is None or not self.model.ready:
            return 0.0
        return self.outcomes_seen / (self.outcomes_seen + self.prior_outcomes)

    def score(self, features: Mapping[str, Any], seasoned: bool = True) -> float:
        """The customer's risk score in [0, 1].

        ``seasoned`` says the customer has been known for at least the outcome
        horizon. The model scores only customers like those it learned from:
        seasoned, and on the books at least as many completed months as the
        newest customer among its examples; the scorecard scores the others.
        (Completed months, as months on book are counted in credit: a customer
        scored on the day of its sixth statement is as seasoned as the examples
        taken a day after theirs.)
        """
        return self.score_and_weight(features, seasoned)[0]

    def score_and_weight(
        self, features: Mapping[str, Any], seasoned: bool = True
    ) -> tuple[float, float]:
        """The risk score (see :meth:`score`) and the learned model's weight in it.

        The weight is 0 when the scorecard alone scored the customer: its score is
        then a cold-start prior, not a probability calibrated on outcomes.
        """
        card = risk_score(features)
        weight = self.model_weight()
        if weight == 0.0 or self.model is None or not seasoned:
            return card, 0.0
        tenure = features.get("months_on_book")
        if (
            self.min_months_on_book is not None
            and isinstance(tenure, (int, float))
            and completed_months(tenure) < completed_months(self.min_months_on_book)
        ):
            return card, 0.0
        learned = self.model.predict_proba_one(features)
        if learned is None:
            return card, 0.0
        return round(weight * self.calibrator.apply(learned) + (1 - weight) * card, 6), weight

    def explain(self, features: Mapping[str, Any], top: int = 3) -> list[dict[str, Any]]:
        """What pushed the score up, as warning reasons (model terms, else scorecard points)."""
        if self.model_weight() > 0.5 and self.model is not None:
            terms = self.model.explain_one(features, top)
        else:
            points = sorted(scorecard_points(features).items(), key=lambda item: -item[1])
            terms = [item for item in points[:top] if item[1] > 0]
        return [
            {
                "feature": name,
                "value": features.get(name),
                "op": "contributes",
                "threshold": None,
                "text": f"{name} = {features.get(name)!r} adds {weight:+.2f} to the log-odds",
            }
            for name, weight in terms
        ]

    def tier(self, score: float, segment: Mapping[str, Any] | None) -> str:
        """The tier under the first configured thresholds that match the segment."""
        for value in (segment or {}).values():
            thresholds = self.tiers.get(str(value))
            if thresholds is not None:
                return tier_of(score, thresholds)
        return tier_of(score, self.tiers.get("default", DEFAULT_TIERS))
