"""What a step publishes, and the helpers every emitting stage shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stream_risk.core.ids import content_id


@dataclass(slots=True)
class Outputs:
    """What one step or advance publishes."""

    warnings: list[dict[str, Any]] = field(default_factory=list)
    #: Risk-tier changes (before, after, reasons) for the tier-changes topic.
    tier_changes: list[dict[str, Any]] = field(default_factory=list)
    #: Credit-policy recommendations for the credit-actions topic.
    credit_actions: list[dict[str, Any]] = field(default_factory=list)
    #: Labelled feature vectors for the trainer (from outcome events).
    training_examples: list[dict[str, Any]] = field(default_factory=list)
    #: True when the event was already applied (redelivery): nothing changed.
    duplicate: bool = False
    #: True when a wake-up evaluated nothing and changed only what
    #: :class:`~stream_risk.core.step.ClockMarks` holds (the clock, the score, the
    #: next wake-up): putting those back undoes it.
    clock_only: bool = False


def iso(ts: float) -> str:
    """Event time (epoch seconds) as an RFC 3339 UTC timestamp."""
    return datetime.fromtimestamp(ts, UTC).isoformat()


def warning_id(customer_id: str, rule: str, trigger: str) -> str:
    """Deterministic id of a warning episode: same inputs, same id."""
    return content_id("w", customer_id, rule, trigger)
