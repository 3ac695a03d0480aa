"""Poison messages: every message ends applied or dead-lettered, and the driver goes on.

The cases are the ones that stopped workers (an integer beyond 64 bits in a
customer event, a statement or financials; 250 kB of control characters; a 1 MB
segment string; one event stamped 2099; a crash inside the step), then a
corpus generated from the contract with hypothesis.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from risk_factory import (
    T0S,
    collection,
    customer,
    invoice,
    order,
    outcome,
    payment,
    statement,
    ts,
    utilisation_context,
)

from stream_risk import driver as monitor
from stream_risk.core import Context
from stream_risk.core.state import decode, encode
from stream_risk.driver import BatchResult, Limits, Message, MonitorDriver, dead_letter
from stream_risk.schemas.events import EVENT_TYPES
from stream_risk.schemas.outputs import DeadLetter

TOPICS = {f"in.{t}": t for t in EVENT_TYPES}
#: The wall clock the tests run at: a year after the events' T0.
NOW = ts(365)


class Harness:
    """A driver over a dict table, collecting every batch's outputs."""

    def __init__(
        self, limits: Limits | None = None, now: float = NOW, ctx: Context | None = None
    ) -> None:
        self.table: dict[str, bytes] = {}
        self.driver = MonitorDriver(
            ctx or Context(), TOPICS, self.table.get, limits=limits, clock=lambda: now
        )
        self.offset = 0
        self.dead: list[dict[str, Any]] = []
        self.warnings: list[dict[str, Any]] = []

    def msg(
        self,
        event: dict[str, Any] | bytes,
        *,
        key: bytes | None = None,
        topic: str | None = None,
        partition: int = 0,
        timestamp: float | None = None,
    ) -> Message:
        self.offset += 1
        if isinstance(event, dict):
            value = json.dumps(event).encode()
            topic = topic or f"in.{event['type']}"
            key = key if key is not None else str(event["customer_id"]).encode()
        else:
            value = event
        return Message(topic or "in.order", partition, self.offset, key, value, timestamp)

    def process(self, *messages: Message) -> BatchResult:
        result = self.driver.process(messages)
        limit = self.driver.limits.max_message_bytes
        for cid, (_, raw) in result.states.items():
            assert 0 < len(raw) < limit
            self.table[cid] = raw
        for key, record in result.dead_letters:
            DeadLetter.model_validate(record)
            assert len(orjson.dumps(record)) + len(key or b"") < limit
            self.dead.append(record)
        for _, record in [*result.warnings, *result.profiles.values()]:
            assert len(orjson.dumps(record)) < limit
        self.warnings += [w for _, w in result.warnings]
        return result


# ------------------------------------------------------------------ the cases found


POISON = {
    "payment_terms_days 10**30": (customer(0, 1000.0, terms=10**30), "payment_terms_days"),
    "days_past_due 10**30": (statement(1, 10.0, 10**30), "days_past_due"),
    "financials 10**30 nested": (
        customer(0, 1000.0, financials={"x": {"y": 10**30}}),
        "64 bits",
    ),
    "extra field 10**30": (order(1, "o1", 10.0, junk={"deep": [10**30]}), "64 bits"),
    "financials nested deep": (
        customer(0, 1000.0, financials={"a": {"b": {"c": {"d": {"e": 1}}}}}),
        "nested deeper",
    ),
    "NUL in customer id": (order(1, "o1", 10.0, cid="c\x001"), "customer_id"),
    "bidi override in customer id": (order(1, "o1", 10.0, cid="c\u202e1"), "customer_id"),
    "amount 1e300": (order(1, "o1", 1e300), "amount"),
    "terms beyond 10,000 days": (customer(0, 1000.0, terms=10_001), "payment_terms_days"),
}


@pytest.mark.parametrize("name", sorted(POISON))
def test_poison_is_a_dead_letter_and_the_next_event_applies(name: str) -> None:
    event, reason = POISON[name]
    h = Harness()
    result = h.process(h.msg(event), h.msg(order(2, "ok", 10.0, cid="good")))
    [dead] = h.dead
    assert reason in dead["reason"]
    assert dead["original"] == json.dumps(event)
    assert dead["original_sha256"] == hashlib.sha256(json.dumps(event).encode()).hexdigest()
    assert not dead["truncated"]
    assert set(result.states) == {"good"}
    assert decode(h.table["good"]).orders


CONTROL = "\x01" * 250_000


