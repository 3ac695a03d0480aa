"""AlignedInput across a rebalance: records of one partition are applied in offset order.

The driver recognises a redelivery by the offset stored in the customer's state: a
record at or below it counts as already applied. So a record applied before an
earlier one of the same partition makes the earlier one look applied, and it is
lost. The records held back for alignment are given up when partitions are
revoked; records of the same generation fetched before that must not be applied
after them either.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from risk_factory import order, payment

from stream_risk.agents.alignment import Aligner, event_time
from stream_risk.agents.app import AlignedInput
from stream_risk.core import Context
from stream_risk.driver import Message, MonitorDriver
from stream_risk.schemas.events import EVENT_TYPES

TOPICS = {f"in.{t}": t for t in EVENT_TYPES}
INPUTS = ["in.order", "in.payment"]


class _Message:
    def __init__(self, topic: str, offset: int, event: dict[str, Any], generation: int) -> None:
        self.topic = topic
        self.partition = 0
        self.offset = offset
        self.key = event["customer_id"].encode()
        self.value = json.dumps(event).encode()
        self.timestamp = None
        self.generation_id = generation
        self.acked = False


class _Consumer:
    def __init__(self) -> None:
        self.paused: set[Any] = set()
        self.sought: list[tuple[Any, int]] = []
        #: (topic, offset) of each acknowledgement: what the commits count.
        self.acks: list[tuple[str, int]] = []

    def ack(self, message: _Message) -> None:
        assert not message.acked, "acknowledged twice"
        message.acked = True
        self.acks.append((message.topic, message.offset))

    def highwater(self, tp: Any) -> int:
        raise KeyError(tp)  # position not known: a group with an empty input waits

    def pause_partitions(self, tps: Any) -> None:
        self.paused.update(tps)

    def resume_partitions(self, tps: Any) -> None:
        self.paused.difference_update(tps)

    async def seek(self, tp: Any, offset: int) -> None:
        self.sought.append((tp, offset))


class _App:
    def __init__(self) -> None:
        self.consumer_generation_id = 1
        self.consumer = _Consumer()


class _Worker:
    """An aligned input in front of a real driver and its state table."""

    def __init__(self, max_buffered: int = 5000) -> None:
        self.table: dict[str, bytes] = {}
        self.driver = MonitorDriver(Context(population=None), TOPICS, self.table.get)
        self.app = _App()
        self.applied: list[tuple[str, int]] = []
        self.input = AlignedInput(
            app=self.app,
            aligner=Aligner(INPUTS, max_idle=1_000.0, max_buffered=max_buffered),
            apply=self.apply,
            stop=lambda: None,
            limits=self.driver.limits,
        )

    async def apply(self, messages: list[Any]) -> None:
        self.applied += [(m.topic, m.offset) for m in messages]
        result = self.driver.process(
            Message(m.topic, m.partition, m.offset, m.key, m.value) for m in messages
        )
        for customer_id, (_, raw) in result.states.items():
            self.table[customer_id] = raw

    def events(self, *records: tuple[str, int, dict[str, Any]]) -> list[Any]:
        generation = self.app.consumer_generation_id
        return [_Message(t, off, e, generation) for t, off, e in records]


LOG = [
    ("in.order", 0, order(1, "o1", 100)),
    ("in.order", 1, order(2, "o2", 200)),
    ("in.payment", 0, payment(3, "p1", 50)),
]


def test_event_times_of_the_log_are_readable() -> None:
    assert all(event_time(json.dumps(e).encode()) is not None for _, _, e in LOG)


def test_records_fetched_before_a_revocation_are_not_applied_after_it() -> None:
    """The first order is held (no payment fetched yet) when the partitions are revoked;
    the second order and the payment, fetched in the same generation, reach the input
    after that. Applied then, the second order would make the first one, read again
    from the committed offset, look like a redelivery."""

    async def scenario() -> _Worker:
        w = _Worker()
        await w.input.add(w.events(LOG[0]))
        assert w.applied == []  # the order waits for a payment
        w.input.abandon_held(set())
        # Handed to the agent while the revocation runs: still the old generation.
        stale = w.events(LOG[1], LOG[2])
        await w.input.add(stale)
        assert w.applied == [] and all(m.acked for m in stale)  # given up
        # The partitions come back in a new generation, read from the committed
        # offset (none: the earliest).
        w.app.consumer_generation_id = 2
        w.input.reassigned()
        await w.input.add(w.events(*LOG))
        return w

    w = asyncio.run(scenario())
    _both_orders_applied_in_offset_order(w)
    assert w.driver.counts["redelivered"] == 0, dict(w.driver.counts)


def test_a_revocation_seen_after_the_new_generation_began_gives_up_only_until_reassigned() -> None:
    """The revoke hook may run when the consumer already carries the new generation
    number: the records of that generation, fetched after the assignment, are applied."""

    async def scenario() -> _Worker:
        w = _Worker()
        w.app.consumer_generation_id = 2
        w.input.abandon_held(set())
        w.input.reassigned()
        await w.input.add(w.events(*LOG))
        return w

    _both_orders_applied_in_offset_order(asyncio.run(scenario()))


def _both_orders_applied_in_offset_order(w: _Worker) -> None:
    """Both orders of ``LOG`` applied once, in offset order; the payment waits for the
    next order or ``max_idle``."""
    assert w.applied == [("in.order", 0), ("in.order", 1)]
    assert w.driver.counts["events.order"] == 2, dict(w.driver.counts)
    # Only what was applied is acknowledged: the held payment's offset is not committed.
    assert w.app.consumer.acks == w.applied


def test_an_event_from_the_future_holds_back_no_partition() -> None:
    """An order stamped 2099 (a dead letter to be) at the head of the orders partition:
    ordered by its time it would wait until every other input ran dry, and the next
    order would reach the customer after later payments. It keeps its place instead."""
    future = order(1, "o2099", 1) | {"occurred_at": "2099-01-01T00:00:00+00:00"}

    async def scenario() -> _Worker:
        w = _Worker()
        await w.input.add(w.events(("in.order", 0, future), ("in.order", 1, order(5, "o", 9))))
        await w.input.add(
            w.events(("in.payment", 0, payment(3, "p1", 5)), ("in.payment", 1, payment(9, "p2", 5)))
        )
        return w

    w = asyncio.run(scenario())
    # The payment at day 9 waits for the next order (or max_idle).
    assert w.applied == [("in.order", 0), ("in.payment", 0), ("in.order", 1)]
    assert w.driver.counts["dead_letters"] == 1, dict(w.driver.counts)


def test_a_partition_paused_over_its_limit_is_read_on_from_its_next_record() -> None:
    """Faust drops, unseen, the rest of a fetch it is handing on when the partition is
    paused, and the fetch position is past them. On resume the partition is sought to
    the record after the last one held, or the dropped ones would wait for a new one."""

    async def scenario() -> _Worker:
        w = _Worker(max_buffered=2)
        await w.input.add(w.events(*(("in.order", n, order(n + 1, f"o{n}", 10)) for n in range(3))))
        assert w.app.consumer.paused == {("in.order", 0)}  # three held, over the limit
        await w.input.add(w.events(("in.payment", 0, payment(9, "p1", 5))))
        return w

    w = asyncio.run(scenario())
    assert w.applied[:3] == [("in.order", 0), ("in.order", 1), ("in.order", 2)]
    assert w.app.consumer.paused == set()
    assert w.app.consumer.sought == [(("in.order", 0), 3)]
