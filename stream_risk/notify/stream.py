"""Read the Redis warnings stream as a consumer group: every warning once per subscriber.

Each subscribing service uses its own consumer group on ``<prefix>:warnings``
(the worker appends one entry per ``(warning_id, status)``), so each service
gets every warning, and the consumers of one service share them. An entry
stays pending in the group until it is acknowledged; :class:`WarningStreamReader`
hands out, in this order:

1. after a start (or after a Redis error), this consumer's own pending
   entries: what it read but did not acknowledge before it stopped or crashed;
2. entries another consumer of the group left pending for longer than
   ``claim_idle_seconds`` (``XAUTOCLAIM``): that consumer is presumed dead;
3. new entries (``XREADGROUP ... >``), blocking up to ``block_ms``.

Acknowledge with :meth:`WarningStreamReader.ack` only when an entry is fully
handled; an entry that is never acknowledged is delivered again. So a
subscriber that is killed resumes where it was, with nothing lost; making the
handling itself idempotent (the notifier keeps records in Redis) keeps the
entries handled before the crash from being handled twice.

Usage::

    reader = WarningStreamReader("redis://127.0.0.1:6379/0", "risk:warnings",
                                 group="dashboard", consumer="dashboard-1")
    await reader.setup()
    while True:
        entries = await reader.read()
        for entry in entries:
            show(entry.warning)
        await reader.ack([e.entry_id for e in entries])
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamEntry:
    """One stream entry: its id, the decoded warning (``None`` if unreadable), raw fields."""

    entry_id: str
    warning: dict[str, Any] | None
    fields: dict[str, str]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def decode_entry(entry_id: Any, fields: Any) -> StreamEntry:
    """A stream entry as redis-py returns it (bytes or str) -> :class:`StreamEntry`.

    >>> e = decode_entry(b"1-0", {b"warning": b'{"warning_id": "w-1"}', b"status": b"firing"})
    >>> e.entry_id, e.warning, e.fields["status"]
    ('1-0', {'warning_id': 'w-1'}, 'firing')
    >>> decode_entry("2-0", None).warning is None  # trimmed from the stream while pending
    True
    """
    decoded = {_text(k): _text(v) for k, v in (fields or {}).items()}
    warning: dict[str, Any] | None = None
    raw = decoded.get("warning")
    if raw is not None:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = None
        warning = value if isinstance(value, dict) else None
    return StreamEntry(_text(entry_id), warning, decoded)


class WarningStreamReader:
    """A consumer of one consumer group on the warnings stream.

    Parameters
    ----------
    url, stream
        Redis URL and stream key (``<redis prefix>:warnings``).
    group, consumer
        The subscribing service (one group each) and this process within it
        (a stable name lets a restarted process take back its own pending entries).
    start
        Where a *new* group starts: ``"$"`` (only warnings appended from now on)
        or ``"0"`` (everything still in the stream). An existing group keeps its place.
    count, block_ms
        Most entries per read, and how long a read waits for new ones.
    claim_idle_seconds
        Take over entries another consumer has held unacknowledged this long.
    """

    def __init__(
        self,
        url: str,
        stream: str,
        group: str,
        consumer: str,
        *,
        start: str = "$",
        count: int = 100,
        block_ms: int = 1000,
        claim_idle_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.start = start
        self.count = count
        self.block_ms = block_ms
        self.claim_idle_seconds = claim_idle_seconds
        self._clock = clock
        self._client: Any = None
        self._own_cursor: str | None = "0"
        self._claim_cursor = "0-0"
        self._next_claim = 0.0
        self.claimed = 0

    async def setup(self) -> None:
        """Create the client and, if it does not exist yet, the consumer group."""
        if self._client is None:
            import redis.asyncio as aioredis

            self._client = aioredis.from_url(
                self.url,
                socket_timeout=max(5.0, self.block_ms / 1000 + 5),
                socket_connect_timeout=5,
            )
        await self.ensure_group()

    async def ensure_group(self) -> None:
        from redis.exceptions import ResponseError

        try:
            await self._client.xgroup_create(self.stream, self.group, id=self.start, mkstream=True)
            log.info("created consumer group %s on %s at %s", self.group, self.stream, self.start)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def restart(self) -> None:
        """Hand out this consumer's pending entries again first (after an error)."""
        self._own_cursor = "0"

    async def read(self) -> list[StreamEntry]:
        """The next entries to handle (possibly none after ``block_ms``)."""
        from redis.exceptions import ResponseError

        try:
            return await self._read()
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # The stream or the group was deleted under us: recreate and start over.
            log.warning("consumer group %s on %s vanished; recreating it", self.group, self.stream)
            await self.ensure_group()
            self.restart()
            return []

    async def _read(self) -> list[StreamEntry]:
        if self._own_cursor is not None:
            own = await self._client.xreadgroup(
                self.group, self.consumer, {self.stream: self._own_cursor}, count=self.count
            )
            entries = [decode_entry(i, f) for i, f in (own[0][1] if own else [])]
            if entries:
                self._own_cursor = entries[-1].entry_id
                return entries
            self._own_cursor = None
        now = self._clock()
        if now >= self._next_claim:
            claimed = await self._claim()
            if claimed:
                return claimed
            self._next_claim = now + max(self.claim_idle_seconds / 2, 0.1)
        new = await self._client.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=self.count, block=self.block_ms
        )
        return [decode_entry(i, f) for i, f in (new[0][1] if new else [])]

    async def _claim(self) -> list[StreamEntry]:
        """Take over entries idle longer than ``claim_idle_seconds`` (one page)."""
        reply = await self._client.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=int(self.claim_idle_seconds * 1000),
            start_id=self._claim_cursor,
            count=self.count,
        )
        cursor, raw = reply[0], reply[1]
        self._claim_cursor = _text(cursor)
        # Entries trimmed from the stream while pending are dropped from the group by Redis.
        entries = [decode_entry(i, f) for i, f in raw if f is not None]
        if entries:
            self.claimed += len(entries)
            log.warning(
                "%s took over %d warnings left pending by another consumer of %s",
                self.consumer,
                len(entries),
                self.group,
            )
        return entries

    async def ack(self, entry_ids: Sequence[str]) -> int:
        """Acknowledge handled entries; returns how many were pending."""
        if not entry_ids:
            return 0
        return int(await self._client.xack(self.stream, self.group, *entry_ids))

    async def pending(self) -> int:
        """Entries of the group delivered but not acknowledged."""
        info = await self._client.xpending(self.stream, self.group)
        return int(info["pending"])

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
