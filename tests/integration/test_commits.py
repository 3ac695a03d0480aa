"""Committed offsets under kill -9: never past an unapplied record, never ahead of the outputs.

A partition without a committed offset is read from its earliest offset, also when
the worker that read it first dies before its first commit and the partitions move
while the group settles; a worker killed again and again while it works through a
backlog loses nothing either. The result is compared with ``stream-risk replay`` of
the same input, not only counted.
"""

from __future__ import annotations

import json
import random
import time
from datetime import datetime
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from stream_risk.kafka_admin import read_topic
from stream_risk.schemas.events import EVENT_TYPES
from stream_risk.tools.simulate import generate

from .conftest import BOOTSTRAP, Env, wait_for
from .replaying import assert_as_replay, replay_of
from .topics import create_topics, read_all

#: Balances and counts: what each worker must agree on with replay (the segment
#: behaviour score depends on which customers a worker saw).


def _input_topics(env: Env) -> list[str]:
    return [env.topic(t) for t in EVENT_TYPES]


def _input_partitions(env: Env, consumer: KafkaConsumer) -> list[TopicPartition]:
    return [
        TopicPartition(topic, p)
        for topic in _input_topics(env)
        for p in consumer.partitions_for_topic(topic) or ()
    ]


def _committed(env: Env) -> dict[tuple[str, int], int]:
    """The group's committed offsets on the input topics (read without joining the group)."""
    consumer = KafkaConsumer(
        bootstrap_servers=BOOTSTRAP,
        group_id=env.settings_env["STREAM_RISK_APP_ID"],
        enable_auto_commit=False,
    )
    try:
        out: dict[tuple[str, int], int] = {}
        for topic in _input_topics(env):
            for p in consumer.partitions_for_topic(topic) or ():
                offset = consumer.committed(TopicPartition(topic, p))
                if offset is not None:
                    out[(topic, p)] = offset
        return out
    finally:
        consumer.close()


def _all_committed(env: Env) -> bool:
    """Whether the group has committed every input partition up to its end offset."""
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    try:
        parts = _input_partitions(env, consumer)
        ends = consumer.end_offsets(parts)
    finally:
        consumer.close()
    committed = _committed(env)
    return all(committed.get((tp.topic, tp.partition), 0) >= end for tp, end in ends.items())


def _inputs_with_offsets(env: Env) -> list[tuple[str, int, int, dict[str, Any]]]:
    """Every input record as (topic, partition, offset, event)."""
    return [
        (m.topic, m.partition, m.offset, json.loads(m.value))
        for topic in _input_topics(env)
        for m in read_topic(BOOTSTRAP, topic)
    ]


@pytest.mark.timeout(1200)
def test_a_worker_killed_before_its_first_commit_loses_nothing(env: Env) -> None:
    events = list(generate(customers=30, days=90, seed=23))
    _, expected = replay_of(env, events)
    create_topics(env)
    # The first quarter, then the kill: a restarted worker reads it again from the
    # earliest offset, and each customer's re-read events are few enough (well under
    # the 128 event ids a state remembers) to be recognised as repeats.
    first_part = len(events) // 4
    for event in events[:first_part]:
        env.send(event)
    env.flush()
    # Commits only after an hour or a million records: the kill comes first.
    first = env.worker(STREAM_RISK_COMMIT_INTERVAL="3600", STREAM_RISK_COMMIT_EVERY="1000000")
    first.start(timeout=300)
    env.consume("profiles", lambda rs: len(rs) >= 20, timeout=300)
    first.kill9()
    # The test is about partitions without a commit: the first worker made none.
    assert _committed(env) == {}

    for event in events[first_part:]:
        env.send(event)
    env.flush()
    # Two workers join one after the other: the partitions move while nothing is
    # committed, and whatever a worker fetched before a rebalance is dropped.
    second = env.worker()
    second.start(timeout=300)
    third = env.worker()
    third.start(timeout=300)
    assert_as_replay(env, expected, timeout=600)
    assert all(w.proc is not None and w.proc.poll() is None for w in (second, third))


def _backlog(env: Env) -> dict[str, Any]:
    """Produce a stream of 40 customers over 120 days, every statement before the other
    events (so the topics' orders disagree); return replay's latest profile of each."""
    events = list(generate(customers=40, days=120, seed=29))
    _, expected = replay_of(env, events)
    create_topics(env)
    for event in sorted(events, key=lambda e: e["type"] != "statement"):
        env.send(event)
    env.flush()
    return expected


@pytest.mark.timeout(1200)
def test_the_committed_offset_never_runs_ahead_of_the_outputs(env: Env) -> None:
    expected = _backlog(env)
    worker = env.worker()
    for kill in range(3):
        worker.start(timeout=300)
        # One profile per customer per batch: a quiet machine's large batches write as
        # few as two per customer for the whole stream, so kill early, or once the
        # worker has committed every input (later kills then check the finished state).
        wait_for(
            lambda n=kill: len(read_all(env, "profiles")) >= 20 * (n + 1) or _all_committed(env),
            timeout=300,
            what=f"progress before kill {kill + 1}",
        )
        # Only a live worker commits (every second): killed before its first commit,
        # it would leave nothing to check, for good. Later starts find one already.
        wait_for(lambda: _committed(env), timeout=120, what="the worker's first commit")
        worker.kill9()
        committed = _committed(env)
        assert committed, "a committed offset vanished after the kill"
        # Everything below a committed offset was applied, and its outputs were
        # written before the commit: each customer's last profile has seen it.
        seen: dict[str, float] = {}
        for record in read_all(env, "profiles"):
            value = record["value"]
            at = datetime.fromisoformat(value["updated_at"]).timestamp()
            seen[value["customer_id"]] = max(seen.get(value["customer_id"], 0.0), at)
        for topic, partition, offset, event in _inputs_with_offsets(env):
            if offset < committed.get((topic, partition), 0):
                at = datetime.fromisoformat(event["occurred_at"]).timestamp()
                assert seen.get(event["customer_id"], float("-inf")) >= at, (
                    f"{topic}[{partition}]@{offset} is below the committed offset "
                    f"{committed[(topic, partition)]} but no profile of "
                    f"{event['customer_id']} shows it"
                )
    worker.start(timeout=300)
    assert_as_replay(env, expected, timeout=600)


@pytest.mark.timeout(1200)
def test_a_worker_killed_again_and_again_mid_stream_ends_as_replay(env: Env) -> None:
    """Each start is killed within a second of its first new profile, while it works
    through the backlog (a fast machine finishes the stream before the kills above).
    Every restart reads the states back, seeks, and goes on: nothing may be lost."""
    expected = _backlog(env)
    worker = env.worker()
    pauses = random.Random(30)
    for kill in range(4):
        worker.start(timeout=300)
        before = len(read_all(env, "profiles"))
        wait_for(
            lambda n=before: len(read_all(env, "profiles")) > n or _all_committed(env),
            timeout=300,
            what=f"progress before kill {kill + 1}",
        )
        time.sleep(pauses.uniform(0.0, 1.0))
        worker.kill9()
    worker.start(timeout=300)
    assert_as_replay(env, expected, timeout=600)
