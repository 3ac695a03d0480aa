"""Idempotence: redelivered events change nothing, and dedup memory stays bounded."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from risk_factory import apply_all, event_lists, order, parse, strategy_context

from stream_risk.core import Context, CustomerState, step
from stream_risk.core.state import decode, encode
from stream_risk.core.step import event_key
from stream_risk.driver import Message, MonitorDriver

CUSTOMERS = ("c1", "c2", "c3")
PARTITION = {"c1": 0, "c2": 1, "c3": 0}


@st.composite
def with_redeliveries(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[int]]:
    """A sequence of distinct events, and the order of delivery with some redelivered:
    each redelivery is a copy of an event inserted anywhere after its first delivery."""
    events = draw(event_lists(CUSTOMERS, min_size=1, max_size=25))
    order_ = list(range(len(events)))
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(events) - 1))
        first = order_.index(i)
        order_.insert(draw(st.integers(first + 1, len(order_))), i)
    return events, order_


def final(states: dict[str, CustomerState]) -> dict[str, bytes]:
    return {cid: encode(s) for cid, s in sorted(states.items())}


def warnings_of(log: list[Any]) -> list[Any]:
    return [w for entry in log if entry[0] == "ok" for w in entry[3]]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(with_redeliveries())
def test_redelivered_events_change_nothing(case: tuple[list[dict[str, Any]], list[int]]) -> None:
    events, delivery = case
    parsed = [parse(e) for e in events]
    ctx = strategy_context()
    clean_states, clean_log = apply_all(parsed, ctx)
    noisy_states, noisy_log = apply_all([parsed[i] for i in delivery], ctx)
    assert final(noisy_states) == final(clean_states)
    assert warnings_of(noisy_log) == warnings_of(clean_log)
    # every redelivery of an applied event was recognised as a duplicate
    applied = {entry[1] for entry in clean_log if entry[0] == "ok"}
    delivered: set[int] = set()
    expected = 0
    for i in delivery:
        expected += i in delivered and events[i]["event_id"] in applied
        delivered.add(i)
    assert sum(1 for entry in noisy_log if entry[0] == "ok" and entry[2]) == expected


def _messages(events: list[dict[str, Any]], delivery: list[int]) -> list[Message]:
    out = []
    for offset, i in enumerate(delivery):
        e = events[i]
        out.append(
            Message(
                topic=f"t.{e['type']}",
                partition=PARTITION[e["customer_id"]],
                offset=offset,
                key=e["customer_id"].encode(),
                value=json.dumps(e).encode(),
            )
        )
    return out


def _drive(messages: list[Message], cuts: list[int]) -> tuple[dict[str, bytes], list[Any]]:
    table: dict[str, bytes] = {}
    driver = MonitorDriver(
        strategy_context(),
        {
            f"t.{t}": t
            for t in (
                "customer",
                "order",
                "invoice",
                "payment",
                "statement",
                "outcome",
                "collection",
            )
        },
        table.get,
    )
    warnings: list[Any] = []
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(messages)), len(messages)]
    for lo, hi in itertools.pairwise(bounds):
        result = driver.process(messages[lo:hi])
        for cid, (_, raw) in result.states.items():
            table[cid] = raw
        warnings += [
            (p, {k: v for k, v in w.items() if k != "detected_at"}) for p, w in result.warnings
        ]
    return {cid: _without_offsets(raw) for cid, raw in sorted(table.items())}, warnings


def _without_offsets(raw: bytes) -> bytes:
    # Offsets record where each message sat on its topic, which redeliveries shift.
    state = decode(raw)
    state.offsets = {}
    return encode(state)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(with_redeliveries(), st.lists(st.integers(0, 40), max_size=4))
def test_redeliveries_through_the_monitor_driver_change_nothing(
    case: tuple[list[dict[str, Any]], list[int]], cuts: list[int]
) -> None:
    """The same with the driver: per-partition timers, batches, a state table."""
    events, delivery = case
    clean_table, clean_warnings = _drive(_messages(events, list(range(len(events)))), [])
    noisy_table, noisy_warnings = _drive(_messages(events, delivery), cuts)
    assert noisy_table == clean_table
    assert noisy_warnings == clean_warnings


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(1, 12), n=st.integers(0, 40))
def test_dedup_memory_is_bounded_by_capacity(capacity: int, n: int) -> None:
    ctx = Context(dedup_capacity=capacity)
    state = CustomerState("c1")
    ids = [f"e{i}" for i in range(n)]
    for i, eid in enumerate(ids):
        state, _ = step(state, parse(order(i / 24, f"o{i}", 1.0, eid=eid)), ctx)
        assert len(state.seen) <= capacity
    # the most recent `capacity` ids are remembered, in order
    assert list(state.seen) == [event_key(i) for i in ids[-capacity:]]
    # and a redelivery of any remembered one is still recognised
    for i in range(max(0, n - capacity), n):
        _, out = step(state, parse(order(i / 24, f"o{i}", 1.0, eid=ids[i])), ctx)
        assert out.duplicate
    assert len(state.seen) <= capacity


def test_dedup_is_per_event_id_not_per_content() -> None:
    ctx = Context()
    state = CustomerState("c1")
    state, _ = step(state, parse(order(1, "o1", 10, eid="x")), ctx)
    state, out = step(state, parse(order(1, "o1", 10, eid="y")), ctx)
    assert not out.duplicate
    assert len(state.orders) == 2