def test_250_kb_of_control_characters_is_a_bounded_dead_letter() -> None:
    h = Harness()
    value = json.dumps(order(1, "o1", 10.0, channel=CONTROL)).encode()
    h.process(h.msg(value, key=b"c1"), h.msg(order(2, "ok", 10.0)))
    [dead] = h.dead
    assert "exceeds the maximum" in dead["reason"]
    assert dead["truncated"] and dead["original_bytes"] == len(value)
    assert dead["original_sha256"] == hashlib.sha256(value).hexdigest()
    assert len(orjson.dumps(dead)) < 16_000
    assert decode(h.table["c1"]).orders


def test_control_characters_within_a_large_size_limit_still_fit_the_producer() -> None:
    # Escaped as JSON, 250 kB of control characters are 1.5 MB: above the producer's limit.
    h = Harness(Limits(max_event_bytes=2_000_000, max_message_bytes=1_000_000))
    value = json.dumps(order(1, "o1", 10.0, note=CONTROL)).encode()
    h.process(h.msg(value, key=b"c1"))
    [dead] = h.dead
    assert dead["reason"].startswith("invalid event")
    assert dead["truncated"] and dead["original"] == value.decode()[: monitor.EXCERPT_CHARS]


def test_a_1_mb_industry_is_a_dead_letter_and_no_state_is_written() -> None:
    big = customer(0, 1000.0, segment={"industry": "x" * 1_000_000})
    for limits, reason in [
        (Limits(), "exceeds the maximum"),
        (Limits(max_event_bytes=2_000_000), "segment.industry"),
    ]:
        h = Harness(limits)
        result = h.process(h.msg(big))
        [dead] = h.dead
        assert reason in dead["reason"]
        assert result.states == {} and h.table == {}


def test_an_output_above_the_message_size_makes_its_input_a_dead_letter() -> None:
    h = Harness(Limits(max_message_bytes=monitor.RECORD_OVERHEAD + 4_000))
    h.process(h.msg(customer(0, 1000.0)))
    before = h.table["c1"]
    fat = customer(1, 2000.0, financials={f"note{i}": "y" * 1_000 for i in range(5)})
    result = h.process(h.msg(fat))
    [dead] = h.dead
    assert "state would grow" in dead["reason"]
    assert h.table["c1"] == before
    assert decode(h.table["c1"]).credit_limit == 1000.0
    assert "c1" not in result.states
    assert h.driver.cache["c1"].credit_limit == 1000.0


def test_a_large_non_utf8_original_is_kept_once_as_base64_or_excerpted() -> None:
    raw = b"\xff" * 600_000
    msg = Message("in.order", 1, 9, b"c1", raw)
    _, fits = dead_letter(msg, "bad", 1_000_000, datetime.now(UTC))
    assert fits["original_base64"] is not None and not fits["truncated"]
    assert len(fits["original"]) == monitor.EXCERPT_CHARS
    _, cut = dead_letter(msg, "bad", 500_000, datetime.now(UTC))
    assert cut["original_base64"] is None and cut["truncated"]
    assert cut["original_bytes"] == 600_000
    assert len(orjson.dumps(cut)) < 500_000


def test_a_huge_key_and_reason_are_bounded() -> None:
    msg = Message("in.order", 1, 9, b"k" * 100_000, b"{}")
    key, record = dead_letter(msg, "r" * 50_000, 100_000, datetime.now(UTC))
    assert key is None
    assert len(record["key"]) == monitor.KEY_CHARS
    assert len(record["reason"]) == monitor.REASON_CHARS


# ------------------------------------------------------------------ the step crashes


def test_a_crash_in_the_step_leaves_the_state_as_before_and_the_batch_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = Harness()
    h.process(h.msg(customer(0, 1000.0)), h.msg(invoice(1, "i1", 100.0, 30)))
    before = h.table["c1"]
    real_step = monitor.step

    def crashing(state: Any, event: Any, ctx: Context) -> Any:
        if event.event_id == "boom":
            # Half-applied when it fails: the driver must not keep any of it.
            state.credit_limit = -1.0
            state.orders.append([0.0, 1.0, "half"])
            raise KeyError("half way")
        return real_step(state, event, ctx)

    monkeypatch.setattr(monitor, "step", crashing)
    result = h.process(
        h.msg(order(2, "o1", 10.0)),
        h.msg(order(3, "o2", 20.0, eid="boom")),
        h.msg(order(4, "o3", 30.0)),
    )
    [dead] = h.dead
    assert dead["reason"].startswith("internal error: KeyError")
    state = decode(h.table["c1"])
    assert state.credit_limit == 1000.0
    assert [o[2] for o in state.orders] == ["o1", "o3"]
    assert h.driver.counts["internal_errors"] == 1
    assert "c1" in result.profiles
    # The crashed message changed nothing: the same batch without it gives the same state.
    monkeypatch.setattr(monitor, "step", real_step)
    clean = Harness()
    clean.table["c1"] = before
    clean.process(
        Message("in.order", 0, 3, b"c1", json.dumps(order(2, "o1", 10.0)).encode()),
        Message("in.order", 0, 5, b"c1", json.dumps(order(4, "o3", 30.0)).encode()),
    )
    assert clean.table["c1"] == encode(state)


