"""What the engine writes back: warnings, risk profiles and dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

Level = Literal["low", "medium", "high", "critical"]
Tier = Literal["low", "medium", "high"]
#: The warning levels and risk tiers, lowest first: the one definition the rules,
#: the API and the reports read.
LEVELS: tuple[str, ...] = get_args(Level)
TIERS: tuple[str, ...] = get_args(Tier)

#: Display colour of each warning level.
LEVEL_COLOURS: dict[str, str] = {
    "low": "blue",
    "medium": "yellow",
    "high": "orange",
    "critical": "red",
}
LEVEL_ORDER: dict[str, int] = {level: n for n, level in enumerate(LEVELS, start=1)}


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
    # Compatible extensions: optional, so older consumers and producers stay valid.
    group: str | None = Field(default=None, description="the rule's group in its rule file")
    labels: dict[str, str] = Field(default_factory=dict, description="the rule's labels")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="the rule's annotations, filled with feature values"
    )
    rules_version: str | None = Field(
        default=None, description="version of the rule set that raised or resolved it"
    )
    escalated: bool = Field(
        default=False,
        description="a firing that re-emits an already firing warning at a higher level",
    )


class TierReason(BaseModel):
    """Why a tier changed."""

    model_config = ConfigDict(frozen=True)

    feature: str
    value: float | str | None
    text: str


class TierChange(BaseModel):
    """A customer's published risk tier moved (the tier-changes topic).

    Tiers move up at once and down only after a sustained improvement.
    """

    model_config = ConfigDict(frozen=True)

    change_id: str = Field(description="deterministic: the same inputs give the same id")
    customer_id: str
    before: Tier
    after: Tier
    direction: Literal["up", "down"]
    occurred_at: datetime
    detected_at: datetime
    risk_score: float = Field(ge=0, le=1)
    reasons: list[TierReason]
    rules_version: str | None = None


class CreditAction(BaseModel):
    """Credit-policy recommendations with their evidence (the credit-actions topic).

    Never applied by the engine: a person or a downstream system approves them.
    """

    model_config = ConfigDict(frozen=True)

    action_id: str = Field(description="deterministic: one per warning level or tier change")
    customer_id: str
    status: Literal["proposed"]
    requires_approval: Literal[True]
    source: Literal["warning", "tier_change", "assessment", "review", "tier_policy"] = Field(
        description="a firing warning, a tier change, a credit assessment, a periodic review, "
        "or the tier policy (a low-risk customer earning more credit)"
    )
    source_id: str = Field(
        description="the warning_id or change_id it comes from, or the assessment or review id"
    )
    rule: str | None = None
    level: str = Field(description="the warning level, or the tier entered")
    tier: Tier
    risk_score: float = Field(ge=0, le=1)
    occurred_at: datetime
    detected_at: datetime
    current: dict[str, float | int | None] = Field(
        description="the customer's credit_limit and payment_terms_days"
    )
    recommendations: list[Action]
    evidence: dict[str, Any]
    rules_version: str | None = None


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
    original: str = Field(
        description="the original bytes, decoded as UTF-8 with replacement; only an excerpt "
        "when they are not valid UTF-8 or do not fit a message (see truncated)"
    )
    original_base64: str | None = Field(
        default=None,
        description="the original bytes, base64, when they are not valid UTF-8 and fit a message",
    )
    received_at: datetime
    # Compatible extensions: optional, so older records stay valid.
    original_bytes: int | None = Field(default=None, description="size of the original bytes")
    original_sha256: str | None = Field(
        default=None, description="SHA-256 of the original bytes, hex"
    )
    truncated: bool = Field(
        default=False,
        description="the original is not in the record (too large): the source, partition "
        "and offset say where it still is",
    )
