"""A learned risk model: logistic regression refitted on a bounded reservoir.

Outcomes arrive rarely and in bursts (a month's defaults at once), so instead
of one stochastic pass, every labelled example goes into a bounded reservoir
(uniform reservoir sampling, seeded) and the model is refitted by Newton's
method with an L2 penalty whenever enough new examples arrived. Inputs are the
numeric features, signed-log transformed (amounts and counts are heavy
tailed), with a missing-value indicator each, standardised on the reservoir.
The model is its own state: :meth:`snapshot` and :meth:`restore` give and take
plain JSON, so a single trainer can broadcast it to every worker.

>>> model = RiskModel(["days_past_due"], refit_every=4)
>>> for dpd, default in [(0, False), (0, False), (60, True), (90, True)]:
...     model.learn_one({"days_past_due": dpd}, default)
>>> late, on_time = (model.predict_proba_one({"days_past_due": d}) for d in (90, 0))
>>> late > 0.5 > on_time
True
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

SNAPSHOT_VERSION = 1


def _signed_log(value: float) -> float:
    return math.copysign(math.log1p(abs(value)), value)


class RiskModel:
    """Probability of an adverse outcome from a customer's features."""

    def __init__(
        self,
        features: Sequence[str],
        capacity: int = 50_000,
        refit_every: int = 500,
        l2: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.features = list(features)
        self.capacity = capacity
        self.refit_every = refit_every
        self.l2 = l2
        self._rng = random.Random(seed)
        self._rows: list[list[float]] = []
        self._labels: list[int] = []
        self.seen = 0
        self._since_fit = 0
        self.weights: list[float] | None = None
        self.means: list[float] = []
        self.scales: list[float] = []

    # -------------------------------------------------------------- encoding

    def encode(self, x: Mapping[str, Any]) -> list[float]:
        """The model's raw input row: signed-log values and missing indicators."""
        row: list[float] = []
        for name in self.features:
            value = x.get(name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                row += [0.0, 1.0]
            else:
                row += [_signed_log(float(value)), 0.0]
        return row

    # -------------------------------------------------------------- learning

    def learn_one(self, x: Mapping[str, Any], adverse: bool) -> None:
        """Add one labelled example; refit when ``refit_every`` new ones arrived."""
        row = self.encode(x)
        self.seen += 1
        if len(self._rows) < self.capacity:
            self._rows.append(row)
            self._labels.append(int(adverse))
        else:
            slot = self._rng.randrange(self.seen)
            if slot < self.capacity:
                self._rows[slot] = row
                self._labels[slot] = int(adverse)
        self._since_fit += 1
        if self._since_fit >= self.refit_every:
            self.fit()

    def fit(self) -> None:
        """Refit on the reservoir (Newton's method on the L2-penalised log loss)."""
        self._since_fit = 0
        if len(set(self._labels)) < 2:
            return  # one class only: nothing to separate yet
        raw = np.asarray(self._rows, dtype=float)
        y = np.asarray(self._labels, dtype=float)
        means = raw.mean(axis=0)
        scales = raw.std(axis=0)
        scales[scales == 0] = 1.0
        z = (raw - means) / scales
        design = np.hstack([np.ones((len(z), 1)), z])
        w = np.zeros(design.shape[1])
        penalty = np.full(design.shape[1], self.l2)
        penalty[0] = 0.0  # the intercept is not shrunk
        for _ in range(25):
            p = 1.0 / (1.0 + np.exp(-(design @ w)))
            gradient = design.T @ (p - y) + penalty * w
            hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty)
            step = np.linalg.solve(hessian, gradient)
            w -= step
            if float(np.max(np.abs(step))) < 1e-6:
                break
        self.weights = [float(v) for v in w]
        self.means = [float(v) for v in means]
        self.scales = [float(v) for v in scales]

    # -------------------------------------------------------------- scoring

    @property
    def ready(self) -> bool:
        return self.weights is not None

    def _logit_terms(self, x: Mapping[str, Any]) -> list[float]:
        assert self.weights is not None
        row = self.encode(x)
        return [
            self.weights[i + 1] * (v - self.means[i]) / self.scales[i] for i, v in enumerate(row)
        ]

    def predict_proba_one(self, x: Mapping[str, Any]) -> float | None:
        """P(adverse outcome), or ``None`` before the first fit."""
        if self.weights is None:
            return None
        z = self.weights[0] + sum(self._logit_terms(x))
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def explain_one(self, x: Mapping[str, Any], top: int = 3) -> list[tuple[str, float]]:
        """The features that pushed this score up most: ``(name, log-odds contribution)``."""
        if self.weights is None:
            return []
        terms = self._logit_terms(x)
        by_feature = [
            (name, terms[2 * i] + terms[2 * i + 1]) for i, name in enumerate(self.features)
        ]
        by_feature.sort(key=lambda item: -item[1])
        return [item for item in by_feature[:top] if item[1] > 0]

    # -------------------------------------------------------------- state

    def snapshot(self) -> dict[str, Any]:
        """The fitted model as plain JSON data (the reservoir stays with the trainer)."""
        return {
            "v": SNAPSHOT_VERSION,
            "features": self.features,
            "weights": self.weights,
            "means": self.means,
            "scales": self.scales,
            "seen": self.seen,
        }

    @classmethod
    def restore(cls, data: Mapping[str, Any]) -> RiskModel:
        """A model that scores like the one ``data`` was taken from."""
        if data.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported model snapshot version {data.get('v')!r}")
        model = cls(data["features"])
        model.weights = data["weights"]
        model.means = data["means"]
        model.scales = data["scales"]
        model.seen = data["seen"]
        return model
