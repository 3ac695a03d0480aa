"""The Redis sink: profile hashes, the warnings stream, a live channel, a score ranking.

Layout (all keys configurable by prefix):

* ``risk:profile:{customer_id}``: hash with ``customer_id``, ``risk_score``,
  ``tier``, ``updated_at``, ``features`` (JSON) and ``active_warnings`` (JSON);
* ``risk:warnings``: stream, one entry per warning (and per resolution), with
  the warning as JSON in the ``warning`` field;
* ``risk:warnings:live``: pub/sub channel carrying the same JSON;
* ``risk:scores``: sorted set of customer ids by ``risk_score``;
* ``risk:history:{customer_id}``: list, the customer's latest profile snapshots
  (score, tier and a few headline features, JSON), oldest first, capped.

Writes are idempotent: a warning is appended once per ``(warning_id, status, level)``
(a server-side check with a TTL), so redeliveries after a crash do not repeat it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from stream_risk.backoff import Backoff, LogGate
from stream_risk.core.units import DAY

log = logging.getLogger(__name__)

# Append a warning unless its (id, status) was seen: one round trip, atomic.
_APPEND_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'warning', ARGV[3],
             'warning_id', ARGV[4], 'customer_id', ARGV[5], 'level', ARGV[6], 'status', ARGV[7])
  redis.call('PUBLISH', KEYS[3], ARGV[3])
  return 1
end
return 0
"""

#: Features kept in each history snapshot (what the dashboard charts).
HISTORY_FEATURES = ("days_past_due", "credit_utilisation", "overdue_balance", "open_balance")


class RedisSink:
    """Writes warnings and profiles to Redis in one pipeline per batch.

    No I/O happens in the constructor; :meth:`setup` creates the client.
    """

    def __init__(
        self,
        url: str,
        prefix: str = "risk",
        stream_maxlen: int = 100_000,
        dedup_ttl_seconds: int = int(7 * DAY),
        max_backoff: float = 30.0,
        history_length: int = 200,
        log_interval: float = 30.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.stream_maxlen = stream_maxlen
        self.dedup_ttl_seconds = dedup_ttl_seconds
        self.max_backoff = max_backoff
        self.history_length = history_length
        self.stream_key = f"{prefix}:warnings"
        self.channel = f"{prefix}:warnings:live"
        self.scores_key = f"{prefix}:scores"
        self._client: Any = None
        self._append: Any = None
        # One gate for the sink: an outage logs one line per interval, not per batch.
        self._gate = LogGate(log_interval)
        self.retries = 0
        self.written_warnings = 0
        self.written_profiles = 0
        self.write_errors = 0

    def profile_key(self, customer_id: str) -> str:
        return f"{self.prefix}:profile:{customer_id}"

    def history_key(self, customer_id: str) -> str:
        return f"{self.prefix}:history:{customer_id}"

    async def setup(self) -> None:
        """Create the client (connections are opened lazily)."""
        if self._client is not None:
            return
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:  # pragma: no cover - redis is a dependency
            raise ImportError(
                "the Redis sink needs the 'redis' package: pip install redis"
            ) from exc
        self._client = aioredis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)
        self._append = self._client.register_script(_APPEND_ONCE)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def write(self, warnings: list[bytes], profiles: list[bytes]) -> None:
        """Write one batch: warnings (JSON bytes) and profiles (JSON bytes)."""
        if self._client is None:
            await self.setup()
        if not warnings and not profiles:
            return
        pipe = self._client.pipeline(transaction=False)
        for raw in warnings:
            w = orjson.loads(raw)
            # An escalation re-fires the same warning at a higher level: a new entry.
            seen = f"{self.prefix}:warning-seen:{w['warning_id']}:{w['status']}:{w['level']}"
            await self._append(
                keys=[seen, self.stream_key, self.channel],
                args=[
                    self.dedup_ttl_seconds,
                    self.stream_maxlen,
                    raw,
                    w["warning_id"],
                    w["customer_id"],
                    w["level"],
                    w["status"],
                ],
                client=pipe,
            )
        scores: dict[str, float] = {}
        for raw in profiles:
            p = orjson.loads(raw)
            pipe.hset(
                self.profile_key(p["customer_id"]),
                mapping={
                    "customer_id": p["customer_id"],
                    "risk_score": p["risk_score"],
                    "tier": p["tier"],
                    "updated_at": p["updated_at"],
                    "features": orjson.dumps(p["features"]),
                    "active_warnings": orjson.dumps(p["active_warnings"]),
                },
            )
            scores[p["customer_id"]] = p["risk_score"]
            if self.history_length:
                history = self.history_key(p["customer_id"])
                pipe.rpush(history, orjson.dumps(history_entry(p)))
                pipe.ltrim(history, -self.history_length, -1)
        if scores:
            pipe.zadd(self.scores_key, scores)
        await pipe.execute()
        self.written_warnings += len(warnings)
        self.written_profiles += len(profiles)

    async def write_until_done(
        self,
        warnings: list[bytes],
        profiles: list[bytes],
        sleep: Callable[[float], Awaitable[Any]],
    ) -> None:
        """Write the batch, retrying with jittered exponential backoff while Redis is
        unavailable, logging at most one line per ``log_interval`` seconds.

        Kafka offsets are not committed meanwhile, so nothing is lost: the
        warnings stay on the warnings topic and the sink catches up.
        """
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        backoff = Backoff(base=0.5, cap=self.max_backoff)
        while True:
            try:
                await self.write(warnings, profiles)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                delay = backoff.next()
                self.retries += 1
                self.write_errors += 1
                if self._gate.allow(time.monotonic()):
                    skipped = self._gate.take_swallowed()
                    log.warning(
                        "Redis unavailable (%s); %d warnings and %d profiles wait on Kafka, "
                        "retry %d in %.1fs%s",
                        exc,
                        len(warnings),
                        len(profiles),
                        backoff.failures,
                        delay,
                        f" ({skipped} more failures not logged)" if skipped else "",
                    )
                await sleep(delay)
                continue
            if backoff.failures:
                self._gate.reset()
                log.warning("Redis is back after %d failed attempts; catching up", backoff.failures)
            return


def history_entry(profile: dict[str, Any]) -> dict[str, Any]:
    """The snapshot of a profile kept in the customer's history list.

    >>> entry = history_entry({"updated_at": "2026-01-01T00:00:00+00:00", "risk_score": 0.2,
    ...     "tier": "low", "features": {"days_past_due": 3}, "active_warnings": []})
    >>> entry["days_past_due"], entry["active_warnings"]
    (3, 0)
    """
    features = profile["features"]
    entry = {
        "at": profile["updated_at"],
        "risk_score": profile["risk_score"],
        "tier": profile["tier"],
        "active_warnings": len(profile["active_warnings"]),
    }
    for name in HISTORY_FEATURES:
        entry[name] = features.get(name)
    return entry
