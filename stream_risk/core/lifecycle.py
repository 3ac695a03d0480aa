"""The warning lifecycle of one (customer, rule): a pure state machine on event time.

Phases of an episode::

    (none) --holds--> pending --held for `for`--> firing --clears--> (cooling) --> (none)
                         |                          ^  |
                         +--- muted (cooldown or ---+  +-- a higher level: escalated
                              inhibition) ---------+

- ``pending``: the condition holds; it must keep holding for the rule's ``for``
  before the warning fires. Clearing before then emits nothing.
- ``firing``: emitted once with its level; a higher level later re-emits the
  same ``warning_id`` (escalation); a lower one changes nothing.
- resolving: when the condition clears a firing warning emits ``resolved``
  once, with the id and level of its firing. The rule then *cools* for its
  ``cooldown``: a repeat within it is ``muted`` (not emitted) unless its level
  is above the resolved one; a muted repeat still holding when the cooldown
  ends fires then.
- inhibition: while a critical warning of the same group fires for the
  customer, lower-level ones that would fire are ``muted`` instead, and fire
  when the critical one resolves, if they still hold.

:func:`transition` decides one step, given ``now``; :mod:`stream_risk.core.alerting`
applies it to every rule. Tests drive it with tables of cases.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from stream_risk.schemas.outputs import LEVELS

RANK = {level: n for n, level in enumerate(LEVELS, start=1)}

PENDING, FIRING, MUTED, COOLING = "pending", "firing", "muted", "cooling"


@dataclass(frozen=True, slots=True)
class Episode:
    """Where one rule stands for one customer."""

    phase: str
    #: When the phase's episode began (pending: first held; firing: fired; cooling: resolved).
    since: float
    #: Level of the episode (firing: the highest emitted; cooling: the resolved one).
    level: str
    warning_id: str
    #: When the cooldown after the previous resolution ends, and that resolution's level.
    cool_until: float | None = None
    cool_level: str | None = None
    #: Why a muted episode is muted: ``cooldown`` or ``inhibited``.
    muted_by: str | None = None

    def to_list(self) -> list[Any]:
        """Compact JSON form for the customer state."""
        return [
            self.phase,
            self.since,
            self.level,
            self.warning_id,
            self.cool_until,
            self.cool_level,
            self.muted_by,
        ]

    @classmethod
    def from_list(cls, data: list[Any]) -> Episode:
        phase, since, level, wid, cool_until, cool_level, muted_by = (list(data) + [None] * 7)[:7]
        return cls(phase, float(since), level, wid, cool_until, cool_level, muted_by)


@dataclass(frozen=True, slots=True)
class Emit:
    """What a transition publishes: ``firing`` (new or escalated) or ``resolved``."""

    status: str
    level: str
    warning_id: str
    escalated: bool = False


def _cooling_left(ep: Episode | None, now: float) -> Episode | None:
    """What remains when a non-firing episode's condition clears: the cooldown, if running."""
    if ep is None or ep.cool_until is None or ep.cool_until <= now or ep.cool_level is None:
        return None
    return Episode(COOLING, ep.since, ep.cool_level, ep.warning_id, ep.cool_until, ep.cool_level)


def transition(
    ep: Episode | None,
    level: str | None,
    now: float,
    *,
    hold: float,
    cooldown: float,
    inhibited: bool,
    new_id: str,
) -> tuple[Episode | None, Emit | None]:
    """One evaluation of a rule for a customer.

    ``level`` is the level the condition holds at, or ``None`` when it does not
    hold; ``inhibited`` tells whether a critical warning of the rule's group is
    firing for the customer; ``new_id`` is the id a new episode gets.

    >>> ep, emit = transition(None, "high", 10.0, hold=0, cooldown=0, inhibited=False, new_id="w1")
    >>> ep.phase, emit
    ('firing', Emit(status='firing', level='high', warning_id='w1', escalated=False))
    >>> transition(ep, None, 20.0, hold=0, cooldown=0, inhibited=False, new_id="w2")[1].status
    'resolved'
    """
    if ep is not None and ep.phase == FIRING:
        if level is None:
            resolved = Emit("resolved", ep.level, ep.warning_id)
            if cooldown > 0:
                return Episode(
                    COOLING, now, ep.level, ep.warning_id, now + cooldown, ep.level
                ), resolved
            return None, resolved
        if RANK[level] > RANK[ep.level] and not (inhibited and level != "critical"):
            return replace(ep, level=level), Emit("firing", level, ep.warning_id, escalated=True)
        return ep, None

    if level is None:
        # Pending or muted episodes end silently; a running cooldown is kept.
        return _cooling_left(ep, now), None

    if ep is None or ep.phase == COOLING:
        cool_until = ep.cool_until if ep is not None else None
        cool_level = ep.cool_level if ep is not None else None
        if cool_until is not None and cool_until <= now:
            cool_until = cool_level = None
        ep = Episode(PENDING, now, level, new_id, cool_until, cool_level)
    elif ep.phase == PENDING:
        ep = replace(ep, level=level)
    if ep.phase == PENDING and now - ep.since < hold:
        return ep, None

    # Ready to fire (held long enough, or muted until now).
    cooling = ep.cool_until is not None and ep.cool_until > now and ep.cool_level is not None
    if cooling and RANK[level] <= RANK[ep.cool_level or "low"]:
        return replace(ep, phase=MUTED, level=level, muted_by="cooldown"), None
    if inhibited and level != "critical":
        return replace(ep, phase=MUTED, level=level, muted_by="inhibited"), None
    fired = Episode(FIRING, now, level, ep.warning_id)
    return fired, Emit("firing", level, ep.warning_id)


def due(ep: Episode, hold: float) -> float | None:
    """When the episode may change without its condition changing (for timers)."""
    if ep.phase == PENDING:
        return ep.since + hold
    if ep.phase == MUTED and ep.muted_by == "cooldown":
        return ep.cool_until
    return None
