"""Event-time alignment on the real broker: a skewed backlog gives exactly what replay gives."""

from __future__ import annotations

import json
import operator
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream_risk.tools.simulate import generate

from .conftest import Env, deployment_env
from .replaying import assert_as_replay, replay_of, settled_profiles
from .topics import create_topics, read_all

CUSTOMERS = 60
DAYS = 150


def _comparable(warning: dict[str, Any]) -> str:
    # detected_at is the wall clock of whoever ran the rule; everything else is the data's.
    return json.dumps({k: v for k, v in warning.items() if k != "detected_at"}, sort_keys=True)


@pytest.fixture
def one_partition(services: None, tmp_path: Path) -> Iterator[Env]:
    """One partition per topic: the worker's order is then replay's global order, so even
    the segment-behaviour detector, which all of a worker's customers feed, must agree."""
    with deployment_env(tmp_path) as e:
        e.settings_env["STREAM_RISK_PARTITIONS"] = "1"
        yield e


def test_one_topic_produced_first_gives_what_replay_gives(one_partition: Env) -> None:
    env = one_partition
    events = [e for e in generate(customers=CUSTOMERS, days=DAYS, seed=11) if e]
    expected_warnings, expected_profiles = replay_of(env, events)
    assert expected_warnings, "the simulated portfolio raises warnings"

    # Statements are sparse and span the whole period: produced first, a worker
    # reading its backlog meets months of statements before the first order.
    ordered = sorted(events, key=lambda e: e["type"] != "statement")
    create_topics(env)
    for event in ordered:
        env.send(event)
    env.flush()
    worker = env.worker()
    worker.start()

    latest = settled_profiles(env, expected_profiles, 300, operator.eq)
    # Profiles are published with the warnings of the same batch: all are on the topic.
    warnings = read_all(env, "warnings")
    dead = read_all(env, "dead-letters")

    assert [r["value"]["reason"] for r in dead] == []
    got = sorted(_comparable(r["value"]) for r in warnings)
    want = sorted(map(_comparable, expected_warnings))
    assert [w for w in got if w not in want] == []
    assert got == want
    for customer_id, profile in expected_profiles.items():
        assert latest[customer_id] == profile
    assert worker.proc is not None and worker.proc.poll() is None


def test_a_rebalance_mid_backlog_loses_nothing_and_rejects_nothing(env: Env) -> None:
    events = list(generate(customers=40, days=120, seed=5))
    _, expected_profiles = replay_of(env, events)
    create_topics(env)
    for event in sorted(events, key=lambda e: e["type"] != "statement"):
        env.send(event)
    env.flush()
    first = env.worker()
    first.start()
    # Mid-backlog: a second worker joins, partitions (and held-back records) move.
    env.consume("profiles", lambda rs: len(rs) >= 100, timeout=300)
    second = env.worker()
    second.start()

    # Each worker's segment-behaviour detector learns from its own customers only.
    assert_as_replay(env, expected_profiles, timeout=600)
    assert all(w.proc is not None and w.proc.poll() is None for w in (first, second))
