"""Topic helpers of the integration tests: create a deployment's topics, read one to its end."""

from __future__ import annotations

import json
from typing import Any

from stream_risk.config import Settings
from stream_risk.kafka_admin import ensure_topics, read_topic

from .conftest import BOOTSTRAP, Env


def create_topics(env: Env) -> None:
    """The deployment's topics with their partition counts, before anything is produced."""
    partitions = int(env.settings_env["STREAM_RISK_PARTITIONS"])
    ensure_topics(
        Settings(kafka_bootstrap=BOOTSTRAP, topic_prefix=env.prefix, partitions=partitions)
    )


def read_all(env: Env, name: str) -> list[dict[str, Any]]:
    """Every record on topic ``name`` now (up to its end offsets)."""
    return [
        {"key": m.key, "value": json.loads(m.value)}
        for m in read_topic(BOOTSTRAP, env.topic(name), timeout=60)
    ]
