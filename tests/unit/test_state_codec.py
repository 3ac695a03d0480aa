"""The per-customer state codec: versioned JSON, lossless, never pickle."""

from __future__ import annotations

import json
import pickle
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from risk_factory import (
    DAY,
    T0S,
    apply_all,
    customer,
    event_lists,
    invoice,
    parse,
    payment,
    run,
    statement,
    strategy_context,
)

from stream_risk.core import CustomerState, advance
from stream_risk.core.state import STATE_VERSION, decode, encode

CUSTOMERS = ("c1", "c2")


def states_from(events: list[dict[str, Any]], advance_days: int | None) -> dict[str, CustomerState]:
    ctx = strategy_context()
    states, _ = apply_all([parse(e) for e in events], ctx)
    if advance_days is not None:
        for state in states.values():
            advance(state, T0S + advance_days * DAY, ctx)
    return states


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=event_lists(CUSTOMERS, max_size=30),
    suffix=event_lists(CUSTOMERS, max_size=10).map(
        lambda es: [dict(e, event_id="s" + e["event_id"]) for e in es]
    ),
    advance_days=st.none() | st.integers(0, 400),
)
def test_round_trip_preserves_state_and_behaviour(
    prefix: list[dict[str, Any]], suffix: list[dict[str, Any]], advance_days: int | None
) -> None:
    states = states_from(prefix, advance_days)
    ctx = strategy_context()
    for cid, state in states.items():
        raw = encode(state)
        assert isinstance(raw, bytes)
        data = json.loads(raw)  # plain JSON, readable by anything
        assert data["v"] == STATE_VERSION
        assert data["customer_id"] == cid
        copy = decode(raw)
        assert encode(copy) == raw
        assert decode(raw.decode()) is not None  # str input accepted too
        # The decoded state behaves exactly like the original from here on.
        mine = [parse(e) for e in suffix if e["customer_id"] == cid]
        _, log_a = apply_all(mine, ctx, {cid: state})
        _, log_b = apply_all(mine, ctx, {cid: copy})
        assert log_a == log_b
        assert encode(state) == encode(copy)
        later = T0S + 500 * DAY
        _, out_a = advance(state, later, ctx)
        _, out_b = advance(copy, later, ctx)
        strip = [{k: v for k, v in w.items() if k != "detected_at"} for w in out_a.warnings]
        assert strip == [{k: v for k, v in w.items() if k != "detected_at"} for w in out_b.warnings]
        assert encode(state) == encode(copy)


def test_round_trip_of_a_rich_state_is_exact() -> None:
    state, _ = run(
        [
            customer(
                0,
                1000.0,
                segment={"industry": "retail", "region": "EU", "tier_x": "a"},
                rating="BB+",
                financials={"revenue": 12.5, "debt_ratio": 0.4},
            ),
            invoice(1, "i1", 400, 10),
            invoice(2, "i2", 700, 40),
            payment(3, "p1", 450),
            statement(4, 1100.0, 30, "delinquent"),
        ]
    )
    advance(state, T0S + 60 * DAY, strategy_context())
    assert state.alerts and state.invoices and state.payments and state.seen
    assert decode(encode(state)) == state


def test_round_trip_is_exact_for_empty_segment_and_financials() -> None:
    """A customer event may carry ``segment: {}`` and ``financials: {}`` (all parts are
    optional); the codec must give back the same state, not ``None`` for ``{}``."""
    state, _ = run([customer(0, 1000.0, segment={}, financials={})])
    assert state.segment == {} and state.financials == {}
    assert decode(encode(state)) == state


def test_encode_accepts_every_valid_customer_event() -> None:
    """``financials`` is any JSON object; JSON integers are unbounded. A valid event must
    not make the state unencodable (the driver encodes states after every batch)."""
    state, _ = run([customer(0, 1000.0, financials={"revenue": 10**20})])
    raw = encode(state)
    assert decode(raw).financials is not None


def test_encoded_state_is_small_json_without_defaults() -> None:
    data = orjson.loads(encode(CustomerState("c9")))
    assert data == {
        "v": STATE_VERSION,
        "customer_id": "c9",
        "invoiced": False,
        "unapplied_credit": 0.0,
        "bounced_payments": 0,
        "risk_score": 0.0,
        "tier": "low",
    }


@pytest.mark.parametrize("version", [0, 2, STATE_VERSION + 1, "1", None])
def test_unknown_version_is_rejected(version: Any) -> None:
    data = orjson.loads(encode(CustomerState("c1")))
    data["v"] = version
    with pytest.raises(ValueError, match="version"):
        decode(orjson.dumps(data))


def test_missing_version_is_rejected() -> None:
    data = orjson.loads(encode(CustomerState("c1")))
    del data["v"]
    with pytest.raises(ValueError, match="version"):
        decode(orjson.dumps(data))


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[]",
        b'"state"',
        b"null",
        b"42",
        b'{"v": 1, "customer_id": "c1", "password": "x"}',
    ],
)
def test_garbage_is_rejected_with_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode(raw)


class _Boom:
    triggered = False

    def __reduce__(self) -> Any:
        return (_trigger, ())


def _trigger() -> None:
    _Boom.triggered = True


def test_no_pickle_a_pickled_payload_is_rejected_not_executed() -> None:
    _Boom.triggered = False
    evil = pickle.dumps(_Boom())
    pickle.loads(pickle.dumps(_Boom()))  # sanity: unpickling *would* run the payload
    assert _Boom.triggered
    _Boom.triggered = False
    with pytest.raises(ValueError):
        decode(evil)
    assert not _Boom.triggered
    with pytest.raises(ValueError):
        decode(pickle.dumps(CustomerState("c1")))


def test_no_pickle_encoding_is_utf8_json() -> None:
    state, _ = run([invoice(0, "i1", 10, 5), payment(1, "p1", 5)])
    raw = encode(state)
    assert not raw.startswith(b"\x80")  # pickle protocol marker
    assert json.loads(raw.decode("utf-8"))["customer_id"] == "c1"
