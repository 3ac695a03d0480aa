"""MonitorDriver: the Faust-free batch logic of the monitor agent."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from risk_factory import (
    DAY,
    T0S,
    at,
    customer,
    invoice,
    iso_ts,
    order,
    outcome,
    statement,
    ts,
    utilisation_context,
)

from stream_risk.core import Context, profile_of
from stream_risk.core.state import decode, encode
from stream_risk.driver import BatchResult, Message, MonitorDriver
from stream_risk.schemas.events import EVENT_TYPES
from stream_risk.schemas.outputs import DeadLetter, RiskProfile, RiskWarning

TOPICS = {f"in.{t}": t for t in EVENT_TYPES}


class Harness:
    """A driver plus the state table it reads and the outputs of every batch."""

    def __init__(self, ctx: Context | None = None) -> None:
        self.table: dict[str, bytes] = {}
        self.driver = MonitorDriver(ctx or Context(), TOPICS, self.table.get)
        self.offset = 0
        self.warnings: list[tuple[int, dict[str, Any]]] = []
        self.dead: list[tuple[bytes | None, dict[str, Any]]] = []

    def msg(
        self,
        event: dict[str, Any] | bytes | None,
        partition: int = 0,
        key: bytes | str | None = "auto",
        topic: str | None = None,
    ) -> Message:
        self.offset += 1
        if isinstance(event, dict):
            value = json.dumps(event).encode()
            topic = topic or f"in.{event['type']}"
            if key == "auto":
                key = event["customer_id"].encode()
        else:
            value = event
            topic = topic or "in.order"
            if key == "auto":
                key = b"c1"
        assert not isinstance(key, str)
        return Message(topic, partition, self.offset, key, value)

    def process(self, *messages: Message) -> BatchResult:
        result = self.driver.process(messages)
        for cid, (_, raw) in result.states.items():
            assert raw, "every touched state is encoded"
            self.table[cid] = raw
        self.warnings += result.warnings
        self.dead += result.dead_letters
        for _, w in result.warnings:
            RiskWarning.model_validate(w)
        for cid, (_, p) in result.profiles.items():
            RiskProfile.model_validate(p)
            # Published with the groups the evaluations kept: what the state alone
            # gives, to the order of the features.
            assert orjson.dumps(p) == orjson.dumps(profile_of(decode(result.states[cid][1])))
        for _, d in result.dead_letters:
            DeadLetter.model_validate(d)
        return result


def state_of(h: Harness, cid: str) -> Any:
    return decode(h.table[cid])


# ------------------------------------------------------------------ dead letters


def test_bad_json_goes_to_dead_letter_with_reason_and_original() -> None:
    h = Harness()
    raw = b'{"type": "order", "event_id": '
    result = h.process(h.msg(raw, partition=2, key=b"c1"))
    assert result.states == {} and result.warnings == []
    [(key, dead)] = result.dead_letters
    assert key == b"c1"
    assert dead["reason"].startswith("invalid event")
    assert "json" in dead["reason"].lower()
    assert dead["original"] == raw.decode()
    assert dead["original_base64"] is None
    assert (dead["source"], dead["partition"], dead["offset"], dead["key"]) == (
        "in.order",
        2,
        h.offset,
        "c1",
    )


def test_invalid_utf8_keeps_the_original_bytes() -> None:
    import base64

    h = Harness()
    raw = b'{"type": "order", \xff\xfe}'
    [(_, dead)] = h.process(h.msg(raw)).dead_letters
    assert base64.b64decode(dead["original_base64"]) == raw
    assert "\ufffd" in dead["original"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty"),
        (json.dumps(order(1, "o1", -3)).encode(), "amount"),
        (
            json.dumps(dict(order(1, "o1", 3), occurred_at="2024-01-02T00:00:00")).encode(),
            "occurred_at",
        ),
        (
            json.dumps({k: v for k, v in order(1, "o1", 3).items() if k != "status"}).encode(),
            "status",
        ),
        (json.dumps(dict(order(1, "o1", 3), currency="GBP")).encode(), "GBP"),
    ],
    ids=["no-value", "negative", "naive-time", "missing-field", "no-fx-rate"],
)
def test_bad_events_go_to_dead_letter(value: bytes | None, reason: str) -> None:
    h = Harness()
    result = h.process(h.msg(value, key=b"c1", topic="in.order"))
    [(_, dead)] = result.dead_letters
    assert reason.lower() in dead["reason"].lower()
    assert dead["original"] == (value or b"").decode()
    assert h.driver.counts["dead_letters"] == 1


@pytest.mark.parametrize("key", [None, b"c2", b"", b"C1"])
def test_key_must_be_the_customer_id(key: bytes | None) -> None:
    h = Harness()
    event = order(1, "o1", 10, cid="c1")
    result = h.process(h.msg(event, key=key))
    [(dead_key, dead)] = result.dead_letters
    assert dead_key == key
    assert "key" in dead["reason"]
    assert dead["original"] == json.dumps(event)
    assert result.states == {} and "c1" not in h.table


@pytest.mark.parametrize(
    ("event", "topic"),
    [
        (order(1, "o1", 10), "in.invoice"),
        (invoice(1, "i1", 10, 30), "in.order"),
        (customer(0, 10.0), "in.payment"),
    ],
)
def test_event_type_on_the_wrong_topic_is_dead(event: dict[str, Any], topic: str) -> None:
    h = Harness()
    result = h.process(h.msg(event, topic=topic))
    [(_, dead)] = result.dead_letters
    assert event["type"] in dead["reason"]
    assert dead["source"] == topic
    assert result.states == {}


def test_good_events_after_bad_ones_are_processed() -> None:
    h = Harness(utilisation_context())
    result = h.process(
        h.msg(customer(0, 1000.0)),
        h.msg(b"garbage", key=b"c1"),
        h.msg(order(1, "o1", 10), key=b"c2"),
        h.msg(invoice(1, "i1", 950, 30)),
        h.msg(order(1, "o1", 10), topic="in.invoice"),
        h.msg(json.dumps(dict(order(2, "o2", 5), currency="GBP")).encode(), topic="in.order"),
        h.msg(order(2, "o3", 20)),
    )
    assert len(result.dead_letters) == 4
    state = state_of(h, "c1")
    assert state.credit_limit == 1000.0
    assert set(state.book["inv"]) == {"i1"}
    assert [o[2] for o in state.orders] == ["o3"]
    assert [w["rule"] for _, w in result.warnings] == ["high_credit_utilisation"]
    assert set(result.profiles) == {"c1"}
    assert result.profiles["c1"][1]["features"]["open_balance"] == 950.0


def test_duplicates_refresh_the_profile_but_change_nothing() -> None:
    h = Harness()
    h.process(h.msg(customer(0, 1000.0)), h.msg(invoice(1, "i1", 950, 30)))
    before = h.table["c1"]
    result = h.process(h.msg(invoice(1, "i1", 950, 30)))
    assert result.warnings == [] and result.dead_letters == []
    assert h.table["c1"] == before
    assert "c1" in result.profiles
    assert h.driver.counts["duplicates"] == 1


def test_state_survives_across_batches_through_the_table() -> None:
    h = Harness(utilisation_context())
    h.process(h.msg(customer(0, 1000.0)))
    h.process(h.msg(invoice(1, "i1", 950, 30)))
    assert [w["rule"] for _, w in h.warnings] == ["high_credit_utilisation"]


# ------------------------------------------------------------------ timers


OVERDUE_DAYS = ("overdue_30_days", "overdue_90_days")


def test_timers_fire_per_partition_on_the_partition_watermark() -> None:
    h = Harness()
    h.process(
        h.msg(customer(0, 10_000.0, cid="a"), partition=0),
        h.msg(invoice(0, "ia", 100, 5, cid="a"), partition=0),
    )
    assert h.warnings == []
    # Partition 1 moves far ahead: a's timer lives on partition 0 and must not fire.
    r1 = h.process(h.msg(order(60, "ob", 1, cid="b"), partition=1))
    assert r1.warnings == []
    assert "a" not in r1.states
    assert state_of(h, "a").clock == ts(0)
    # An unrelated customer's event on partition 0 moves its watermark: a's checks fire,
    # day by day, exactly on their wake-up times.
    r2 = h.process(h.msg(order(40, "oc", 1, cid="c"), partition=0))
    fired = [
        (p, w["customer_id"], w["rule"], w["occurred_at"])
        for p, w in r2.warnings
        if w["rule"] in OVERDUE_DAYS
    ]
    assert fired == [(0, "a", "overdue_30_days", iso_ts(ts(35)))]
    assert r2.states["a"][0] == 0
    assert r2.profiles["a"][1]["features"]["days_past_due"] == 35
    assert state_of(h, "a").clock == ts(40)
    # Later still on partition 0: the 30-day warning escalates at due + 60 days, the
    # 90-day warning comes at due + 90 days.
    r3 = h.process(h.msg(order(100, "oc2", 1, cid="c"), partition=0))
    # (Other rules of the default pack fire in between: the aging buckets, the tier.)
    assert [
        (w["rule"], w["level"], w["occurred_at"])
        for _, w in r3.warnings
        if w["rule"] in OVERDUE_DAYS
    ] == [
        ("overdue_30_days", "high", iso_ts(ts(65))),
        ("overdue_90_days", "critical", iso_ts(ts(95))),
    ]


def test_timers_fire_before_the_event_that_moves_the_watermark() -> None:
    h = Harness()
    h.process(h.msg(invoice(0, "ia", 100, 5, cid="a")))
    r = h.process(h.msg(statement(50, 0.0, 0, cid="a")))
    assert [w["occurred_at"] for _, w in r.warnings] == [iso_ts(ts(35))]


def test_watermark_does_not_move_backwards() -> None:
    h = Harness()
    h.process(h.msg(invoice(0, "ia", 100, 5, cid="a")), h.msg(order(20, "o", 1, cid="c")))
    r = h.process(h.msg(order(10, "late", 1, cid="c")))
    assert r.warnings == []
    assert h.driver.watermarks[0] == ts(20)


def test_rebuild_timers_restores_wake_ups_from_encoded_states() -> None:
    first = Harness()
    first.process(
        first.msg(invoice(0, "ia", 100, 5, cid="a"), partition=3),
        first.msg(invoice(0, "ib", 100, 7, cid="b"), partition=1),
        first.msg(order(0, "o", 1, cid="z"), partition=3),
    )
    assert decode(first.table["a"]).next_wakeup == ts(5)

    # A restarted worker: same table, fresh driver, no timers until rebuilt.
    def restarted() -> Harness:
        h = Harness()
        h.table.update(first.table)
        return h

    without = restarted()
    assert without.process(without.msg(order(40, "o2", 1, cid="z"), partition=3)).warnings == []

    h = restarted()
    partition_of = {"a": 3, "b": 1, "z": 3}.__getitem__
    h.driver.rebuild_timers(list(h.table.items()), partition_of)
    # a's overdue check and z's order leaving its 7-day window; b's overdue check.
    assert len(h.driver.timers[3]) == 2 and len(h.driver.timers[1]) == 1
    r = h.process(h.msg(order(40, "o2", 1, cid="z"), partition=3))
    assert [(p, w["customer_id"], w["occurred_at"]) for p, w in r.warnings] == [
        (3, "a", iso_ts(ts(35)))
    ]
    r = h.process(h.msg(order(40, "o3", 1, cid="y"), partition=1))
    assert [(p, w["customer_id"], w["occurred_at"]) for p, w in r.warnings] == [
        (1, "b", iso_ts(ts(37)))
    ]


def test_rebuild_timers_use_the_partition_the_customer_arrived_on() -> None:
    """An upstream with its own partitioner: the stored partition wins over the guess,
    so the overdue check is written to the same changelog partition as the events."""
    first = Harness()
    first.process(first.msg(invoice(0, "ia", 100, 5, cid="a"), partition=2))
    h = Harness()
    h.table.update(first.table)
    h.driver.rebuild_timers(list(h.table.items()), lambda cid: 0)
    assert 0 not in h.driver.timers or not h.driver.timers[0]
    r = h.process(h.msg(order(40, "o", 1, cid="z"), partition=2))
    assert [(p, w["customer_id"]) for p, w in r.warnings] == [(2, "a")]


def test_a_restart_keeps_the_partition_watermark() -> None:
    """After a restart, events older than the partition's latest event time fire no
    timer, as they would not have without the restart: redelivered newer events do not
    drag the clock of a customer whose own events are still arriving past its outcome
    (its quarterly review, then its training example)."""
    ctx = Context(population=None)
    newer = [customer(200, cid="f")] + [statement(30.0 * m + 201, 100.0, cid="f") for m in range(4)]
    older = [statement(30.0 * m + 1, 800.0, dpd=30 * m, cid="b") for m in range(4)]

    def before() -> tuple[Harness, list[Message]]:
        h = Harness(ctx)
        sent = [h.msg(event) for event in newer]
        h.process(*sent)
        return h, sent

    uninterrupted, _ = before()
    uninterrupted.process(uninterrupted.msg(customer(0, cid="b")))
    uninterrupted.process(*(uninterrupted.msg(event) for event in older))
    expected = uninterrupted.process(uninterrupted.msg(outcome(125, "default", cid="b")))
    [example] = expected.training_examples
    # The model inputs of the weekly boundary after b's statement of day 91.
    assert example["as_of"] == at(94)

    first, sent = before()
    h = Harness(ctx)
    h.table.update(first.table)
    h.offset = first.offset
    h.driver.rebuild_timers(list(h.table.items()), lambda cid: 0)
    assert h.driver.watermarks[0] == ts(291)
    # The newer events were applied but their offsets not committed: redelivered, with
    # the new customer's first event aligned in between (event-time order across topics).
    h.process(sent[0], h.msg(customer(0, cid="b")), *sent[1:])
    assert state_of(h, "b").clock == ts(0)
    h.process(*(h.msg(event) for event in older))
    got = h.process(h.msg(outcome(125, "default", cid="b")))
    assert got.training_examples == expected.training_examples


def test_rebuild_timers_replaces_old_queues() -> None:
    h = Harness()
    h.process(h.msg(invoice(0, "ia", 100, 5, cid="a"), partition=0))
    h.driver.rebuild_timers([], lambda cid: 0)
    assert h.process(h.msg(order(40, "o", 1, cid="z"), partition=0)).warnings == []


@pytest.mark.parametrize(
    "corrupt",
    [b"\x80\x04not json", b'{"v": 99, "customer_id": "old"}', b"[1, 2]", b'{"v": 1}'],
    ids=["not-json", "unknown-version", "not-an-object", "no-customer-id"],
)
def test_rebuild_timers_skips_unreadable_states(corrupt: bytes) -> None:
    """One corrupt record in the state table must not stop a worker from starting
    (``rebuild_timers`` logs and skips states it cannot read)."""
    good = Harness()
    good.process(good.msg(invoice(0, "ia", 100, 5, cid="a")))
    h = Harness()
    h.table.update(good.table)
    h.driver.rebuild_timers([("broken", corrupt), ("a", good.table["a"])], lambda cid: 0)
    assert len(h.driver.timers[0]) == 1
    r = h.process(h.msg(order(40, "o", 1, cid="z")))
    assert [w["customer_id"] for _, w in r.warnings] == ["a"]


def test_a_valid_event_never_stops_the_batch() -> None:
    """Bad input never stops the stream: a contract-valid customer event whose financials
    hold a big JSON integer must not make ``process`` raise for the whole batch."""
    h = Harness()
    big = customer(0, 1000.0, cid="big", financials={"revenue": 10**20})
    result = h.process(h.msg(big), h.msg(order(1, "o1", 10, cid="ok")))
    assert "ok" in result.states
    assert decode(h.table["ok"]).orders


def test_detected_at_is_wall_clock_and_occurred_at_is_event_time() -> None:
    from datetime import UTC, datetime

    h = Harness(utilisation_context())
    before = datetime.now(UTC)
    r = h.process(h.msg(customer(0, 100.0)), h.msg(invoice(1, "i1", 95, 30)))
    [(_, w)] = r.warnings
    assert datetime.fromisoformat(w["detected_at"]) >= before
    assert w["occurred_at"] == at(1)


def test_encoded_states_decode() -> None:
    h = Harness()
    r = h.process(h.msg(customer(0, 100.0)), h.msg(invoice(1, "i1", 95, 30)))
    partition, raw = r.states["c1"]
    assert partition == 0
    assert encode(decode(raw)) == raw
    assert decode(raw).next_wakeup == T0S + 30 * DAY
