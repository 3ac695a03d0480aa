"""Real-time subscribers: warnings from Kafka through a real worker to the Redis stream, the
live channel, and consumer groups that each get every warning once."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from stream_risk.notify.stream import StreamEntry, WarningStreamReader
from stream_risk.tools.bench import committed_lag

from .conftest import BOOTSTRAP, REDIS_URL, Env, wait_for


def _statement(customer: str, event_id: str, days_past_due: int) -> dict[str, Any]:
    return {
        "type": "statement",
        "event_id": event_id,
        "customer_id": customer,
        "occurred_at": "2026-02-01T00:00:00+00:00",
        "statement_id": event_id,
        "balance": 500.0,
        "currency": "EUR",
        "days_past_due": days_past_due,
        "status": "delinquent",
    }


def _events() -> list[dict[str, Any]]:
    """Three customers 45 days past due, and one over 90 % of its limit who then pays."""
    events = [_statement(f"late-{i}", f"late-{i}-st", 45) for i in range(3)]
    base = {"customer_id": "busy", "currency": "EUR"}
    events += [
        {
            **base,
            "type": "customer",
            "event_id": "busy-c",
            "occurred_at": "2026-01-01T00:00:00+00:00",
            "credit_limit": 1000,
            "payment_terms_days": 30,
        },
        {
            **base,
            "type": "invoice",
            "event_id": "busy-i",
            "occurred_at": "2026-01-03T00:00:00+00:00",
            "invoice_id": "busy-inv",
            "amount": 950,
            "due_at": "2026-02-01T00:00:00+00:00",
        },
        {
            **base,
            "type": "payment",
            "event_id": "busy-p",
            "occurred_at": "2026-01-10T00:00:00+00:00",
            "payment_id": "busy-pay",
            "amount": 100,
            "status": "settled",
        },
    ]
    return events


async def _read_all(reader: WarningStreamReader, ack: bool) -> list[StreamEntry]:
    """Read until a read comes back empty; acknowledge as it goes when ``ack``."""
    got: list[StreamEntry] = []
    while True:
        entries = await reader.read()
        if not entries:
            return got
        got += entries
        if ack:
            await reader.ack([e.entry_id for e in entries])


def _ids(entries: list[StreamEntry]) -> list[tuple[str, str]]:
    return sorted((e.fields["warning_id"], e.fields["status"]) for e in entries)


def test_every_warning_once_in_stream_channel_and_each_group(env: Env) -> None:
    prefix = env.settings_env["STREAM_RISK_REDIS_PREFIX"]
    stream, channel = f"{prefix}:warnings", f"{prefix}:warnings:live"
    live = env.redis.pubsub(ignore_subscribe_messages=True)
    live.subscribe(channel)
    wait_for(lambda: env.redis.pubsub_numsub(channel)[0][1] == 1, what="subscription")

    env.publish_utilisation_pack()
    worker = env.worker()
    worker.start()
    for event in _events():
        env.send(event)
    env.flush()
    # Every input again (a redelivery): the worker drops them by event_id.
    for event in _events():
        env.send(event)
    env.flush()

    # At least three overdue firings, one utilisation firing and its resolution (other
    # rules may add more); wait until the worker has applied and published everything.
    wait_for(lambda: env.redis.xlen(stream) >= 5, timeout=180, what="warnings in the stream")
    topics = [env.topic(t) for t in ("statement", "customer", "invoice", "payment", "warnings")]
    app_id = env.settings_env["STREAM_RISK_APP_ID"]
    wait_for(lambda: committed_lag(BOOTSTRAP, app_id, topics) == 0, what="the worker to catch up")
    on_kafka = {
        (r["value"]["warning_id"], r["value"]["status"], r["value"]["level"])
        for r in env.consume("warnings", lambda rs: len(rs) >= env.redis.xlen(stream))
    }

    entries = env.redis.xrange(stream)
    identities = [(f["warning_id"], f["status"], f["level"]) for _, f in entries]
    assert sorted(identities) == sorted(on_kafka)  # every warning on Kafka, each once
    in_stream = sorted((f["warning_id"], f["status"]) for _, f in entries)
    expected = len(in_stream)
    rules = {(f["customer_id"], json.loads(f["warning"])["rule"], f["status"]) for _, f in entries}
    assert rules >= {
        ("late-0", "overdue_30_days", "firing"),
        ("late-1", "overdue_30_days", "firing"),
        ("late-2", "overdue_30_days", "firing"),
        ("busy", "high_credit_utilisation", "firing"),
        ("busy", "high_credit_utilisation", "resolved"),
    }
    for _, f in entries:
        w = json.loads(f["warning"])
        assert (w["warning_id"], w["status"], w["level"]) == (
            f["warning_id"],
            f["status"],
            f["level"],
        )

    published: list[tuple[str, str]] = []
    deadline = time.monotonic() + 10
    while len(published) < expected and time.monotonic() < deadline:
        message = live.get_message(timeout=0.5)
        if message is not None:
            w = json.loads(message["data"])
            published.append((w["warning_id"], w["status"]))
    extra = live.get_message(timeout=1.0)
    live.close()
    assert extra is None
    assert sorted(published) == in_stream

    # The riskiest customers now, as a dashboard would ask.
    top = env.redis.zrevrange(f"{prefix}:scores", 0, 9, withscores=True)
    assert {c for c, _ in top} >= {"late-0", "late-1", "late-2", "busy"}

    async def groups() -> None:
        dashboard = WarningStreamReader(
            REDIS_URL, stream, "dashboard", "d1", start="0", block_ms=200
        )
        alerts_1 = WarningStreamReader(REDIS_URL, stream, "alerts", "a1", start="0", block_ms=200)
        alerts_2 = WarningStreamReader(
            REDIS_URL, stream, "alerts", "a2", start="0", block_ms=200, claim_idle_seconds=0.2
        )
        readers = (dashboard, alerts_1, alerts_2)
        for r in readers:
            await r.setup()
        try:
            # The dashboard group reads and acknowledges every warning once.
            assert _ids(await _read_all(dashboard, ack=True)) == in_stream
            assert await _read_all(dashboard, ack=True) == []
            assert await dashboard.pending() == 0

            # a1 reads the alerts group's warnings and "crashes" before acknowledging;
            # a2 finds nothing new, and takes them over once they have been idle.
            assert _ids(await _read_all(alerts_1, ack=False)) == in_stream
            assert await alerts_1.pending() == expected
            await asyncio.sleep(0.3)
            taken = await _read_all(alerts_2, ack=True)
            assert _ids(taken) == in_stream
            assert alerts_2.claimed == expected
            assert await alerts_2.pending() == 0
            # a1 comes back: its pending entries were taken over, nothing is left for it.
            alerts_1.restart()
            assert await _read_all(alerts_1, ack=True) == []
        finally:
            for r in readers:
                await r.close()

    asyncio.run(groups())
