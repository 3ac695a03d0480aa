"""Robust z-score of a value against a bounded window of its own history."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from stream_risk.core.detectors.base import Explanation

#: MAD of a normal distribution is 0.6745 standard deviations.
_MAD_TO_SIGMA = 1.4826


class RobustZScore:
    """How unusual a value is against the last ``window`` values learned.

    The centre is the median and the spread the median absolute deviation, so
    one earlier outlier does not hide the next. Scores are ``None`` during the
    warm-up (fewer than ``warm_up`` values learned). Values scoring beyond
    ``confirm`` (in absolute value) are confirmed anomalies: :meth:`learn_one`
    skips them so an anomaly does not become the new normal.

    >>> amounts = RobustZScore(warm_up=4)
    >>> amounts.score_one(100.0) is None
    True
    >>> for x in (100.0, 110.0, 95.0, 105.0, 100.0):
    ...     amounts.learn_one(x)
    >>> round(amounts.score_one(400.0), 1)
    40.5
    >>> amounts.learn_one(400.0)  # confirmed anomaly: not learned
    >>> len(amounts.values)
    5
    """

    def __init__(
        self,
        window: int = 24,
        warm_up: int = 5,
        confirm: float = 6.0,
        min_spread: float = 0.05,
        values: list[float] | None = None,
    ) -> None:
        self.window = window
        self.warm_up = warm_up
        self.confirm = confirm
        #: Spread floor as a share of the median: a flat history still gives finite scores.
        self.min_spread = min_spread
        self.values: list[float] = list(values or [])

    def score_one(self, x: float) -> float | None:
        """Signed robust z-score of ``x``, or ``None`` while warming up."""
        if len(self.values) < self.warm_up:
            return None
        centre = statistics.median(self.values)
        mad = statistics.median(abs(v - centre) for v in self.values) * _MAD_TO_SIGMA
        spread = max(mad, abs(centre) * self.min_spread, 1e-9)
        return (x - centre) / spread

    def learn_one(self, x: float) -> None:
        """Add ``x`` to the history unless it is a confirmed anomaly."""
        score = self.score_one(x)
        if score is not None and abs(score) >= self.confirm:
            return
        self.values.append(x)
        if len(self.values) > self.window:
            del self.values[0]

    def explain_one(self, x: float, feature: str, threshold: float) -> Explanation:
        """The score as a warning reason: value, usual level, and how far off."""
        score = self.score_one(x)
        centre = statistics.median(self.values) if self.values else None
        if score is None or centre is None:
            text = f"{feature}: not enough history yet ({len(self.values)} of {self.warm_up})"
        else:
            text = (
                f"{feature} {x:,.4g} against a usual {centre:,.4g} "
                f"is {score:+.1f} robust standard deviations away"
            )
        return {
            "feature": feature,
            "value": None if score is None else round(score, 4),
            "op": ">=",
            "threshold": threshold,
            "text": text,
        }

    def to_dict(self) -> dict[str, Any]:
        """The history, rounded: ``{"values": [...]}``."""
        return {"values": [round(v, 6) for v in self.values]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, **params: Any) -> RobustZScore:
        """A detector with ``params`` and the history in ``data``."""
        return cls(values=(data or {}).get("values"), **params)
