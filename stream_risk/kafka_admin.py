"""Create the engine's topics with the right partition counts before anything produces.

A broker with ``auto.create.topics.enable`` would otherwise create an input
topic with its default partition count on the first produce, and input topics
must be co-partitioned with the state table.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from stream_risk.config import (
    COMPACTED_TOPICS,
    OUTPUT_TOPICS,
    SINGLE_PARTITION_TOPICS,
    Settings,
)
from stream_risk.kafka_security import KAFKA_PYTHON_BACKOFF, KafkaSecurity

log = logging.getLogger(__name__)


class KafkaUnavailable(RuntimeError):
    """No broker answered at the configured bootstrap servers."""


def broker_reachable(bootstrap: str) -> bool:
    """True when any bootstrap server accepts a TCP connection."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2):
                return True
        except (OSError, ValueError):
            continue
    return False


def admin_client(  # type: ignore[no-untyped-def]
    bootstrap: str, timeout: float = 30.0, security: KafkaSecurity | None = None
):
    """A kafka-python admin client, waiting up to ``timeout`` seconds for the broker.

    ``security`` defaults to the environment's Kafka security settings.
    """
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaConnectionError, KafkaTimeoutError

    deadline = time.monotonic() + timeout
    while not broker_reachable(bootstrap):
        if time.monotonic() > deadline:
            raise KafkaUnavailable(
                f"no Kafka broker answers at {bootstrap}; start one with "
                "'docker/services.sh start' or set STREAM_RISK_KAFKA_BOOTSTRAP"
            )
        time.sleep(0.5)
    try:
        return KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="stream-risk-admin",
            **KAFKA_PYTHON_BACKOFF,
            **(security or KafkaSecurity.from_environment()).kafka_python(),
        )
    except (KafkaConnectionError, KafkaTimeoutError) as exc:
        raise KafkaUnavailable(f"Kafka at {bootstrap} did not answer: {exc}") from None


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create every input and output topic that does not exist yet; return those created.

    Raises ``ValueError`` when an existing input topic has another partition count.
    """
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = admin_client(settings.kafka_bootstrap, timeout, KafkaSecurity.from_settings(settings))
    try:
        names = list(settings.input_topics().values()) + [settings.topic(t) for t in OUTPUT_TOPICS]
        existing = set(admin.list_topics())
        compacted = {settings.topic(t) for t in COMPACTED_TOPICS}
        single = {settings.topic(t) for t in SINGLE_PARTITION_TOPICS}
        wanted = []
        for name in names:
            if name in existing:
                continue
            configs = {"cleanup.policy": "compact"} if name in compacted else {}
            if name == settings.topic("training-examples"):
                # A trainer that takes over re-learns every example: keep them all.
                configs = {"retention.ms": "-1"}
            count = 1 if name in single else settings.partitions
            wanted.append(NewTopic(name, count, settings.replication_factor, topic_configs=configs))
        created = []
        for topic in wanted:
            try:
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        _check_partitions(admin, settings)
        return created
    finally:
        admin.close()


def _check_partitions(admin, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    inputs = list(settings.input_topics().values())
    described = admin.describe_topics(inputs)
    wrong = [
        f"{d['topic']} has {len(d['partitions'])}"
        for d in described
        if d.get("partitions") and len(d["partitions"]) != settings.partitions
    ]
    if wrong:
        raise ValueError(
            "input topics must all have STREAM_RISK_PARTITIONS="
            f"{settings.partitions} partitions: " + "; ".join(wrong)
        )


def drop_topics(
    bootstrap: str, prefix: str, timeout: float = 30.0, security: KafkaSecurity | None = None
) -> list[str]:
    """Delete the topics of one deployment: ``<prefix>.*`` and the app's ``<prefix>-*``.

    For throwaway deployments (the demo, tests): a broker that keeps thousands
    of dead partitions takes minutes to load them on its next start.
    """
    from kafka.errors import KafkaError

    admin = admin_client(bootstrap, timeout, security)
    try:
        mine = sorted(t for t in admin.list_topics() if t.startswith((f"{prefix}.", f"{prefix}-")))
        if mine:
            admin.delete_topics(mine, timeout_ms=int(timeout * 1000))
        return mine
    except KafkaError as exc:
        raise KafkaUnavailable(f"could not delete the topics of {prefix}: {exc}") from None
    finally:
        admin.close()


def drop_run_topics(bootstrap: str, prefix: str, say: Callable[[str], None]) -> None:
    """``drop_topics`` for a run that is ending: a failure is reported with ``say``, not raised."""
    try:
        dropped = drop_topics(bootstrap, prefix)
    except KafkaUnavailable as exc:
        say(f"could not delete the run's topics: {exc}")
        return
    say(f"deleted the run's {len(dropped)} topics")


def read_topic(bootstrap: str, topic: str, timeout: float = 120.0) -> list[Any]:
    """Every record of ``topic`` with a value, up to its end now (kafka-python's records:
    key, value, timestamp in ms); ``TimeoutError`` when that takes over ``timeout`` s."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not parts:
            return []
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end")
            for batch in consumer.poll(timeout_ms=500).values():
                out.extend(m for m in batch if m.value is not None)
        return out
    finally:
        consumer.close()
