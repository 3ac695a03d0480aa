"""Reads the API serves from Redis: profiles, the warnings stream, the score ranking, history.

The layout is the Redis sink's (:mod:`stream_risk.sinks.redis`). No I/O happens in
the constructor; :meth:`RiskStore.setup` creates the client.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson

from stream_risk.api.queries import WarningQuery
from stream_risk.schemas.outputs import LEVELS, TIERS
from stream_risk.sinks.redis import RedisSink

#: Stream entries read per round trip while scanning.
SCAN_CHUNK = 500


def decode_profile(fields: Mapping[str, str]) -> dict[str, Any]:
    """A profile hash as the risk profile of the contract.

    >>> decode_profile({"customer_id": "c", "risk_score": "0.5", "tier": "medium",
    ...     "updated_at": "2026-01-01T00:00:00+00:00", "features": '{"dso": 3}',
    ...     "active_warnings": '["w-1"]'})["features"]
    {'dso': 3}
    """
    return {
        "customer_id": fields["customer_id"],
        "risk_score": float(fields.get("risk_score", 0.0)),
        "tier": fields.get("tier", "low"),
        "features": orjson.loads(fields.get("features", "{}")),
        "active_warnings": orjson.loads(fields.get("active_warnings", "[]")),
        "updated_at": fields.get("updated_at"),
    }


class _Recent(OrderedDict[str, str]):
    """A bounded map warning_id -> customer_id of warnings seen lately."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def remember(self, warning_id: str, customer_id: str) -> None:
        self[warning_id] = customer_id
        self.move_to_end(warning_id)
        while len(self) > self.capacity:
            self.popitem(last=False)


