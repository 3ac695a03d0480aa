"""Reconnect pacing of the clients this project writes: backoff grows with jitter, and an
outage logs a bounded number of lines."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from stream_risk.agents.model_feed import CompactedFeed
from stream_risk.backoff import Backoff, LogGate
from stream_risk.sinks.redis import RedisSink

PROFILE = (
    b'{"customer_id": "c", "risk_score": 0.1, "tier": "low", "updated_at": "2026-01-01T00:00:00Z",'
    b' "features": {}, "active_warnings": []}'
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_backoff_grows_to_its_cap_with_jitter_in_the_upper_half() -> None:
    backoff = Backoff(base=0.5, cap=30.0)
    delays = [backoff.next() for _ in range(12)]
    ceilings = [min(30.0, 0.5 * 2**n) for n in range(12)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len({round(d, 6) for d in delays[-4:]}) > 1  # jittered, not lock step
    backoff.reset()
    assert backoff.next() <= 0.5


def test_log_gate_reports_what_it_swallowed() -> None:
    gate = LogGate(interval=30.0)
    allowed = [t for t in range(0, 120) if gate.allow(float(t))]
    assert allowed == [0, 30, 60, 90]
    assert gate.take_swallowed() == 29
    gate.reset()
    assert gate.allow(91.0)


def test_redis_sink_outage_backs_off_and_logs_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = RedisSink(f"redis://127.0.0.1:{_free_port()}/0", max_backoff=30.0, log_interval=3600)
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) >= 12:
            raise asyncio.CancelledError  # end the outage for the test

    async def scenario() -> None:
        with pytest.raises(asyncio.CancelledError):
            await sink.write_until_done([], [PROFILE], sleep)
        await sink.close()

    with caplog.at_level("WARNING", logger="stream_risk.sinks.redis"):
        asyncio.run(scenario())
    assert len(pauses) == 12 == sink.retries
    assert pauses[0] <= 0.5 and 15.0 <= pauses[-1] <= 30.0  # grew to the cap
    assert caplog.text.count("Redis unavailable") == 1


def test_a_feed_that_cannot_reach_the_broker_retries_with_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pauses: list[float] = []

    async def sleep(seconds: float) -> Any:
        pauses.append(seconds)
        if len(pauses) >= 3:
            raise asyncio.CancelledError

    feed = CompactedFeed(
        f"127.0.0.1:{_free_port()}",
        "t.models",
        lambda k, v: None,
        backoff=Backoff(base=0.5, cap=8.0, rand=lambda: 1.0),
        sleep=sleep,
    )

    async def scenario() -> None:
        with pytest.raises(asyncio.CancelledError):
            await feed.run()

    with caplog.at_level("WARNING", logger="stream_risk.agents.model_feed"):
        asyncio.run(scenario())
    assert pauses == [0.5, 1.0, 2.0]
    assert feed.reconnects == 3
    assert caplog.text.count("feed lost the broker") == 1
