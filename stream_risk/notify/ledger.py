"""What the notifier remembers in Redis, per consumer group.

Keys (``<redis prefix>:notify:<group>:...``):

* ``done:<warning_id>:<status>:<level>:<channel>``: string ``sent`` or
  ``dead-lettered``, set with ``SET NX`` and a TTL only *after* the
  notification was accepted by the channel (or written to the dead-letter
  topic); a redelivered warning finds it and is not sent again;
* ``fired:<warning_id>``: hash, channel -> highest level whose firing was
  sent there (to tell an escalation from a repeat, and to send a resolution
  only where the firing went);
* ``rate:<customer_id>:<channel>``: sorted set of send times (the rate limit);
* ``suppressed``: hash, channel -> notifications suppressed by rate limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ChannelRecord:
    """What the ledger knows about one warning event on one channel."""

    done: bool
    notified_level: str | None
    sent_at: list[float]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


class Ledger:
    """Idempotency records, fired levels and rate counters (no I/O in the constructor)."""

    def __init__(
        self, client: Any, prefix: str, group: str, ttl_seconds: int, rate_window_seconds: float
    ) -> None:
        self._client = client
        self.base = f"{prefix}:notify:{group}"
        self.ttl_seconds = ttl_seconds
        # Rate sets live as long as the longest window any channel uses.
        self.rate_ttl = max(int(rate_window_seconds) + 1, 60)

    def done_key(self, key: str) -> str:
        return f"{self.base}:done:{key}"

    def fired_key(self, warning_id: str) -> str:
        return f"{self.base}:fired:{warning_id}"

    def rate_key(self, customer_id: str, channel: str) -> str:
        return f"{self.base}:rate:{customer_id}:{channel}"

    async def lookup(
        self,
        key: str,
        warning_id: str,
        customer_id: str,
        channel: str,
        window_seconds: float | None,
        now: float,
    ) -> ChannelRecord:
        """One round trip: is it done, what level did the channel hear, recent send times."""
        pipe = self._client.pipeline(transaction=False)
        pipe.exists(self.done_key(key))
        pipe.hget(self.fired_key(warning_id), channel)
        if window_seconds is not None:
            pipe.zrangebyscore(
                self.rate_key(customer_id, channel), now - window_seconds, "+inf", withscores=True
            )
        replies = await pipe.execute()
        sent_at = [float(score) for _, score in replies[2]] if window_seconds is not None else []
        return ChannelRecord(bool(replies[0]), _text(replies[1]), sent_at)

    async def record_sent(
        self,
        key: str,
        warning_id: str,
        customer_id: str,
        channel: str,
        status: str,
        level: str,
        now: float,
    ) -> None:
        """After a successful send: the idempotency record, the fired level, the rate entry."""
        pipe = self._client.pipeline(transaction=True)
        pipe.set(self.done_key(key), "sent", nx=True, ex=self.ttl_seconds)
        if status == "firing":
            pipe.hset(self.fired_key(warning_id), channel, level)
            pipe.expire(self.fired_key(warning_id), self.ttl_seconds)
            rate = self.rate_key(customer_id, channel)
            pipe.zadd(rate, {key: now})
            pipe.zremrangebyscore(rate, "-inf", now - self.rate_ttl)
            pipe.expire(rate, self.rate_ttl)
        await pipe.execute()

    async def record_dead_lettered(self, key: str) -> None:
        """After the notification went to the dead-letter topic: do not try it again."""
        await self._client.set(self.done_key(key), "dead-lettered", nx=True, ex=self.ttl_seconds)

    async def count_suppressed(self, channel: str) -> int:
        return int(await self._client.hincrby(f"{self.base}:suppressed", channel, 1))

    async def suppressed(self) -> dict[str, int]:
        raw = await self._client.hgetall(f"{self.base}:suppressed")
        return {str(_text(k)): int(v) for k, v in raw.items()}
