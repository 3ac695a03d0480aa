"""Risk tiers with hysteresis: up at once, down only after sustained improvement.

The score's own tier (``raw_tier``) may flicker around a threshold; the tier a
customer is published in must not. :func:`decide` is the whole policy, a pure
function of the held tier, the raw tier and event time:

- a raw tier above the held one moves the customer up at once;
- a raw tier below it starts (or continues) an improvement period; the customer
  moves down only when the raw tier has stayed below the held one for
  ``down_after`` seconds, to the worst raw tier seen during that period;
- a raw tier back at the held one ends the improvement period.

>>> held = TierHold("medium", 0.0)
>>> held, change = decide(held, "low", 10.0, down_after=100.0)
>>> held.tier, change
('medium', None)
>>> held, change = decide(held, "low", 110.0, down_after=100.0)
>>> held.tier, change.before, change.after
('low', 'medium', 'low')
>>> decide(held, "high", 111.0, down_after=100.0)[0].tier
'high'
"""

from __future__ import annotations

from dataclasses import dataclass

from stream_risk.core.units import DAY

TIER_RANK = {"low": 0, "medium": 1, "high": 2}


@dataclass(frozen=True, slots=True)
class TierHold:
    """The published tier and the improvement period under way, if any."""

    tier: str
    since: float | None = None
    #: When the raw tier first fell below ``tier`` (without coming back since).
    improving_since: float | None = None
    #: The worst raw tier seen since ``improving_since``.
    improving_worst: str | None = None


@dataclass(frozen=True, slots=True)
class TierChange:
    before: str
    after: str
    #: Why, in words.
    why: str

    @property
    def direction(self) -> str:
        return "up" if TIER_RANK[self.after] > TIER_RANK[self.before] else "down"


def decide(
    held: TierHold, raw: str, now: float, down_after: float
) -> tuple[TierHold, TierChange | None]:
    """The new hold and the change (``None`` when the tier stays)."""
    if raw not in TIER_RANK:
        return held, None
    current = TIER_RANK[held.tier]
    rank = TIER_RANK[raw]
    if rank > current:
        return TierHold(raw, now), TierChange(
            held.tier, raw, f"the score's tier rose to {raw}: tiers move up at once"
        )
    if rank == current:
        return (held if held.improving_since is None else TierHold(held.tier, held.since)), None
    if held.improving_since is None or held.improving_worst is None:
        since, worst = now, raw
    else:
        since = held.improving_since
        worst = raw if rank > TIER_RANK[held.improving_worst] else held.improving_worst
    if now - since < down_after:
        return TierHold(held.tier, held.since, since, worst), None
    days = (now - since) / DAY
    change = TierChange(
        held.tier,
        worst,
        f"the score's tier has been {worst} or lower for {days:.0f} days "
        f"(tiers move down after {down_after / DAY:g} days of sustained improvement)",
    )
    if TIER_RANK[raw] < TIER_RANK[worst]:
        # Still improving: the next step down needs its own sustained period.
        return TierHold(worst, now, now, raw), change
    return TierHold(worst, now), change


def next_due(held: TierHold, down_after: float) -> float | None:
    """When the tier would move down if the improvement lasts (for timers)."""
    if held.improving_since is None:
        return None
    return held.improving_since + down_after
