"""Faults: kill -9 of the worker mid-stream, and Redis going away and coming back."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from .conftest import Env, wait_for

CUSTOMERS = 120
ORDERS_EACH = 40


def _orders() -> list[dict[str, object]]:
    """Every order lies within one 30-day window, so order_count_30d counts them all."""
    start = datetime(2026, 5, 1, tzinfo=UTC)
    events: list[dict[str, object]] = []
    for n in range(ORDERS_EACH):
        at = (start + timedelta(minutes=30 * n)).isoformat()
        for c in range(CUSTOMERS):
            cid = f"cust-{c:03d}"
            events.append(
                {
                    "type": "order",
                    "event_id": f"{cid}-o{n}",
                    "customer_id": cid,
                    "occurred_at": at,
                    "order_id": f"{cid}-o{n}",
                    "amount": float(c + n),
                    "currency": "EUR",
                    "status": "placed",
                }
            )
    return events


def _profiles_from_topic(env: Env, expected: int) -> dict[str, dict[str, object]]:
    """The latest profile per customer on the profiles topic."""

    def complete(records: list[dict]) -> bool:
        latest: dict[str, int] = {}
        for r in records:
            latest[r["value"]["customer_id"]] = r["value"]["features"]["order_count_30d"]
        return len(latest) == CUSTOMERS and all(v >= expected for v in latest.values())

    records = env.consume("profiles", complete, timeout=240)
    latest: dict[str, dict[str, object]] = {}
    for r in records:
        latest[r["value"]["customer_id"]] = r["value"]
    return latest


def _send_first_half_and_wait(env: Env, events: list[dict[str, object]]) -> int:
    """Send the first half of ``events``; return once the worker has published profiles."""
    half = len(events) // 2
    for e in events[:half]:
        env.send(e)
    env.flush()
    env.consume("profiles", lambda rs: len(rs) >= 50)
    return half


def test_kill_9_mid_stream_loses_nothing_and_counts_nothing_twice(env: Env) -> None:
    worker = env.worker()
    worker.start()
    events = _orders()
    half = _send_first_half_and_wait(env, events)
    # The worker got part of the way: kill it without any chance to clean up.
    worker.kill9()
    for e in events[half:]:
        env.send(e)
    # Redeliver a slice of already-sent events, as an upstream retry would.
    for e in events[:500]:
        env.send(e)
    env.flush()
    worker.start()

    latest = _profiles_from_topic(env, ORDERS_EACH)
    for c in range(CUSTOMERS):
        features = latest[f"cust-{c:03d}"]["features"]
        assert isinstance(features, dict)
        assert features["order_count_30d"] == ORDERS_EACH, (c, features)
        expected_amount = sum(float(c + n) for n in range(ORDERS_EACH))
        assert features["order_amount_30d"] == expected_amount
    # The state itself came back from the changelog: the log of the second start shows recovery.
    assert "Recovery complete" in worker.log().split("===== start 2 =====")[1]


def _redis_server(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("redis-server")
    assert exe, "redis-server is not installed: run docker/services.sh start"
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    wait_for(lambda: _ping(client), timeout=20, what="private redis")
    return proc


def _ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_redis_outage_does_not_stop_the_worker_and_the_sink_catches_up(
    env: Env, tmp_path: Path
) -> None:
    port = 6391
    server = _redis_server(port, tmp_path)
    url = f"redis://127.0.0.1:{port}/0"
    prefix = env.settings_env["STREAM_RISK_REDIS_PREFIX"]
    client = redis.Redis.from_url(url, decode_responses=True)
    worker = env.worker(STREAM_RISK_REDIS_URL=url)
    try:
        worker.start()
        env.send(
            {
                "type": "customer",
                "event_id": "c",
                "customer_id": "zed",
                "occurred_at": "2026-01-01T00:00:00Z",
                "credit_limit": 100,
                "currency": "EUR",
                "payment_terms_days": 30,
            }
        )
        env.flush()
        wait_for(lambda: client.exists(f"{prefix}:profile:zed"), what="first profile in redis")

        server.terminate()
        server.wait(timeout=10)
        env.send(
            {
                "type": "statement",
                "event_id": "s",
                "customer_id": "zed",
                "occurred_at": "2026-01-31T00:00:00Z",
                "statement_id": "s",
                "balance": 99,
                "currency": "EUR",
                "days_past_due": 95,
                "status": "delinquent",
            }
        )
        env.flush()
        # Warnings are still produced to Kafka while Redis is down.
        on_kafka = env.consume(
            "warnings", lambda rs: any(r["value"]["rule"] == "overdue_90_days" for r in rs)
        )
        # The sink's own line: the live-warnings reader logs "Redis unavailable" too, and
        # often first, before the sink has tried (and failed) to write.
        wait_for(lambda: "wait on Kafka" in worker.log(), what="the sink's outage in the log")
        assert worker.proc is not None and worker.proc.poll() is None

        server = _redis_server(port, tmp_path)
        entries = wait_for(
            lambda: (
                len(client.xrange(f"{prefix}:warnings")) >= len(on_kafka)
                and client.xrange(f"{prefix}:warnings")
            ),
            timeout=90,
            what="warnings in redis after the outage",
        )
        # Every warning of the topic, including any produced after the first read.
        on_kafka = env.consume("warnings", lambda rs: len(rs) >= len(entries))
        assert {e[1]["warning_id"] for e in entries} == {r["value"]["warning_id"] for r in on_kafka}
        profile = client.hgetall(f"{prefix}:profile:zed")
        assert json.loads(profile["features"])["days_past_due"] == 95
        # The sink logs the recovery once its write has returned: just after the data landed.
        wait_for(lambda: "Redis is back" in worker.log(), what="the recovery in the log")
    finally:
        worker.stop()
        server.terminate()
        server.wait(timeout=10)


def test_a_second_worker_takes_over_partitions_and_nothing_is_lost(env: Env) -> None:
    first = env.worker()
    first.start()
    events = _orders()
    half = _send_first_half_and_wait(env, events)
    # A second worker joins: the group rebalances and it recovers its partition's
    # state from the changelog while events keep arriving.
    second = env.worker()
    second.start()
    for e in events[half:]:
        env.send(e)
    env.flush()
    latest = _profiles_from_topic(env, ORDERS_EACH)
    for c in range(CUSTOMERS):
        features = latest[f"cust-{c:03d}"]["features"]
        assert isinstance(features, dict)
        assert features["order_count_30d"] == ORDERS_EACH, (c, features)
    assert first.proc is not None and first.proc.poll() is None
    assert second.proc is not None and second.proc.poll() is None
    # The second worker really owns a partition: it read state from the changelog.
    assert "customer-state-changelog" in second.log().split("Highwater - Active")[1]