class RiskStore:
    """Async reads of the sink's Redis layout under ``prefix``.

    Parameters
    ----------
    url, prefix : str
        Redis URL and key prefix (``STREAM_RISK_REDIS_URL``, ``STREAM_RISK_REDIS_PREFIX``).
    scan_budget : int
        Most stream entries one request reads while filtering; a page that hits it
        returns what it found with a cursor to go on from.
    summary_ttl : float
        Seconds a computed summary is reused (it reads every profile's tier).
    """

    def __init__(
        self,
        url: str,
        prefix: str,
        scan_budget: int = 20_000,
        summary_ttl: float = 5.0,
    ) -> None:
        self.url = url
        self.keys = RedisSink(url, prefix=prefix)
        self.scan_budget = scan_budget
        self.summary_ttl = summary_ttl
        self.recent = _Recent(100_000)
        self._client: Any = None
        self._summary: tuple[float, dict[str, Any]] | None = None

    async def setup(self) -> None:
        """Create the client (connections open lazily)."""
        if self._client is None:
            import redis.asyncio as aioredis

            self._client = aioredis.from_url(
                self.url, decode_responses=True, socket_timeout=5, socket_connect_timeout=3
            )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("RiskStore.setup() was not called")
        return self._client

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def profile(self, customer_id: str) -> dict[str, Any] | None:
        """The customer's risk profile, or ``None`` when none was published."""
        fields = await self.client.hgetall(self.keys.profile_key(customer_id))
        return decode_profile(fields) if fields else None

    async def history(self, customer_id: str, limit: int) -> list[dict[str, Any]]:
        """The customer's latest ``limit`` score and feature snapshots, oldest first."""
        raw = await self.client.lrange(self.keys.history_key(customer_id), -limit, -1)
        return [orjson.loads(item) for item in raw]

    async def riskiest(self, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` customers with the highest risk score, highest first."""
        ranked = await self.client.zrevrange(self.keys.scores_key, 0, limit - 1, withscores=True)
        pipe = self.client.pipeline(transaction=False)
        for customer_id, _ in ranked:
            pipe.hmget(self.keys.profile_key(customer_id), "tier", "updated_at", "active_warnings")
        rows = await pipe.execute() if ranked else []
        return [
            {
                "customer_id": customer_id,
                "risk_score": score,
                "tier": tier,
                "updated_at": updated_at,
                "active_warnings": orjson.loads(active) if active else [],
            }
            for (customer_id, score), (tier, updated_at, active) in zip(ranked, rows, strict=True)
        ]

    def remember(self, warning: Mapping[str, Any]) -> None:
        """Note which customer a warning belongs to (fed by the live channel)."""
        self.recent.remember(warning["warning_id"], warning["customer_id"])

    async def warnings(self, q: WarningQuery) -> tuple[list[dict[str, Any]], str | None]:
        """One page of warnings, newest first, and the cursor of the next page (or ``None``)."""
        if q.cursor is not None:
            upper = f"({q.cursor}"
        elif q.until_ms is not None:
            upper = str(q.until_ms)
        else:
            upper = "+"
        lower = "-" if q.since_ms is None else str(q.since_ms)
        chunk = min(max(q.limit * 4, 100), SCAN_CHUNK)
        segments: dict[str, Mapping[str, Any]] = {}
        items: list[dict[str, Any]] = []
        scanned = 0
        last: str | None = None
        while scanned < self.scan_budget:
            entries = await self.client.xrevrange(
                self.keys.stream_key, max=upper, min=lower, count=chunk
            )
            scanned += len(entries)
            if q.segments:
                await self._load_segments(
                    {f["customer_id"] for _, f in entries if q.matches(f)}, segments
                )
            for entry_id, fields in entries:
                last = entry_id
                if not q.matches(fields):
                    continue
                if q.segments and not q.segment_matches(segments.get(fields["customer_id"], {})):
                    continue
                warning = orjson.loads(fields["warning"])
                self.remember(warning)
                items.append(warning)
                if len(items) == q.limit:
                    return items, entry_id
            if len(entries) < chunk:
                return items, None
            upper = f"({entries[-1][0]}"
        # The scan budget ran out: the caller goes on from the last entry read.
        return items, last

    async def _load_segments(
        self, customers: set[str], known: dict[str, Mapping[str, Any]]
    ) -> None:
        wanted = sorted(customers - known.keys())
        if not wanted:
            return
        pipe = self.client.pipeline(transaction=False)
        for customer_id in wanted:
            pipe.hget(self.keys.profile_key(customer_id), "features")
        for customer_id, raw in zip(wanted, await pipe.execute(), strict=True):
            known[customer_id] = orjson.loads(raw) if raw else {}

    async def customer_of(self, warning_id: str) -> str | None:
        """The customer a warning belongs to: from recent warnings, else by scanning the stream."""
        known = self.recent.get(warning_id)
        if known is not None:
            return known
        upper = "+"
        scanned = 0
        while scanned < self.scan_budget:
            entries = await self.client.xrevrange(
                self.keys.stream_key, max=upper, min="-", count=SCAN_CHUNK
            )
            scanned += len(entries)
            for _, fields in entries:
                if fields.get("warning_id") == warning_id:
                    customer_id: str = fields["customer_id"]
                    self.recent.remember(warning_id, customer_id)
                    return customer_id
            if len(entries) < SCAN_CHUNK:
                return None
            upper = f"({entries[-1][0]}"
        return None

    async def summary(self, recent: int = 1000) -> dict[str, Any]:
        """Customers by tier, and warnings by level and status among the latest ``recent``."""
        now = time.monotonic()
        if self._summary is not None and now - self._summary[0] < self.summary_ttl:
            return self._summary[1]
        tiers = dict.fromkeys(TIERS, 0)
        total = await self.client.zcard(self.keys.scores_key)
        for start in range(0, total, 1000):
            ids = await self.client.zrange(self.keys.scores_key, start, start + 999)
            pipe = self.client.pipeline(transaction=False)
            for customer_id in ids:
                pipe.hget(self.keys.profile_key(customer_id), "tier")
            for tier in await pipe.execute() if ids else []:
                if tier is not None:
                    tiers[tier] = tiers.get(tier, 0) + 1
        levels = {level: {"firing": 0, "resolved": 0} for level in LEVELS}
        entries = await self.client.xrevrange(self.keys.stream_key, count=recent)
        for _, fields in entries:
            counts = levels.get(fields.get("level", ""))
            if counts is not None and fields.get("status") in counts:
                counts[fields["status"]] += 1
        result = {
            "customers": total,
            "tiers": tiers,
            "warnings": {"levels": levels, "window": len(entries)},
        }
        self._summary = (now, result)
        return result
