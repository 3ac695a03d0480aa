"""Query parameters of the read endpoints, parsed and validated (pure).

``GET /warnings`` reads the warnings stream newest first. Filters: ``level``
and ``status`` (repeatable or comma separated), ``customer_id``, ``segment``
(``dimension:value`` with dimension ``industry``, ``size`` or ``region``;
repeatable, all must match), ``since`` and ``until`` (RFC 3339 timestamps
with an offset, on the time the warning was published). Pages: ``limit``
(1..500, default 50) and ``cursor`` (the ``next_cursor`` of the previous
page).

>>> q = parse_warning_query({"level": ["high,critical"], "segment": ["region:DACH"]})
>>> sorted(q.levels), q.segments, q.limit
(['critical', 'high'], (('region', 'DACH'),), 50)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stream_risk.api.problems import Problem
from stream_risk.schemas.outputs import LEVELS as LEVELS

STATUSES = ("firing", "resolved")
SEGMENT_DIMENSIONS = ("industry", "size", "region")
MAX_LIMIT = 500
#: A Redis stream entry id: milliseconds and a sequence number.
_ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


@dataclass(frozen=True, slots=True)
class WarningQuery:
    """A validated ``GET /warnings`` query."""

    levels: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()
    customer_id: str | None = None
    #: (dimension, value) pairs that must all match the customer's segment.
    segments: tuple[tuple[str, str], ...] = ()
    #: Publication time bounds, epoch milliseconds, inclusive.
    since_ms: int | None = None
    until_ms: int | None = None
    cursor: str | None = None
    limit: int = 50

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Whether a stream entry's fields pass the level, status and customer filters.

        >>> WarningQuery(levels=frozenset({"high"})).matches({"level": "low", "status": "firing"})
        False
        """
        if self.levels and fields.get("level") not in self.levels:
            return False
        if self.statuses and fields.get("status") not in self.statuses:
            return False
        return self.customer_id is None or fields.get("customer_id") == self.customer_id

    def segment_matches(self, features: Mapping[str, Any]) -> bool:
        """Whether a customer's features (``segment_<dimension>``) pass the segment filter.

        >>> q = WarningQuery(segments=(("industry", "retail"),))
        >>> q.segment_matches({"segment_industry": "retail"}), q.segment_matches({})
        (True, False)
        """
        return all(features.get(f"segment_{dim}") == value for dim, value in self.segments)


class _Errors:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, name: str, message: str) -> None:
        self.items.append({"field": name, "message": message})

    def raise_any(self) -> None:
        if self.items:
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in self.items)
            raise Problem(400, "invalid-request", detail, errors=self.items)


def _values(params: Mapping[str, Sequence[str]], name: str) -> list[str]:
    return [v.strip() for raw in params.get(name, ()) for v in raw.split(",") if v.strip()]


def _choices(
    params: Mapping[str, Sequence[str]], name: str, allowed: Sequence[str], errors: _Errors
) -> frozenset[str]:
    values = _values(params, name)
    bad = [v for v in values if v not in allowed]
    if bad:
        errors.add(name, f"unknown value(s) {', '.join(bad)}; expected one of {', '.join(allowed)}")
    return frozenset(values)


def _one(params: Mapping[str, Sequence[str]], name: str, errors: _Errors) -> str | None:
    values = list(params.get(name, ()))
    if len(values) > 1:
        errors.add(name, "give it at most once")
    return values[0] if values else None


def parse_timestamp_ms(text: str) -> int:
    """RFC 3339 timestamp with an offset -> epoch milliseconds; ``ValueError`` otherwise.

    >>> parse_timestamp_ms("2026-03-01T00:00:00Z")
    1772323200000
    >>> parse_timestamp_ms("2026-03-01T00:00:00")
    Traceback (most recent call last):
    ...
    ValueError: needs an RFC 3339 timestamp with an offset, e.g. 2026-03-01T00:00:00Z
    """
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ValueError("needs an RFC 3339 timestamp with an offset, e.g. 2026-03-01T00:00:00Z")
    return int(parsed.timestamp() * 1000)


def parse_limit(raw: str | None, errors: _Errors, default: int = 50) -> int:
    if raw is None:
        return default
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        errors.add("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
        return default
    return limit


def parse_warning_query(params: Mapping[str, Sequence[str]]) -> WarningQuery:
    """Validate the query string of ``GET /warnings``; a 400 :class:`Problem` lists every fault.

    >>> parse_warning_query({"level": ["severe"], "limit": ["0"]})
    Traceback (most recent call last):
    ...
    stream_risk.api.problems.Problem: level: unknown value(s) severe; expected one of low, \
medium, high, critical; limit: must be a whole number from 1 to 500
    """
    errors = _Errors()
    known = {"level", "status", "customer_id", "segment", "since", "until", "cursor", "limit"}
    for name in sorted(set(params) - known):
        errors.add(name, f"unknown parameter; known: {', '.join(sorted(known))}")
    levels = _choices(params, "level", LEVELS, errors)
    statuses = _choices(params, "status", STATUSES, errors)
    segments = []
    for value in params.get("segment", ()):
        dim, sep, wanted = value.partition(":")
        if not sep or dim not in SEGMENT_DIMENSIONS or not wanted:
            errors.add(
                "segment",
                f"{value!r} is not dimension:value with dimension one of "
                f"{', '.join(SEGMENT_DIMENSIONS)} (e.g. industry:retail)",
            )
        else:
            segments.append((dim, wanted))
    bounds: dict[str, int | None] = {}
    for name in ("since", "until"):
        raw = _one(params, name, errors)
        bounds[name] = None
        if raw is not None:
            try:
                bounds[name] = parse_timestamp_ms(raw)
            except ValueError as exc:
                errors.add(name, str(exc))
    cursor = _one(params, "cursor", errors)
    if cursor is not None and not _ENTRY_ID.match(cursor):
        errors.add("cursor", "not a cursor from a previous page's next_cursor")
    customer_id = _one(params, "customer_id", errors)
    if customer_id is not None and not 1 <= len(customer_id) <= 200:
        errors.add("customer_id", "must be 1 to 200 characters")
    limit = parse_limit(_one(params, "limit", errors), errors)
    since, until = bounds["since"], bounds["until"]
    if since is not None and until is not None and since > until:
        errors.add("since", "is after until")
    errors.raise_any()
    return WarningQuery(
        levels=levels,
        statuses=statuses,
        customer_id=customer_id,
        segments=tuple(segments),
        since_ms=since,
        until_ms=until,
        cursor=cursor,
        limit=limit,
    )


def parse_page_limit(params: Mapping[str, Sequence[str]], default: int) -> int:
    """The ``limit`` of a simple list endpoint (and nothing else is accepted).

    >>> parse_page_limit({"limit": ["10"]}, 20), parse_page_limit({}, 20)
    (10, 20)
    """
    errors = _Errors()
    for name in sorted(set(params) - {"limit"}):
        errors.add(name, "unknown parameter; known: limit")
    limit = parse_limit(_one(params, "limit", errors), errors, default)
    errors.raise_any()
    return limit
