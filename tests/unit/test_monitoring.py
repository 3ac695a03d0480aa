"""The operations kit under docker/monitoring/: alert rules and dashboard name real metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from stream_risk.metrics import WorkerMetrics

MONITORING = Path(__file__).parents[2] / "docker" / "monitoring"
METRIC = re.compile(r"\bstream_risk_[a-z0-9_]+\b")


def exported_samples() -> set[str]:
    """Every sample name a worker's /metrics shows once each collector has something."""
    m = WorkerMetrics()
    m.watch_counts({"events.order": 1, "warnings.high.firing": 1, "dead_letters": 1})
    m.watch_lag(lambda: [("t", 0)], lambda topic, partition: 5)
    m.watch_sink(SimpleNamespace(written_warnings=1, written_profiles=1, write_errors=1))
    m.observe_batch([SimpleNamespace(topic="t", partition=0, offset=1, timestamp=1.0)], 0.01, 2.0)
    m.http_requests.labels(route="health", status="200").inc()
    m.collection_actions.labels(action="promise").inc()
    return {
        s.name
        for family in text_string_to_metric_families(m.render().decode())
        for s in family.samples
    }


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    doc = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in doc["panels"] for t in panel.get("targets", [])]
    exprs += [v["definition"] for v in doc["templating"]["list"] if "definition" in v]
    return exprs


def named_metrics(text: str) -> set[str]:
    return set(METRIC.findall(text))


def test_the_exporter_is_read_whole() -> None:
    # The check below is only as good as this set: it must hold every family.
    assert {
        "stream_risk_consumer_lag",
        "stream_risk_dead_letters_total",
        "stream_risk_event_loop_lag_seconds_bucket",
        "stream_risk_redis_write_errors_total",
        "stream_risk_event_latency_seconds_bucket",
    } <= exported_samples()


@pytest.mark.parametrize(
    ("source", "texts"),
    [
        ("alerts.yaml", lambda: [r["expr"] for r in alert_rules()]),
        ("grafana-dashboard.json", dashboard_exprs),
    ],
)
def test_every_metric_named_is_exported(source: str, texts: Any) -> None:
    named = set().union(*(named_metrics(t) for t in texts()))
    assert named, f"{source} names no stream_risk metric"
    missing = sorted(named - exported_samples())
    assert not missing, f"{source} names metrics no worker exports: {missing}"


def test_alerts_cover_lag_dead_letters_loop_lag_and_redis() -> None:
    by_metric = {m for r in alert_rules() for m in named_metrics(r["expr"])}
    assert {
        "stream_risk_consumer_lag",
        "stream_risk_dead_letters_total",
        "stream_risk_event_loop_lag_seconds_bucket",
        "stream_risk_redis_write_errors_total",
    } <= by_metric


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_rule_shape(rule: dict[str, Any]) -> None:
    assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    assert re.fullmatch(r"\d+[smh]", rule["for"])


def test_dashboard_panels_query_through_the_datasource_variable() -> None:
    doc = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in doc["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]


def test_failed_redis_writes_are_counted_and_exported() -> None:
    import asyncio

    from redis.exceptions import ConnectionError as RedisConnectionError

    from stream_risk.sinks.redis import RedisSink

    sink = RedisSink("redis://127.0.0.1:1/0", max_backoff=0.0)
    outcomes: list[Exception | None] = [RedisConnectionError("refused"), OSError("reset"), None]

    async def write(warnings: list[bytes], profiles: list[bytes]) -> None:
        failure = outcomes.pop(0)
        if failure is not None:
            raise failure

    async def no_wait(seconds: float) -> None:
        return None

    sink.write = write  # type: ignore[method-assign]
    asyncio.run(sink.write_until_done([b"{}"], [], no_wait))
    assert not outcomes
    assert sink.write_errors == 2
    m = WorkerMetrics()
    m.watch_sink(sink)
    text = m.render().decode()
    assert "stream_risk_redis_write_errors_total 2.0" in text
