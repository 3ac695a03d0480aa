"""Wire the Faust app: topics, the changelog-backed state table and the agents."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson
from kafka.partitioner.default import murmur2

from stream_risk.agents.monitor import Message, MonitorDriver
from stream_risk.config import Settings
from stream_risk.core import Context
from stream_risk.sinks.redis import RedisSink

log = logging.getLogger(__name__)

#: Largest batch the monitor applies at once, and how long it waits to fill one.
MONITOR_BATCH = 500
MONITOR_WITHIN = 0.05
PUBLISH_BATCH = 500
PUBLISH_WITHIN = 0.1


@dataclass
class Topology:
    """The running pieces, exposed for the CLI and for tests."""

    settings: Settings
    app: faust.App
    driver: MonitorDriver
    sink: RedisSink | None
    topics: dict[str, Any] = field(default_factory=dict)


def partition_for(customer_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a customer id key."""
    return (murmur2(customer_id.encode()) & 0x7FFFFFFF) % partitions


def build(settings: Settings) -> Topology:
    """Create the Faust app for ``settings`` with all topics, tables and agents."""
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{host}" for host in settings.kafka_bootstrap.split(",")],
        store="memory://",
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_enabled=settings.web_enabled,
        web_port=settings.web_port,
        web_bind="127.0.0.1",
        # Changelog and produce sends are flushed before every commit: at-least-once.
        processing_guarantee="at_least_once",
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=4096,
        table_cleanup_interval=3600.0,
    )
    partitions = settings.partitions

    def topic(name: str, compacted: bool = False) -> Any:
        return app.topic(
            settings.topic(name),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
            internal=True,
            compacting=compacted or None,
        )

    input_topics = settings.input_topics()
    inputs = app.topic(
        *input_topics.values(),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        internal=True,
    )
    warnings = topic("warnings")
    dead_letters = topic("dead-letters")
    profiles = topic("profiles", compacted=True)

    states = app.Table(
        "customer-state",
        default=None,
        partitions=partitions,
        # bytes in, bytes out: Faust picks the raw codec; the state codec is ours.
        key_type=bytes,
        value_type=bytes,
    )

    def load(customer_id: str) -> bytes | None:
        raw = states.data.get(customer_id.encode())
        return raw if raw is None or isinstance(raw, bytes) else bytes(raw)

    ctx = Context(base_currency=settings.base_currency, fx_rates=dict(settings.fx_rates))
    driver = MonitorDriver(ctx, {t: k for k, t in input_topics.items()}, load)
    rebuild = {"needed": True}

    @app.on_partitions_assigned.connect  # type: ignore[misc]
    async def _assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        rebuild["needed"] = True

    @app.agent(inputs, name="monitor")
    async def monitor(stream: Any) -> None:
        async for events in stream.take_events(MONITOR_BATCH, within=MONITOR_WITHIN):
            if rebuild["needed"]:
                rebuild["needed"] = False
                driver.rebuild_timers(
                    ((k.decode(), v) for k, v in states.data.items()),
                    lambda cid: partition_for(cid, partitions),
                )
            result = driver.process(
                Message(e.message.topic, e.message.partition, e.message.offset,
                        e.message.key, e.message.value)
                for e in events
            )
            for customer_id, (partition, raw) in result.states.items():
                key = customer_id.encode()
                states.data[key] = raw
                states.send_changelog(partition, key, raw)
            for partition, warning in result.warnings:
                await warnings.send(
                    key=warning["customer_id"].encode(),
                    value=orjson.dumps(warning),
                    partition=partition,
                )
            for customer_id, (partition, profile) in result.profiles.items():
                await profiles.send(
                    key=customer_id.encode(), value=orjson.dumps(profile), partition=partition
                )
            for key, record in result.dead_letters:
                await dead_letters.send(key=key, value=orjson.dumps(record))

    sink: RedisSink | None = None
    if settings.redis_enabled:
        sink = RedisSink(settings.redis_url, prefix=settings.redis_prefix)
        redis_sink = sink
        delivery = app.topic(
            settings.topic("warnings"),
            settings.topic("profiles"),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )

        @app.agent(delivery, name="publisher")
        async def publisher(stream: Any) -> None:
            warnings_topic = settings.topic("warnings")
            async for events in stream.take_events(PUBLISH_BATCH, within=PUBLISH_WITHIN):
                batch_warnings: list[bytes] = []
                batch_profiles: list[bytes] = []
                for event in events:
                    value = event.message.value
                    if value is None:
                        continue
                    if event.message.topic == warnings_topic:
                        batch_warnings.append(value)
                    else:
                        batch_profiles.append(value)
                await redis_sink.write_until_done(batch_warnings, batch_profiles, asyncio.sleep)

        @app.task
        async def _open_sink() -> None:
            await redis_sink.setup()

    @app.timer(30.0)
    async def _report() -> None:
        if driver.counts:
            log.info("monitor counts: %s", dict(sorted(driver.counts.items())))

    return Topology(
        settings=settings,
        app=app,
        driver=driver,
        sink=sink,
        topics={"inputs": inputs, "warnings": warnings, "dead_letters": dead_letters,
                "profiles": profiles, "states": states},
    )
