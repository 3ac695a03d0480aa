"""Worker metrics in the Prometheus format, and the live-warnings fan-out."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream_risk.api import live
from stream_risk.api.live import LiveHub
from stream_risk.metrics import WorkerMetrics


def samples(m: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """name + sorted labels -> value, parsed back from the exposition text."""
    out = {}
    for family in text_string_to_metric_families(m.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_monitor_counts_become_counters() -> None:
    counts = {
        "events.order": 7,
        "events.payment": 2,
        "warnings.high.firing": 3,
        "warnings.high.resolved": 1,
        "dead_letters": 4,
        "redelivered": 5,
        "some.future.kind": 9,
    }
    m = WorkerMetrics()
    m.watch_counts(counts)
    got = samples(m)
    assert got[("stream_risk_events_total", (("type", "order"),))] == 7
    assert got[("stream_risk_events_total", (("type", "payment"),))] == 2
    assert got[("stream_risk_warnings_total", (("level", "high"), ("status", "firing")))] == 3
    assert got[("stream_risk_warnings_total", (("level", "high"), ("status", "resolved")))] == 1
    assert got[("stream_risk_dead_letters_total", ())] == 4
    assert got[("stream_risk_redelivered_messages_total", ())] == 5
    assert got[("stream_risk_duplicate_events_total", ())] == 0
    # The counts are read at scrape time: they move without any call into the metrics.
    counts["events.order"] = 8
    assert samples(m)[("stream_risk_events_total", (("type", "order"),))] == 8


def test_consumer_lag_for_partitions_read_from() -> None:
    ends = {("in", 0): 120, ("in", 1): 50, ("in", 2): 10}

    def highwater(topic: str, partition: int) -> int | None:
        if partition == 1:
            raise RuntimeError("not fetched yet")
        return ends[(topic, partition)]

    m = WorkerMetrics()
    m.watch_lag(lambda: ends.keys(), highwater)
    m.mark_read([SimpleNamespace(topic="in", partition=0, offset=99, timestamp=None)])
    m.mark_read([SimpleNamespace(topic="in", partition=1, offset=9, timestamp=None)])
    lag = {k: v for k, v in samples(m).items() if k[0] == "stream_risk_consumer_lag"}
    # partition 1 has no highwater and partition 2 was never read: no sample for either.
    assert lag == {("stream_risk_consumer_lag", (("partition", "0"), ("topic", "in"))): 20}


def test_consumer_lag_while_not_assigned() -> None:
    def assignment() -> Any:
        raise RuntimeError("consumer not started")

    m = WorkerMetrics()
    m.watch_lag(assignment, lambda t, p: 0)
    assert not [k for k in samples(m) if k[0] == "stream_risk_consumer_lag"]


@pytest.mark.parametrize(
    ("ages", "bucket", "expected"),
    [([0.001, 0.2, 3.0], "0.25", 2), ([0.001, 0.2, 3.0], "+Inf", 3), ([100.0], "60.0", 0)],
)
def test_latency_histogram(ages: list[float], bucket: str, expected: int) -> None:
    m = WorkerMetrics()
    now = 1_000.0
    batch = [
        SimpleNamespace(topic="t", partition=0, offset=i, timestamp=now - a)
        for i, a in enumerate(ages)
    ]
    m.observe_batch(batch, 0.02, now)
    got = samples(m)
    assert got[("stream_risk_event_latency_seconds_bucket", (("le", bucket),))] == expected
    assert got[("stream_risk_batch_seconds_count", ())] == 1
    assert m.positions == {("t", 0): len(ages)}


def test_sink_writes() -> None:
    m = WorkerMetrics()
    m.watch_sink(SimpleNamespace(written_warnings=3, written_profiles=11))
    got = samples(m)
    assert got[("stream_risk_redis_writes_total", (("kind", "warning"),))] == 3
    assert got[("stream_risk_redis_writes_total", (("kind", "profile"),))] == 11


def test_live_hub_fans_out_and_drops_a_client_that_falls_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live, "CLIENT_QUEUE", 2)
    seen: list[dict[str, Any]] = []

    async def main() -> None:
        hub = LiveHub("redis://unused", "risk:warnings:live", seen.append)
        async with hub.client() as fast, hub.client() as slow:
            for n in range(3):
                warning = {"warning_id": f"w-{n}", "customer_id": "c", "status": "firing"}
                hub.publish(json.dumps(warning).encode())
                if n < 2:
                    frame = fast.get_nowait()
                    assert frame.startswith(f"event: warning\nid: w-{n}:firing\n".encode())
            hub.publish(b"not json")
            assert fast in hub.clients
            # The slow client never read: after two pending frames it is closed.
            assert slow not in hub.clients
            frames = [slow.get_nowait() for _ in range(slow.qsize())]
            assert LiveHub.is_close(frames[-1]) and len(frames) == 3

    asyncio.run(main())
    assert [w["warning_id"] for w in seen] == ["w-0", "w-1", "w-2"]
