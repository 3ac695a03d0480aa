"""What the notifier remembers in Redis, per consumer group.

Keys (``<redis prefix>:notify:<group>:...``):

* ``done:<warning_id>:<status>:<level>:<channel>``: the notification's state.
  Before the first attempt the notifier *reserves* it, ``sending|<consumer>|<token>``
  with a lease (``SET NX PX``): one notifier at a time tries a notification.
  After the channel accepted it (or it went to the dead-letter topic) the value
  becomes ``sent`` (or ``dead-lettered``) with the idempotency TTL; a
  redelivered warning finds it and is not sent again.

  A reservation still there means its holder stopped between reserving and
  recording: whether the channel got the notification is unknown. It is taken
  over (and the notification sent again, with the same idempotency key) at once
  by the next process of the same consumer name (``token`` differs: the holder
  is dead, as consumer names are unique among running notifiers), and by any
  other consumer once the lease has expired.
* ``fired:<warning_id>``: hash, channel -> highest level whose firing was
  sent there (to tell an escalation from a repeat, and to send a resolution
  only where the firing went);
* ``rate:<customer_id>:<channel>``: sorted set of send times (the rate limit);
* ``suppressed``: hash, channel -> notifications suppressed by rate limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

SENT = "sent"
DEAD_LETTERED = "dead-lettered"
RESERVED_PREFIX = "sending|"

# Reserve unless done or held by a live holder; one round trip, atomic.
# ARGV: holder value, lease ms, prefix of this consumer's reservations.
_RESERVE = """
local v = redis.call('GET', KEYS[1])
if (not v) or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {'reserved', ''}
end
if string.sub(v, 1, string.len('sending|')) ~= 'sending|' then
  return {'done', v}
end
if string.sub(v, 1, string.len(ARGV[3])) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {'taken-over', v}
end
return {'busy', v}
"""
# Delete or extend a reservation only while it is still ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

Reservation = Literal["reserved", "taken-over", "done", "busy"]


def holder_value(consumer: str, token: str) -> str:
    """What a reservation holds: who reserved, and which process of that consumer.

    >>> holder_value("notifier-1", "9f2c")
    'sending|notifier-1|9f2c'
    """
    return f"{RESERVED_PREFIX}{consumer}|{token}"


def is_done(value: str | None) -> bool:
    """A final state (sent or dead-lettered), not a reservation.

    >>> [is_done(v) for v in ("sent", "dead-lettered", "sending|n|t", None)]
    [True, True, False, False]
    """
    return value is not None and not value.startswith(RESERVED_PREFIX)


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
        pipe.get(self.done_key(key))
        pipe.hget(self.fired_key(warning_id), channel)
        if window_seconds is not None:
            pipe.zrangebyscore(
                self.rate_key(customer_id, channel), now - window_seconds, "+inf", withscores=True
            )
        replies = await pipe.execute()
        sent_at = [float(score) for _, score in replies[2]] if window_seconds is not None else []
        return ChannelRecord(is_done(_text(replies[0])), _text(replies[1]), sent_at)

    async def reserve(
        self, key: str, consumer: str, token: str, lease_seconds: float
    ) -> tuple[Reservation, str | None]:
        """Reserve a notification before its first attempt; the outcome and the value found.

        ``reserved``: it is ours (new, or ours already); ``taken-over``: a
        reservation of a dead process of this consumer was replaced (the
        notification may have reached the channel); ``done``: already sent or
        dead-lettered; ``busy``: another live holder's lease runs.
        """
        outcome, found = await self._client.eval(
            _RESERVE,
            1,
            self.done_key(key),
            holder_value(consumer, token),
            max(int(lease_seconds * 1000), 1),
            f"{RESERVED_PREFIX}{consumer}|",
        )
        text = _text(found)
        return _text(outcome), text or None  # type: ignore[return-value]

    async def release(self, key: str, consumer: str, token: str) -> None:
        """Drop our reservation (we stop before knowing the outcome; others may retry)."""
        await self._client.eval(_RELEASE, 1, self.done_key(key), holder_value(consumer, token))

    async def extend(self, key: str, consumer: str, token: str, lease_seconds: float) -> bool:
        """Renew our reservation's lease; ``False`` when it is no longer ours."""
        ms = max(int(lease_seconds * 1000), 1)
        found = await self._client.eval(
            _EXTEND, 1, self.done_key(key), holder_value(consumer, token), ms
        )
        return bool(found)

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
        """After a successful send: the idempotency record (replacing the reservation),
        the fired level, the rate entry, in one transaction."""
        pipe = self._client.pipeline(transaction=True)
        pipe.set(self.done_key(key), SENT, ex=self.ttl_seconds)
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
        await self._client.set(self.done_key(key), DEAD_LETTERED, ex=self.ttl_seconds)

    async def count_suppressed(self, channel: str) -> int:
        return int(await self._client.hincrby(f"{self.base}:suppressed", channel, 1))

    async def suppressed(self) -> dict[str, int]:
        raw = await self._client.hgetall(f"{self.base}:suppressed")
        return {str(_text(k)): int(v) for k, v in raw.items()}
