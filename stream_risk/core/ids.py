"""Deterministic ids: one digest for everything the engine names by its content.

Ids must be the same on every worker and every replay (re-processing an event
gives the same warning, action and change ids), so they are digests of what
identifies the thing, never random. The parts are joined by the ASCII unit
separator, which no customer id, rule name or timestamp contains.
"""

from __future__ import annotations

import hashlib

#: Joins the parts of an id: a character no part contains.
SEPARATOR = "\x1f"


def digest(data: bytes, *, size: int = 12) -> str:
    """Hex BLAKE2b digest of ``data``, ``size`` bytes long (twice as many characters).

    >>> digest(b"e-1", size=8)
    '317386494bf10d9f'
    """
    return hashlib.blake2b(data, digest_size=size).hexdigest()


def content_id(prefix: str, *parts: str, size: int = 12) -> str:
    """``prefix-<digest>`` of ``parts``: the same parts always give the same id.

    >>> content_id("w", "acme", "overdue_90_days", "2026-01-01T00:00:00+00:00")
    'w-9a8257ff98d980d397456713'
    >>> content_id("w", "a", "bc") != content_id("w", "ab", "c")
    True
    """
    return f"{prefix}-" + digest(SEPARATOR.join(parts).encode(), size=size)
