"""What a step needs besides the state and the event: rules, currency and time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, Self

from stream_risk.core.detectors import SegmentBehaviour
from stream_risk.core.detectors.segment_behaviour import BEHAVIOUR_SCALE
from stream_risk.core.features import CLOCK_FEATURES, REGISTRY, ExpiryWatch, expiry_watch, groups_of
from stream_risk.core.previous import EvaluationMemory
from stream_risk.core.ruleset import RuleSet, default_rules
from stream_risk.core.scoring import SCORE_FEATURES, RiskScorer
from stream_risk.core.trainer import MODEL_FEATURES
from stream_risk.core.units import DAY

#: Model inputs are kept at most one per week (the latest of each week).
SNAPSHOT_EVERY = 7 * DAY


class ContextSettings(Protocol):
    """The settings a :class:`Context` is made from (``stream_risk.config.Settings``).

    A protocol, so the core does not import the runtime's configuration.
    """

    @property
    def base_currency(self) -> str: ...
    @property
    def fx_rates(self) -> Mapping[str, float]: ...
    @property
    def allowed_lateness_days(self) -> float: ...
    @property
    def outcome_horizon_days(self) -> float: ...
    @property
    def tier_thresholds(self) -> Mapping[str, Mapping[str, float]]: ...
    @property
    def max_segments(self) -> int: ...


class BadEvent(ValueError):
    """An event that is well-formed JSON of the contract but cannot be applied.

    Drivers send it to the dead-letter topic (or report file:line) with ``str(exc)``
    as the reason, and go on.
    """


@dataclass(slots=True)
class Context:
    """Everything a step may depend on besides state and event.

    ``detected_at`` is the wall-clock stamp for warnings; the driver sets it, so
    the core itself never reads a clock.
    """

    base_currency: str = "EUR"
    #: Units of base currency per unit of another currency.
    fx_rates: dict[str, float] = field(default_factory=dict)
    #: The active rule set (the default pack unless one is given or published).
    rules: RuleSet = field(default_factory=default_rules)
    #: Event ids remembered per customer for de-duplication.
    dedup_capacity: int = 128
    #: How far (seconds) an event may lag the customer's latest event time and
    #: still be applied as if it had arrived in order; older ones are bad events.
    allowed_lateness: float = 7 * DAY
    detected_at: datetime = field(default_factory=lambda: datetime(1970, 1, 1, tzinfo=UTC))
    #: The risk score: scorecard, learned model and tiers (its model is swapped in
    #: by the driver when the trainer publishes a snapshot).
    scorer: RiskScorer = field(default_factory=RiskScorer)
    #: Population detector shared by the customers this driver owns (``None``: off).
    population: SegmentBehaviour | None = field(default_factory=SegmentBehaviour)
    #: An outcome labels the customer's model inputs as of this long (seconds) before it.
    outcome_horizon: float = 30 * DAY
    #: Model inputs are kept at most one per this many seconds (the latest of each period).
    snapshot_every: float = 7 * DAY
    #: Feature groups a step evaluates (what the rules and the score read);
    #: profiles always carry every feature.
    feature_groups: frozenset[str] = field(init=False)
    #: The windows whose expiries wake a customer: those of the features read.
    expiry_watch: ExpiryWatch = field(init=False)
    #: Features that grow with the clock alone -> the ``(op, threshold)`` comparisons
    #: the rules make on them: the customer is woken exactly when one starts to hold.
    clock_thresholds: dict[str, tuple[tuple[str, float], ...]] = field(init=False)
    #: What each recently evaluated customer's previous evaluation saw and decided:
    #: a cache beside the states, so an evaluation redoes only what its inputs moved.
    memory: EvaluationMemory = field(default_factory=EvaluationMemory)

    def __post_init__(self) -> None:
        if self.snapshot_every > self.outcome_horizon:
            raise ValueError("snapshot_every must not exceed outcome_horizon")
        # What a customer is judged on: the credit policy's own inputs (lateness,
        # 90-day payments and sales) are among these or in groups it computes itself.
        read = frozenset(
            [v for v in self.rules.variables if v in REGISTRY]
            + list(SCORE_FEATURES)
            + list(MODEL_FEATURES)
            + list(BEHAVIOUR_SCALE)
            + [name for name, f in REGISTRY.items() if f.group == "detectors"]
        )
        self.feature_groups = groups_of(read)
        self.expiry_watch = expiry_watch(self.feature_groups, read)
        self.clock_thresholds = clock_thresholds(self.rules)

    @classmethod
    def from_settings(
        cls,
        settings: ContextSettings,
        *,
        rules: RuleSet | None = None,
        base_currency: str | None = None,
        fx_rates: Mapping[str, float] | None = None,
        allowed_lateness_days: float | None = None,
    ) -> Self:
        """The context every driver (worker, replay, backtest, rules test) steps with.

        One construction, so that a replay predicts the worker run with the same
        environment. Keyword arguments override single settings, as a verb's
        command-line options do; ``fx_rates`` adds to the configured rates.
        """
        horizon = settings.outcome_horizon_days * DAY
        rates = dict(settings.fx_rates)
        rates.update(fx_rates or {})
        lateness = (
            settings.allowed_lateness_days
            if allowed_lateness_days is None
            else allowed_lateness_days
        )
        return cls(
            base_currency=base_currency or settings.base_currency,
            fx_rates=rates,
            rules=rules if rules is not None else default_rules(),
            allowed_lateness=lateness * DAY,
            scorer=RiskScorer(tiers={seg: dict(t) for seg, t in settings.tier_thresholds.items()}),
            outcome_horizon=horizon,
            snapshot_every=min(SNAPSHOT_EVERY, horizon),
            population=SegmentBehaviour(max_segments=settings.max_segments),
        )

    def use_rules(self, rules: RuleSet) -> None:
        """Switch to another (validated) rule set between batches: rules and what they read."""
        self.rules = rules
        self.__post_init__()

    def to_base(self, amount: float, currency: str) -> float:
        """Convert ``amount`` in ``currency`` into the base currency, or raise :class:`BadEvent`."""
        if currency == self.base_currency:
            return amount
        rate = self.fx_rates.get(currency)
        if rate is None:
            raise BadEvent(
                f"currency {currency!r} is not the base currency {self.base_currency!r} "
                "and has no configured exchange rate"
            )
        return amount * rate


def clock_thresholds(rules: RuleSet) -> dict[str, tuple[tuple[str, float], ...]]:
    """The simple comparisons (``name >= 60.0``) the rules make on clock-driven features."""
    found: dict[str, set[tuple[str, float]]] = {}
    for rule in rules.rules:
        for condition in (rule.condition, *(step.condition for step in rule.escalate)):
            for name, op, literal in condition.comparisons:
                if name in CLOCK_FEATURES and isinstance(literal, float):
                    found.setdefault(name, set()).add((op, literal))
    return {name: tuple(sorted(pairs)) for name, pairs in found.items()}
