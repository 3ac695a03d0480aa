"""The dashboard's filters in headless Chromium, on warnings and profiles in a real Redis.

A collections desk sees medium and above, firing, by default; low warnings (the
watch list) and resolved ones only when it asks; a segment filter keeps the
customers of one industry or region. The warnings and profiles are written by
the Redis sink the worker uses, the API is the worker's, served on a free port.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import orjson
import redis

from stream_risk.api.server import ApiDeps, ApiServer
from stream_risk.config import Settings
from stream_risk.metrics import WorkerMetrics
from stream_risk.schemas.outputs import RiskWarning
from stream_risk.sinks.redis import RedisSink

from .browser import chromium, chromium_path

REDIS_URL = os.environ.get("STREAM_RISK_REDIS_URL", "redis://127.0.0.1:6379/0")

#: customer -> (industry, region)
CUSTOMERS = {"c-retail": ("retail", "north"), "c-steel": ("steel", "south")}


def warning(n: int, customer: str, level: str, status: str, wid: str) -> dict[str, Any]:
    w = {
        "warning_id": wid,
        "customer_id": customer,
        "level": level,
        "status": status,
        "rule": f"rule_{level}",
        "occurred_at": f"2026-03-01T10:{n:02d}:00+00:00",
        "detected_at": f"2026-03-01T10:{n:02d}:01+00:00",
        "reasons": [],
        "risk_score": 0.4,
        "tier": "medium",
        "actions": [],
    }
    RiskWarning.model_validate(w)  # what the worker publishes
    return w


# In stream order. Firing at the end: w-low, w-med, w-high, w-crit; w-old resolved.
WARNINGS = [
    warning(1, "c-retail", "low", "firing", "w-low"),
    warning(2, "c-retail", "medium", "firing", "w-old"),
    warning(3, "c-retail", "medium", "resolved", "w-old"),
    warning(4, "c-retail", "medium", "firing", "w-med"),
    warning(5, "c-steel", "high", "firing", "w-high"),
    warning(6, "c-steel", "critical", "firing", "w-crit"),
]


def profile(customer: str) -> dict[str, Any]:
    industry, region = CUSTOMERS[customer]
    return {
        "customer_id": customer,
        "risk_score": 0.4,
        "tier": "medium",
        "features": {
            "segment_industry": industry,
            "segment_region": region,
            "open_balance": 1000.0,
            "days_past_due": 10,
        },
        "active_warnings": [w["warning_id"] for w in WARNINGS if w["customer_id"] == customer],
        "updated_at": "2026-03-01T10:06:00+00:00",
    }


async def _seed(prefix: str) -> None:
    sink = RedisSink(REDIS_URL, prefix)
    await sink.setup()
    try:
        await sink.write(
            [orjson.dumps(w) for w in WARNINGS], [orjson.dumps(profile(c)) for c in CUSTOMERS]
        )
    finally:
        await sink.close()


SHOWN = "[...document.querySelectorAll('{list} li')].map((li) => li.dataset.warningId).join(' ')"


async def _choose(page: Any, select: str, value: str) -> None:
    """Pick an option as a person does: the select's value changes, then its form hears it."""
    await page.evaluate(
        f"""(() => {{
            const s = document.querySelector("{select}");
            s.value = "{value}";
            s.dispatchEvent(new Event("change", {{bubbles: true}}));
        }})()"""
    )


async def _shown(page: Any, listing: str, expected: str, what: str) -> None:
    expression = SHOWN.format(list=listing)
    try:
        await page.wait_for(f"{expression} === {orjson.dumps(expected).decode()}", 15, what)
    except AssertionError:
        raise AssertionError(f"{what}: shown {await page.evaluate(expression)!r}") from None


async def _use(prefix: str, profile_dir: Path) -> list[str]:
    settings = Settings(
        redis_url=REDIS_URL, redis_prefix=prefix, api_auth=False, topic_prefix=prefix
    )

    def produce(topic: str, key: bytes, value: bytes) -> None:
        raise AssertionError("the filters produce nothing")

    server = ApiServer(ApiDeps(settings, WorkerMetrics(), produce), "127.0.0.1", 0)
    await server.start()
    try:
        async with chromium(profile_dir) as page:
            await page.goto(server.url)
            await page.wait_for(
                "document.querySelectorAll('#warnings li').length > 0", 30, "the recent warnings"
            )
            # Default: medium and above, firing, newest first; active ones by level.
            await _shown(page, "#warnings", "w-crit w-high w-med w-old", "the default feed")
            await _shown(page, "#active", "w-crit w-high w-med", "the default active list")
            assert await page.evaluate("document.querySelector('#filter-level').value") == "medium"

            await _choose(page, "#filter-level", "low")
            await _shown(page, "#active", "w-crit w-high w-med w-low", "low and above")
            await _choose(page, "#filter-level", "high")
            await _shown(page, "#active", "w-crit w-high", "high and above")
            await _shown(page, "#warnings", "w-crit w-high", "the feed, high and above")

            await _choose(page, "#filter-level", "medium")
            await _choose(page, "#filter-status", "resolved")
            await _shown(page, "#warnings", "w-old", "resolved only")
            await _choose(page, "#filter-status", "all")
            everything = "w-crit w-high w-med w-old w-old"
            await _shown(page, "#warnings", everything, "firing and resolved")

            await _choose(page, "#filter-status", "firing")
            # The segment options come from the customers' profiles.
            await page.wait_for(
                "[...document.querySelectorAll('#filter-industry option')]"
                ".some((o) => o.value === 'steel')",
                15,
                "the industries of the warned customers",
            )
            await _choose(page, "#filter-industry", "steel")
            await _shown(page, "#active", "w-crit w-high", "one industry")
            await _choose(page, "#filter-industry", "")
            await _choose(page, "#filter-region", "north")
            await _shown(page, "#active", "w-med", "one region")
            return list(page.errors)
    finally:
        await server.stop()


def test_level_status_and_segment_filters(tmp_path: Path) -> None:
    chromium_path()  # fails loudly when chromium is missing
    redis.Redis.from_url(REDIS_URL).ping()  # fails loudly when Redis is not running
    prefix = f"filters-{uuid.uuid4().hex[:8]}"
    asyncio.run(_seed(prefix))
    try:
        assert asyncio.run(_use(prefix, tmp_path / "chromium")) == []
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
