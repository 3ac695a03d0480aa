"""What the engine writes back: warnings, risk profiles and dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Level = Literal["low", "medium", "high", "critical"]
Tier = Literal["low", "medium", "high"]

#: Display colour of each warning level.
LEVEL_COLOURS: dict[str, str] = {
    "low": "blue",
    "medium": "yellow",
    "high": "orange",
    "critical": "red",
}
LEVEL_ORDER: dict[str, int] = {"low": 1, "medium": 2, "high": 3, "critical": 4}


class Reason(BaseModel):
    """Why a warning fired, in numbers and in words."""

    model_config = ConfigDict(frozen=True)

    feature: str
    value: float | str | None
    op: str
    threshold: float | str | None
    text: str


class Action(BaseModel):
    """A recommended credit-policy action; never applied by the engine itself."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: str


class RiskWarning(BaseModel):
    """A graded early warning (the ``warning`` output of EVENTS.md)."""

    model_config = ConfigDict(frozen=True)

    warning_id: str
    customer_id: str
    level: Level
    status: Literal["firing", "resolved"]
    rule: str
    occurred_at: datetime
    detected_at: datetime
    reasons: list[Reason]
    risk_score: float = Field(ge=0, le=1)
    tier: Tier
    actions: list[Action] = Field(default_factory=list)


class RiskProfile(BaseModel):
    """A customer's current risk picture (the ``customer risk profile`` of EVENTS.md)."""

    model_config = ConfigDict(frozen=True)

    customer_id: str
    risk_score: float = Field(ge=0, le=1)
    tier: Tier
    features: dict[str, Any]
    active_warnings: list[str]
    updated_at: datetime


class DeadLetter(BaseModel):
    """An input the engine could not apply, with the reason and the original bytes.

    An extension of the contract: written to the dead-letter topic (key: the
    original key) so that nothing is lost and a person can repair and re-send it.
    """

    model_config = ConfigDict(frozen=True)

    reason: str
    source: str = Field(description="topic (or file) the input came from")
    partition: int | None = None
    offset: int | None = Field(default=None, description="offset, or line number for files")
    key: str | None = None
    original: str = Field(description="the original bytes, decoded as UTF-8 with replacement")
    original_base64: str | None = Field(
        default=None, description="the original bytes, base64, when they are not valid UTF-8"
    )
    received_at: datetime
