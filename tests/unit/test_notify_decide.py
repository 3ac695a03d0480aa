"""The notifier's decisions, by tables of cases: routes, rate limits, should-notify, backoff."""

from __future__ import annotations

from typing import Any

import pytest

from stream_risk.notify.decide import (
    Decision,
    Subject,
    channels_for,
    decide,
    is_permanent_http_failure,
    rate_limited,
    route_matches,
)
from stream_risk.notify.routes import Match, RateLimit, RetryPolicy, Route

RETAIL_DACH = {"industry": "retail", "size": "large", "region": "DACH"}


def subject(level: str = "high", status: str = "firing", **kw: Any) -> Subject:
    return Subject(level=level, status=status, **kw)


@pytest.mark.parametrize(
    ("match", "subj", "expected"),
    [
        # Low warnings are not notified unless a route asks for them.
        ({}, subject("low"), False),
        ({}, subject("low", "resolved"), False),
        ({}, subject("medium"), True),
        ({"min_level": "low"}, subject("low"), True),
        ({"min_level": None}, subject("low"), True),
        ({"min_level": "high"}, subject("medium"), False),
        ({"min_level": "high"}, subject("high"), True),
        ({"min_level": "high"}, subject("critical"), True),
        ({"levels": ["low", "critical"]}, subject("high"), False),
        ({"levels": ["low", "critical"]}, subject("critical"), True),
        ({"status": ["firing"]}, subject(status="resolved"), False),
        ({"status": ["resolved"]}, subject(status="resolved"), True),
        ({"rules": ["overdue_90_days"]}, subject(rule="overdue_30_days"), False),
        ({"rules": ["overdue_90_days"]}, subject(rule="overdue_90_days"), True),
        ({"segment": {"region": "DACH"}}, subject(segment=RETAIL_DACH), True),
        ({"segment": {"region": "Nordics"}}, subject(segment=RETAIL_DACH), False),
        ({"segment": {"industry": ["retail", "wholesale"]}}, subject(segment=RETAIL_DACH), True),
        ({"segment": {"industry": ["wholesale"]}}, subject(segment=RETAIL_DACH), False),
        # A segment condition never matches a customer whose segment is unknown.
        ({"segment": {"region": "DACH"}}, subject(), False),
        ({"segment": {"region": "DACH"}}, subject(segment={"region": None}), False),
        ({"labels": {"team": "north"}}, subject(labels={"team": "north"}), True),
        ({"labels": {"team": ["south", "east"]}}, subject(labels={"team": "north"}), False),
        ({"labels": {"team": "north"}}, subject(), False),
        (
            {"min_level": "high", "segment": {"region": "DACH", "size": "large"}},
            subject("critical", segment=RETAIL_DACH),
            True,
        ),
        (
            {"min_level": "high", "segment": {"region": "DACH", "size": "sme"}},
            subject("critical", segment=RETAIL_DACH),
            False,
        ),
    ],
)
def test_route_matches(match: dict[str, Any], subj: Subject, expected: bool) -> None:
    assert route_matches(Match.model_validate(match), subj) is expected


ROUTES = [
    Route.model_validate(
        {
            "name": "critical",
            "match": {"min_level": "critical"},
            "channels": ["page", "mail"],
            "continue": True,
        }
    ),
    Route.model_validate(
        {"name": "dach", "match": {"segment": {"region": "DACH"}}, "channels": ["mail", "dach"]}
    ),
    Route.model_validate({"name": "rest", "match": {"min_level": "medium"}, "channels": ["hook"]}),
]


@pytest.mark.parametrize(
    ("subj", "expected"),
    [
        (subject("low"), []),
        (subject("medium"), ["hook"]),
        (subject("high", segment=RETAIL_DACH), ["mail", "dach"]),  # first match stops
        (subject("critical"), ["page", "mail", "hook"]),  # continue: true goes on
        (subject("critical", segment=RETAIL_DACH), ["page", "mail", "dach"]),  # each once
        (subject("low", segment=RETAIL_DACH), []),
    ],
)
def test_channels_for(subj: Subject, expected: list[str]) -> None:
    assert channels_for(ROUTES, subj) == expected