def test_a_crash_on_a_cached_state_first_touched_in_a_batch_restores_the_stored_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = Harness()
    h.process(h.msg(customer(0, 1000.0)), h.msg(invoice(1, "i1", 100.0, 30)))
    h.process(h.msg(order(2, "o1", 10.0)))
    before = h.table["c1"]
    real_step = monitor.step

    def crashing(state: Any, event: Any, ctx: Context) -> Any:
        if event.event_id == "boom":
            # The large fields, whose encoded parts the driver keeps between batches.
            state.orders.append([0.0, 1.0, "half"])
            state.book["inv"].clear()
            raise KeyError("half way")
        return real_step(state, event, ctx)

    monkeypatch.setattr(monitor, "step", crashing)
    # The cached state's first touch in this batch is the crash: what it is put back
    # to is the snapshot taken then, which must be the state the table holds.
    h.process(h.msg(order(3, "o2", 20.0, eid="boom")), h.msg(order(4, "o3", 1.0, cid="c2")))
    assert h.dead[0]["reason"].startswith("internal error: KeyError")
    assert "c1" not in h.process().states
    assert encode(h.driver.cache["c1"]) == before
    monkeypatch.setattr(monitor, "step", real_step)
    h.process(h.msg(order(5, "o4", 30.0)))
    state = decode(h.table["c1"])
    assert [o[2] for o in state.orders] == ["o1", "o4"]
    assert list(state.book["inv"]) == ["i1"]


