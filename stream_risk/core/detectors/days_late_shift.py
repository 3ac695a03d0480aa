"""Change detection on days late: river's PageHinkley, kept as plain data."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

from river import stats

from stream_risk.core.detectors.base import Explanation


def _page_hinkley(**params: Any) -> Any:
    """river's PageHinkley for an upward shift, imported when first needed: ``river.drift``
    pulls in SciPy, a second or more of start-up for every command that never scores
    days late."""
    return _upward_page_hinkley()(**params, mode="up")


@functools.cache
def _upward_page_hinkley() -> type:
    from river.drift import PageHinkley

    class UpwardPageHinkley(PageHinkley):  # type: ignore[misc]
        """river's PageHinkley keeps its test on the instance as a bound method: a
        reference cycle, so every detector dropped (one per days-late observation,
        rebuilt from the customer's state) would wait for the cyclic garbage
        collector instead of going at once. The test is the class's here."""

        def _reset(self) -> None:
            super()._reset()  # type: ignore[no-untyped-call]
            self.__dict__.pop("_test_drift", None)

        def _test_drift(self, test_increase: float, test_decrease: float) -> bool:
            return bool(test_increase > self.threshold)

    return UpwardPageHinkley


class DaysLateShift:
    """Flags an upward shift in how late a customer pays.

    A thin wrapper around :class:`river.drift.PageHinkley` (mode ``up``) whose
    running sums convert to and from JSON, so each customer carries its own.
    Days late arrive in steps of weeks; a shift of a month or more is what
    matters, hence the default ``delta`` and ``threshold``. No flag during the
    warm-up (``min_instances`` observations).

    >>> shift = DaysLateShift()
    >>> [shift.score_one(d) for d in (0, 0)]
    [None, None]
    >>> for days_late in (0, 0, 0, 0):
    ...     shift.learn_one(days_late)
    >>> shift.score_one(0.0), shift.score_one(90.0)
    (0.0, 1.0)
    """

    _STATE = ("_sum_increase", "_sum_decrease", "_min_increase", "_max_decrease")

    def __init__(
        self,
        min_instances: int = 3,
        delta: float = 5.0,
        threshold: float = 45.0,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        self.min_instances = min_instances
        self.delta = delta
        self.threshold = threshold
        self._detector = _page_hinkley(
            min_instances=min_instances, delta=delta, threshold=threshold
        )
        if state:
            self._load(state)

    @property
    def seen(self) -> int:
        return int(self._detector._x_mean.n)

    def score_one(self, days_late: float) -> float | None:
        """1.0 when ``days_late`` would complete an upward shift, else 0.0 (``None`` warming up)."""
        if self.seen + 1 < self.min_instances:
            return None
        probe = DaysLateShift(self.min_instances, self.delta, self.threshold, self.to_dict())
        probe._detector.update(days_late)  # type: ignore[no-untyped-call]
        return 1.0 if probe._detector.drift_detected else 0.0

    def learn_one(self, days_late: float) -> None:
        """Update the running sums (the detector restarts after a detected shift)."""
        self._detector.update(days_late)  # type: ignore[no-untyped-call]

    def explain_one(self, days_late: float) -> Explanation:
        mean = self._detector._x_mean.get()
        return {
            "feature": "days_late",
            "value": days_late,
            "op": "shift",
            "threshold": self.threshold,
            "text": f"paid {days_late:g} days late against a running mean of {mean:.0f} days",
        }

    def to_dict(self) -> dict[str, Any]:
        """The running mean and sums of PageHinkley (infinities as ``None``)."""
        d = self._detector
        data: dict[str, Any] = {
            "n": d._x_mean.n,
            "mean": d._x_mean._mean,
            "drift": d.drift_detected,
        }
        for name in self._STATE:
            value = getattr(d, name)
            data[name.strip("_")] = value if math.isfinite(value) else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, **params: Any) -> DaysLateShift:
        """A detector with ``params`` and the running sums in ``data``.

        >>> shift = DaysLateShift()
        >>> for days_late in (0, 0, 0, 0):
        ...     shift.learn_one(days_late)
        >>> again = DaysLateShift.from_dict(shift.to_dict())
        >>> again.seen, again.score_one(90.0)
        (4, 1.0)
        """
        return cls(**params, state=data)

    def _load(self, data: Mapping[str, Any]) -> None:
        d = self._detector
        mean = stats.Mean()
        mean.n = data["n"]
        mean._mean = data["mean"]
        d._x_mean = mean
        d._drift_detected = bool(data.get("drift", False))
        for name in self._STATE:
            value = data.get(name.strip("_"))
            if value is None:
                value = math.inf if name == "_min_increase" else -1.0
            setattr(d, name, float(value))
