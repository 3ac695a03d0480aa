"""The rules topic: published rule sets, versioned, compacted.

Every message is keyed by its version (``v3``) and has a JSON value::

    {"version": 3, "digest": "<sha256 of the files>", "published_at": "...",
     "files": {"overdue.yaml": "<YAML text>", ...}}

A worker reads the topic from the start and ends on the last valid rule set.
One key per version means compaction never removes a valid rule set because
someone later wrote a malformed message (under any key but that version's).
Workers decode a message with :func:`decode`, which parses and compiles it in
full: a malformed message is rejected with its errors and never half-applied.
With a signing secret (``STREAM_RISK_SIGNING_SECRET``) every message is signed
when published and only validly signed ones are read
(:mod:`stream_risk.message_auth`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from stream_risk.core.rulefmt import RuleError
from stream_risk.core.ruleset import RuleSet, digest_of, load_files
from stream_risk.kafka_security import KAFKA_PYTHON_BACKOFF, KafkaSecurity
from stream_risk.message_auth import check, sign_headers

if TYPE_CHECKING:
    from stream_risk.config import Settings


def _settings(settings: Settings | None) -> Settings:
    from stream_risk.config import Settings

    return settings if settings is not None else Settings()


def version_key(version: int) -> bytes:
    """The message key of a published version."""
    return f"v{version}".encode()


@dataclass(frozen=True, slots=True)
class Published:
    """A rule set as read from the topic (before compilation)."""

    version: int
    digest: str
    published_at: str
    files: dict[str, str]


def encode(version: int, files: Mapping[str, str], now: datetime | None = None) -> bytes:
    """The message value that publishes ``files`` as ``version``."""
    return orjson.dumps(
        {
            "version": version,
            "digest": digest_of(files),
            "published_at": (now or datetime.now(UTC)).isoformat(),
            "files": dict(files),
        }
    )


def parse(value: bytes | None) -> Published:
    """Read a message value; raises ``ValueError`` when it is not a published rule set."""
    if value is None:
        raise ValueError("empty message")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    version, files = data.get("version"), data.get("files")
    if type(version) is not int or version < 1:
        raise ValueError("'version' must be a positive integer")
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise ValueError("'files' must map file names to YAML texts")
    return Published(version, digest_of(files), str(data.get("published_at", "")), files)


def decode(value: bytes | None) -> tuple[RuleSet | None, list[str]]:
    """Compile a message into a rule set, or return every reason it is rejected."""
    try:
        published = parse(value)
    except ValueError as exc:
        return None, [f"rules message rejected: {exc}"]
    rules, errors = load_files(published.files, str(published.version))
    return rules, [str(e) for e in errors]


def read_latest(
    bootstrap: str, topic: str, timeout: float = 30.0, settings: Settings | None = None
) -> Published | None:
    """The last rule set on ``topic`` (``None`` when nothing was published).

    A message that is not a rule set (or not validly signed, when a signing
    secret is set) is skipped: only a valid one can be active. ``settings``
    (default: the environment's) give the Kafka security and the secret.
    """
    from kafka import KafkaConsumer, TopicPartition

    s = _settings(settings)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=1000,
        **KAFKA_PYTHON_BACKOFF,
        **KafkaSecurity.from_settings(s).kafka_python(),
    )
    try:
        deadline = time.monotonic() + timeout
        partitions = consumer.partitions_for_topic(topic)
        while partitions is None and time.monotonic() < deadline:
            time.sleep(0.2)
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return None
        parts = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        latest: Published | None = None
        while any(consumer.position(p) < end[p] for p in parts):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout:g}s")
            for batch in consumer.poll(timeout_ms=500).values():
                for msg in batch:
                    if msg.value is None or check(
                        s.signing_secret, msg.key, msg.value, msg.headers
                    ):
                        continue
                    try:
                        candidate = parse(msg.value)
                    except ValueError:
                        continue
                    rules, _ = load_files(candidate.files, str(candidate.version))
                    newer = latest is None or candidate.version >= latest.version
                    if rules is not None and newer:
                        latest = candidate
        return latest
    finally:
        consumer.close()


def publish(
    bootstrap: str,
    topic: str,
    version: int,
    files: Mapping[str, str],
    settings: Settings | None = None,
) -> None:
    """Write a rule set to the rules topic and wait until the broker has it (signed
    when ``settings``, by default the environment's, hold a signing secret)."""
    from kafka import KafkaProducer

    s = _settings(settings)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        **KAFKA_PYTHON_BACKOFF,
        **KafkaSecurity.from_settings(s).kafka_python(),
    )
    key, value = version_key(version), encode(version, files)
    try:
        producer.send(
            topic, key=key, value=value, headers=sign_headers(s.signing_secret, key, value)
        ).get(timeout=30)
        producer.flush(timeout=30)
    finally:
        producer.close()


def describe(rules: RuleSet) -> dict[str, Any]:
    """A short summary of a rule set, for logs and the CLI."""
    return {
        "version": rules.version,
        "digest": rules.digest[:12],
        "rules": len(rules.rules),
        "groups": len({r.group for r in rules.rules}),
    }


def error_lines(errors: list[RuleError]) -> list[str]:
    return [str(e) for e in errors]