def test_a_crash_after_wake_ups_that_were_not_encoded_keeps_those_wake_ups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Daily checks of an overdue invoice mostly move only the clock and the score; the
    driver does not encode those. A crash of the customer's next event still puts the
    state back to just after them, as a batch without the crashed event leaves it."""

    def batches(h: Harness, crash: bool) -> None:
        h.process(h.msg(customer(0, 10_000.0, cid="a")), h.msg(invoice(0, "i1", 100.0, 5, cid="a")))
        h.process(h.msg(order(0, "o0", 1.0, cid="b")))
        later = [h.msg(order(day, f"o{day}", 1.0, cid="b")) for day in range(8, 20)]
        boom = [h.msg(order(19, "oa", 5.0, cid="a", eid="boom"))] if crash else []
        h.process(*later, *boom, h.msg(order(20, "o20", 1.0, cid="b")))

    clean = Harness()
    batches(clean, crash=False)
    real_step = monitor.step

    def crashing(state: Any, event: Any, ctx: Context) -> Any:
        if event.event_id == "boom":
            state.orders.append([0.0, 1.0, "half"])
            state.clock = 0.0
            raise KeyError("half way")
        return real_step(state, event, ctx)

    monkeypatch.setattr(monitor, "step", crashing)
    h = Harness()
    batches(h, crash=True)
    [dead] = h.dead
    assert dead["reason"].startswith("internal error: KeyError")
    assert h.driver.counts["timer_wakeups"] == clean.driver.counts["timer_wakeups"] >= 10
    assert h.table["a"] == clean.table["a"]
    assert encode(h.driver.cache["a"]) == clean.table["a"]


def test_a_crash_drops_the_outputs_of_that_message_only(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(ctx=utilisation_context())
    h.process(h.msg(customer(0, 1000.0)))
    real_collect = MonitorDriver._collect

    def failing(self: MonitorDriver, partition: int, state: Any, out: Any, result: Any) -> None:
        real_collect(self, partition, state, out, result)
        if state.customer_id == "c1" and any(w["rule"] for w in out.warnings):
            raise RuntimeError("publishing failed after the warning was collected")

    monkeypatch.setattr(MonitorDriver, "_collect", failing)
    result = h.process(h.msg(invoice(1, "i1", 950.0, 30)), h.msg(order(2, "x", 1.0, cid="c2")))
    assert result.warnings == []
    [dead] = h.dead
    assert "RuntimeError" in dead["reason"]
    assert h.driver.cache["c1"].book["inv"] == {}
    assert "c2" in result.states


# ------------------------------------------------------------------ clock safety


def test_an_event_from_2099_is_a_dead_letter_and_moves_no_watermark() -> None:
    h = Harness()
    h.process(
        h.msg(customer(0, 10_000.0, cid="a")),
        h.msg(invoice(0, "ia", 100.0, 5, cid="a")),
        h.msg(order(1, "o", 1.0, cid="b")),
    )
    future = order(0, "o2099", 1.0, cid="b")
    future["occurred_at"] = "2099-01-01T00:00:00+00:00"
    result = h.process(h.msg(future, timestamp=ts(2)))
    [dead] = h.dead
    assert "ahead of the record's timestamp" in dead["reason"]
    assert result.warnings == [] and result.states == {}
    assert h.driver.watermarks[0] == ts(1)
    # Without a record timestamp, the wall clock holds it back the same way.
    result = h.process(h.msg(future))
    assert "ahead of the wall clock" in h.dead[-1]["reason"]
    assert result.warnings == [] and h.driver.watermarks[0] == ts(1)
    # The customer's later, normal events still apply.
    h.process(h.msg(order(3, "o3", 1.0, cid="b"), timestamp=ts(3)))
    assert [o[2] for o in decode(h.table["b"]).orders] == ["o", "o3"]
    assert len(h.dead) == 2


def test_clock_skew_allows_small_differences_and_the_wall_check_can_be_off() -> None:
    h = Harness(Limits(clock_skew=600.0))
    ahead = order(1, "o", 1.0)
    h.process(h.msg(ahead, timestamp=ts(1) - 300))
    assert h.dead == []
    simulated = Harness(Limits(check_record_time=False, check_wall_clock=False), now=T0S)
    simulated.process(simulated.msg(order(30, "o", 1.0), timestamp=T0S))
    assert simulated.dead == [] and "c1" in simulated.table
    record_only = Harness(Limits(check_wall_clock=False), now=T0S)
    record_only.process(record_only.msg(order(30, "o", 1.0), timestamp=T0S))
    assert "record's timestamp" in record_only.dead[0]["reason"]


def test_a_step_rejection_moves_no_watermark() -> None:
    h = Harness()
    h.process(h.msg(order(1, "o", 1.0, cid="b")))
    h.process(h.msg(order(5, "gbp", 1.0, cid="b", currency="GBP")))
    assert "GBP" in h.dead[0]["reason"]
    assert h.driver.watermarks[0] == ts(1)


def test_timer_catch_up_per_batch_is_bounded_and_resumes() -> None:
    h = Harness(Limits(max_timer_fires=1))
    h.process(
        h.msg(invoice(0, "ia", 100.0, 5, cid="a")),
        h.msg(invoice(0, "ib", 100.0, 5, cid="b")),
    )
    first = h.process(h.msg(order(40, "o", 1.0, cid="z")))
    assert len({cid for cid in first.states} - {"z"}) == 1
    assert h.driver.counts["timer_catch_up_deferred"] == 1
    # The next batch carries on from the watermark, even with an older event.
    second = h.process(h.msg(order(39, "late", 1.0, cid="z")))
    assert {cid for cid in [*first.states, *second.states]} >= {"a", "b"}
    assert h.driver.watermarks[0] == ts(40)


# ------------------------------------------------------------------ a generated corpus


def _valid_events() -> st.SearchStrategy[dict[str, Any]]:
    days = st.integers(0, 60)
    cid = st.sampled_from(["c1", "c2", "c3"])
    return st.one_of(
        st.builds(lambda d, c: customer(d, 1000.0, cid=c), days, cid),
        st.builds(lambda d, c, n: order(d, f"o{n}", 10.0, cid=c), days, cid, st.integers(0, 9)),
        st.builds(lambda d, c: invoice(d, f"i{d}", 50.0, d + 30, cid=c), days, cid),
        st.builds(lambda d, c: payment(d, f"p{d}", 20.0, cid=c), days, cid),
        st.builds(lambda d, c: statement(d, 10.0, 5, cid=c), days, cid),
        st.builds(lambda d, c: outcome(d, cid=c), days, cid),
        st.builds(lambda d, c: collection(d, "contacted", cid=c, note="n"), days, cid),
    )


#: Values beyond the contract's limits, or of the wrong kind, for any field.
POISON_VALUES = st.one_of(
    st.integers(min_value=2**63, max_value=10**40),
    st.integers(min_value=-(10**40), max_value=-(2**63) - 1),
    st.integers(min_value=10_001, max_value=2**62),
    st.floats(min_value=1e16, max_value=1e308),
    st.just(-1),
    st.text(min_size=201, max_size=3_000),
    st.text(alphabet=st.characters(codec="utf-8", categories=["Cc", "Cf"]), min_size=1),
    st.recursive(
        st.integers(min_value=-(10**30), max_value=10**30) | st.text(max_size=5),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner)
        ),
        max_leaves=30,
    ),
    st.sampled_from(["2099-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00", "", None]),
)


@st.composite
def poisoned(draw: st.DrawFn) -> tuple[dict[str, Any] | bytes, str]:
    """A valid event with one field replaced, added or removed, or broken bytes."""
    event = draw(_valid_events())
    how = draw(st.sampled_from(["replace", "add", "segment", "financials", "bytes", "valid"]))
    if how == "replace":
        event[draw(st.sampled_from(sorted(event)))] = draw(POISON_VALUES)
    elif how == "add":
        event[draw(st.text(min_size=1, max_size=20))] = draw(POISON_VALUES)
    elif how == "segment":
        event["segment"] = {draw(st.sampled_from(["industry", "size", "x"])): draw(POISON_VALUES)}
    elif how == "financials":
        event["financials"] = {"x": draw(POISON_VALUES)}
    elif how == "bytes":
        raw = json.dumps(event).encode()
        cut = draw(st.integers(0, len(raw)))
        return raw[:cut] + draw(st.binary(max_size=50)), how
    return event, how


#: Totals over the generated corpus (run with -s to see them).
CORPUS: dict[str, int] = {}
#: One context for the corpus: building one costs more than a batch.
SHARED = Context()


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
@given(st.lists(poisoned(), min_size=1, max_size=6))
def test_generated_poison_ends_applied_or_dead_and_never_stops_the_driver(
    batch: list[tuple[dict[str, Any] | bytes, str]],
) -> None:
    h = Harness(ctx=SHARED)
    messages = []
    for value, _ in batch:
        if isinstance(value, dict):
            cid = value.get("customer_id")
            key = str(cid).encode(errors="replace") if isinstance(cid, str) else b"c1"
            raw = json.dumps(value).encode(errors="surrogatepass")
            messages.append(h.msg(raw, key=key, topic=f"in.{value.get('type')}"))
        else:
            messages.append(h.msg(value, key=b"c1", topic="in.order"))
    result = h.process(*messages)
    applied = sum(v for k, v in h.driver.counts.items() if k.startswith("events."))
    assert applied + len(result.dead_letters) == len(messages)
    for _, raw in result.states.values():
        decode(raw)
    CORPUS["messages"] = CORPUS.get("messages", 0) + len(messages)
    CORPUS["dead"] = CORPUS.get("dead", 0) + len(result.dead_letters)
    CORPUS["applied"] = CORPUS.get("applied", 0) + applied
    CORPUS["batches"] = CORPUS.get("batches", 0) + 1
    print(f"poison corpus so far: {CORPUS}")


def test_a_redelivered_event_moves_the_watermark_again_after_a_restart() -> None:
    h = Harness()
    replayed = h.msg(order(40, "o", 1.0, cid="z"))
    h.process(h.msg(invoice(0, "ia", 100.0, 5, cid="a")), replayed)
    h.driver.forget()
    h.driver.rebuild_timers(h.table.items(), lambda cid: 0)
    h.process(replayed)
    assert h.driver.counts["redelivered"] == 1
    assert h.driver.watermarks[0] == ts(40)


def test_a_rejected_event_undoes_the_timers_it_fired() -> None:
    h = Harness()
    h.process(h.msg(invoice(0, "ia", 100.0, 5, cid="a")), h.msg(order(1, "o", 1.0, cid="b")))
    before = h.table["a"]
    rejected = h.process(h.msg(order(40, "gbp", 1.0, cid="b", currency="GBP")))
    assert rejected.warnings == [] and "GBP" in h.dead[0]["reason"]
    assert h.table["a"] == before and h.driver.watermarks[0] == ts(1)
    applied = h.process(h.msg(order(40, "eur", 1.0, cid="b")))
    assert [w["rule"] for _, w in applied.warnings if w["customer_id"] == "a"] == [
        "overdue_30_days"
    ]