@pytest.mark.parametrize(
    ("sent_at", "limit", "now", "expected"),
    [
        ([], RateLimit(max=1, window_seconds=60), 1000.0, False),
        ([990.0], RateLimit(max=1, window_seconds=60), 1000.0, True),
        ([940.0], RateLimit(max=1, window_seconds=60), 1000.0, False),  # window is (940, 1000]
        ([941.0], RateLimit(max=1, window_seconds=60), 1000.0, True),
        ([950.0, 960.0], RateLimit(max=3, window_seconds=60), 1000.0, False),
        ([950.0, 960.0, 970.0], RateLimit(max=3, window_seconds=60), 1000.0, True),
        ([100.0, 950.0, 960.0], RateLimit(max=3, window_seconds=60), 1000.0, False),
        ([1001.0], RateLimit(max=1, window_seconds=60), 1000.0, False),  # not yet
        ([990.0] * 50, None, 1000.0, False),  # no limit
    ],
)
def test_rate_limited(
    sent_at: list[float], limit: RateLimit | None, now: float, expected: bool
) -> None:
    assert rate_limited(sent_at, limit, now) is expected


LIMIT = RateLimit(max=2, window_seconds=3600)
FULL = [100.0, 200.0]  # two sends within the hour before now=300


@pytest.mark.parametrize(
    ("status", "level", "done", "notified", "sent_at", "expected"),
    [
        # New warnings.
        ("firing", "high", False, None, [], Decision(True, kind="firing")),
        ("firing", "high", False, None, FULL, Decision(False, reason="rate_limited")),
        # Redelivery of what was sent (or dead-lettered): never twice.
        ("firing", "high", True, None, [], Decision(False, reason="duplicate")),
        ("firing", "high", True, "high", [], Decision(False, reason="duplicate")),
        ("resolved", "high", True, "high", [], Decision(False, reason="duplicate")),
        # Escalation: the same warning at a higher level.
        ("firing", "critical", False, "high", [], Decision(True, kind="escalated")),
        ("firing", "critical", False, "medium", FULL, Decision(False, reason="rate_limited")),
        # The same or a lower level again (e.g. a record that expired): nothing new to say.
        ("firing", "high", False, "high", [], Decision(False, reason="not_escalated")),
        ("firing", "medium", False, "critical", [], Decision(False, reason="not_escalated")),
        # Resolutions go where the firing went, rate limits or not.
        ("resolved", "high", False, "high", FULL, Decision(True, kind="resolved")),
        ("resolved", "critical", False, "high", [], Decision(True, kind="resolved")),
        ("resolved", "high", False, None, [], Decision(False, reason="never_notified")),
    ],
)
def test_decide(
    status: str,
    level: str,
    done: bool,
    notified: str | None,
    sent_at: list[float],
    expected: Decision,
) -> None:
    got = decide(
        status=status,
        level=level,
        already_done=done,
        notified_level=notified,
        sent_at=sent_at,
        limit=LIMIT,
        now=300.0,
    )
    assert got == expected


@pytest.mark.parametrize(
    ("policy", "delays"),
    [
        (RetryPolicy(attempts=5, base_seconds=1, max_seconds=60), [1.0, 2.0, 4.0, 8.0]),
        (RetryPolicy(attempts=5, base_seconds=0.5, max_seconds=1.5), [0.5, 1.0, 1.5, 1.5]),
        (RetryPolicy(attempts=1, base_seconds=1, max_seconds=1), []),
    ],
)
def test_backoff(policy: RetryPolicy, delays: list[float]) -> None:
    assert [policy.delay(n) for n in range(1, policy.attempts)] == delays
    assert policy.total_wait() == sum(delays)


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        (400, True),
        (401, True),
        (403, True),
        (404, True),
        (410, True),
        (422, True),
        (408, False),
        (425, False),
        (429, False),
        (500, False),
        (502, False),
        (503, False),
    ],
)
def test_permanent_http_failures(status: int, permanent: bool) -> None:
    assert is_permanent_http_failure(status) is permanent
