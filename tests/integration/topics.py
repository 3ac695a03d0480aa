"""Topic helpers of the integration tests: create a deployment's topics, read one to its end."""

from __future__ import annotations

import json
import time
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from stream_risk.config import Settings
from stream_risk.kafka_admin import ensure_topics

from .conftest import BOOTSTRAP, Env


def create_topics(env: Env) -> None:
    """The deployment's topics with their partition counts, before anything is produced."""
    partitions = int(env.settings_env["STREAM_RISK_PARTITIONS"])
    ensure_topics(
        Settings(kafka_bootstrap=BOOTSTRAP, topic_prefix=env.prefix, partitions=partitions)
    )


def read_all(env: Env, name: str) -> list[dict[str, Any]]:
    """Every record on topic ``name`` now (up to its end offsets)."""
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    try:
        topic = env.topic(name)
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        records: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend({"key": m.key, "value": json.loads(m.value)} for m in batch)
        return records
    finally:
        consumer.close()
