"""The notifier's decisions, as pure functions: no I/O, ``now`` passed in.

* :func:`channels_for`: which channels a warning goes to (the routes);
* :func:`decide`: for one channel, whether to send and as what (a new warning,
  an escalation, a resolution), or why not (a duplicate, no escalation, never
  notified, a rate limit);
* :func:`rate_limited`: whether a customer has had its share on a channel.

A notification-worthy event is identified by ``(warning_id, status, level)``:
a warning can fire, fire again at a higher level under the same id (an
escalation), and resolve.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from stream_risk.notify.routes import Match, RateLimit, Route
from stream_risk.schemas.outputs import LEVEL_ORDER

Kind = Literal["firing", "escalated", "resolved"]
SkipReason = Literal["duplicate", "not_escalated", "never_notified", "rate_limited"]


@dataclass(frozen=True)
class Subject:
    """What routes match on: the warning and its customer's segment and labels."""

    level: str
    status: str
    rule: str = ""
    segment: Mapping[str, str | None] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)


def _allowed(wanted: str | list[str], actual: str | None) -> bool:
    if actual is None:
        return False
    return actual == wanted if isinstance(wanted, str) else actual in wanted


def route_matches(match: Match, subject: Subject) -> bool:
    """True when every condition of ``match`` holds for ``subject``.

    >>> route_matches(Match(min_level="high"), Subject(level="critical", status="firing"))
    True
    >>> route_matches(Match(segment={"region": "DACH"}), Subject(level="low", status="firing"))
    False
    """
    if subject.status not in match.status:
        return False
    if match.levels is not None and subject.level not in match.levels:
        return False
    if (
        match.min_level is not None
        and LEVEL_ORDER.get(subject.level, 0) < LEVEL_ORDER[match.min_level]
    ):
        return False
    if match.rules is not None and subject.rule not in match.rules:
        return False
    for key, wanted in match.segment.items():
        if not _allowed(wanted, subject.segment.get(key)):
            return False
    return all(_allowed(wanted, subject.labels.get(key)) for key, wanted in match.labels.items())


def channels_for(routes: Sequence[Route], subject: Subject) -> list[str]:
    """Channels for ``subject``, in route order, each once.

    Routes are tried in order; the first that matches decides, unless it says
    ``continue: true``, in which case later routes are tried as well.
    """
    out: list[str] = []
    for route in routes:
        if not route_matches(route.match, subject):
            continue
        out.extend(c for c in route.channels if c not in out)
        if not route.continue_:
            break
    return out


def rate_limited(sent_at: Sequence[float], limit: RateLimit | None, now: float) -> bool:
    """True when ``limit`` notifications were already sent in the window ending at ``now``.

    ``sent_at`` are the times of earlier notifications of this customer on this
    channel; only those in ``(now - window, now]`` count.

    >>> limit = RateLimit(max=2, window_seconds=150)
    >>> rate_limited([100.0, 200.0], limit, now=249.0)
    True
    >>> rate_limited([100.0, 200.0], limit, now=251.0)  # the first left the window
    False
    """
    if limit is None:
        return False
    start = now - limit.window_seconds
    return sum(1 for t in sent_at if start < t <= now) >= limit.max


@dataclass(frozen=True)
class Decision:
    """Send as ``kind``, or skip for ``reason``."""

    send: bool
    kind: Kind | None = None
    reason: SkipReason | None = None


def decide(
    *,
    status: str,
    level: str,
    already_done: bool,
    notified_level: str | None,
    sent_at: Sequence[float],
    limit: RateLimit | None,
    now: float,
) -> Decision:
    """Whether one channel should hear of one ``(warning_id, status, level)``.

    Parameters
    ----------
    status, level
        The warning's status (``firing`` or ``resolved``) and level.
    already_done
        This exact ``(warning_id, status, level)`` was already delivered (or
        dead-lettered) on this channel: a redelivery.
    notified_level
        The highest level at which this warning's firing reached the channel,
        or ``None`` when the channel never heard of it.
    sent_at, limit, now
        Earlier notification times of the customer on the channel, the
        channel's rate limit, and the current time.

    A firing warning is sent when the channel has not heard of it yet, or as
    an escalation when its level is above the one the channel heard; both are
    rate limited. A resolution is sent only where the firing was (so it is
    never a surprise) and is never rate limited: it closes what was opened.
    """
    if already_done:
        return Decision(False, reason="duplicate")
    if status == "resolved":
        if notified_level is None:
            return Decision(False, reason="never_notified")
        return Decision(True, kind="resolved")
    kind: Kind = "firing"
    if notified_level is not None:
        if LEVEL_ORDER.get(level, 0) <= LEVEL_ORDER.get(notified_level, 0):
            return Decision(False, reason="not_escalated")
        kind = "escalated"
    if rate_limited(sent_at, limit, now):
        return Decision(False, reason="rate_limited")
    return Decision(True, kind=kind)


def is_permanent_http_failure(status: int) -> bool:
    """HTTP statuses no retry can fix: client errors other than timeouts and throttling.

    >>> [is_permanent_http_failure(s) for s in (400, 404, 408, 429, 500, 503)]
    [True, True, False, False, False, False]
    """
    return 400 <= status < 500 and status not in (408, 425, 429)
