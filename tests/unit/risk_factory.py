"""Shared builders for the unit tests: contract events as JSON dicts, tiny drivers, strategies.

Events are built as plain JSON-able dicts (what an upstream would send) and parsed
through the contract adapter, so every test exercises the same validation path as
the drivers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from stream_risk.core import BadEvent, Context, CustomerState, advance, step
from stream_risk.core.receivables import INV_OPEN
from stream_risk.core.ruleset import RuleSet, default_files, load_files
from stream_risk.schemas.events import input_event_adapter

T0 = datetime(2024, 1, 1, tzinfo=UTC)
DAY = 86_400.0
T0S = T0.timestamp()


def at(days: float) -> str:
    """RFC 3339 timestamp ``days`` after T0."""
    return (T0 + timedelta(days=days)).isoformat()


def ts(days: float) -> float:
    """Epoch seconds ``days`` after T0."""
    return T0S + days * DAY


def iso_ts(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _envelope(kind: str, days: float, cid: str, eid: str | None, key: str) -> dict[str, Any]:
    return {
        "type": kind,
        "event_id": eid or f"{cid}:{kind}:{key}:{days}",
        "customer_id": cid,
        "occurred_at": at(days),
    }


def customer(
    days: float,
    limit: float = 1000.0,
    *,
    cid: str = "c1",
    eid: str | None = None,
    currency: str = "EUR",
    terms: int = 30,
    **extra: Any,
) -> dict[str, Any]:
    d = _envelope("customer", days, cid, eid, str(limit))
    d.update(credit_limit=limit, currency=currency, payment_terms_days=terms, **extra)
    return d


def order(
    days: float,
    order_id: str,
    amount: float,
    status: str = "placed",
    *,
    cid: str = "c1",
    eid: str | None = None,
    currency: str = "EUR",
    **extra: Any,
) -> dict[str, Any]:
    d = _envelope("order", days, cid, eid, f"{order_id}:{status}")
    d.update(order_id=order_id, amount=amount, currency=currency, status=status, **extra)
    return d


def invoice(
    days: float,
    invoice_id: str,
    amount: float,
    due_days: float,
    *,
    cid: str = "c1",
    eid: str | None = None,
    currency: str = "EUR",
    **extra: Any,
) -> dict[str, Any]:
    d = _envelope("invoice", days, cid, eid, invoice_id)
    d.update(invoice_id=invoice_id, amount=amount, currency=currency, due_at=at(due_days), **extra)
    return d


def payment(
    days: float,
    payment_id: str,
    amount: float,
    status: str = "settled",
    *,
    invoice_id: str | None = None,
    cid: str = "c1",
    eid: str | None = None,
    currency: str = "EUR",
    **extra: Any,
) -> dict[str, Any]:
    d = _envelope("payment", days, cid, eid, f"{payment_id}:{status}")
    d.update(payment_id=payment_id, amount=amount, currency=currency, status=status, **extra)
    if invoice_id is not None:
        d["invoice_id"] = invoice_id
    return d


def statement(
    days: float,
    balance: float,
    dpd: int = 0,
    status: str = "revolving",
    *,
    cid: str = "c1",
    eid: str | None = None,
    currency: str = "EUR",
    **extra: Any,
) -> dict[str, Any]:
    d = _envelope("statement", days, cid, eid, f"{balance}:{dpd}")
    d.update(
        statement_id=d["event_id"],
        balance=balance,
        currency=currency,
        days_past_due=dpd,
        status=status,
        **extra,
    )
    return d


def outcome(
    days: float, value: str = "current", *, cid: str = "c1", eid: str | None = None
) -> dict[str, Any]:
    d = _envelope("outcome", days, cid, eid, value)
    d["outcome"] = value
    return d


def collection(
    days: float, action: str = "contacted", *, cid: str = "c1", eid: str | None = None, **extra: Any
) -> dict[str, Any]:
    d = _envelope("collection", days, cid, eid, action)
    d.update(action=action, **extra)
    return d


#: A utilisation warning as the default pack once had it (medium at 90 % of the limit):
#: the pack no longer warns on utilisation alone, and tests of the warning lifecycle
#: (fire, resolve when paid down or the limit is raised, ids) drive this one.
UTILISATION_RULE = (Path(__file__).parents[1] / "data" / "rules" / "utilisation.yaml").read_text()


def utilisation_rules() -> RuleSet:
    """The default pack plus :data:`UTILISATION_RULE`."""
    rules, errors = load_files({**default_files(), "utilisation.yaml": UTILISATION_RULE})
    assert rules is not None and not errors, errors
    return rules


def utilisation_context(**settings: Any) -> Context:
    """A context deciding with :func:`utilisation_rules`."""
    return Context(rules=utilisation_rules(), **settings)


def parse(event: dict[str, Any]) -> Any:
    """Validate a JSON-able event dict through the contract (as the drivers do)."""
    return input_event_adapter.validate_json(json.dumps(event))


def run(
    events: Iterable[dict[str, Any]], ctx: Context | None = None, state: CustomerState | None = None
) -> tuple[CustomerState, list[dict[str, Any]]]:
    """Apply ``events`` (one customer) with ``step``; return the state and all warnings."""
    ctx = ctx or Context()
    warnings: list[dict[str, Any]] = []
    for raw in events:
        event = parse(raw)
        if state is None:
            state = CustomerState(event.customer_id)
        state, out = step(state, event, ctx)
        warnings.extend(out.warnings)
    assert state is not None
    return state, warnings


def follow(state: CustomerState, until: float, ctx: Context | None = None) -> list[dict[str, Any]]:
    """Advance ``state`` through every wake-up it asks for up to event time ``until``.

    This is what a driver's timer queue does when no further event arrives for the
    customer until ``until``.
    """
    ctx = ctx or Context()
    warnings: list[dict[str, Any]] = []
    guard = 0
    while state.next_wakeup is not None and state.next_wakeup <= until:
        guard += 1
        assert guard < 10_000, "wake-ups do not make progress"
        before = state.next_wakeup
        state, out = advance(state, state.next_wakeup, ctx)
        warnings.extend(out.warnings)
        assert state.next_wakeup is None or state.next_wakeup > before
    state, out = advance(state, until, ctx)
    warnings.extend(out.warnings)
    return warnings


def open_invoices(state: CustomerState) -> dict[str, float]:
    """invoice_id -> open amount, for invoices with something left to pay."""
    invoices = state.book["inv"]
    return {k: round(v[INV_OPEN], 6) for k, v in invoices.items() if v[INV_OPEN] > 1e-6}


def strip_detected(warning: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in warning.items() if k != "detected_at"}


def apply_all(
    events: Iterable[Any], ctx: Context, states: dict[str, CustomerState] | None = None
) -> tuple[dict[str, CustomerState], list[Any]]:
    """Apply parsed events (any customers) with ``step``; BadEvents are recorded, not raised."""
    states = {} if states is None else states
    log: list[Any] = []
    for event in events:
        state = states.get(event.customer_id) or CustomerState(event.customer_id)
        states[event.customer_id] = state
        try:
            _, out = step(state, event, ctx)
        except BadEvent as exc:
            log.append(("bad", event.event_id, str(exc)))
            continue
        log.append(("ok", event.event_id, out.duplicate, [strip_detected(w) for w in out.warnings]))
    return states, log


# --------------------------------------------------------------------------- strategies

#: Rates the strategy contexts configure: USD converts, GBP has no rate (a bad event).
FX = {"USD": 0.9}
CURRENCIES = ["EUR"] * 8 + ["USD", "GBP"]


def strategy_context(**kw: Any) -> Context:
    return Context(base_currency="EUR", fx_rates=dict(FX), **kw)


_days = st.integers(0, 24 * 200).map(lambda h: h / 24)
_amount = st.sampled_from([0.0, 10.0, 50.0, 99.99, 100.0, 250.5, 900.0, 1200.0])
_paid = st.sampled_from([10.0, 100.0, 250.5, 900.0, 2500.0])
_cur = st.sampled_from(CURRENCIES)


def _event_strategy(cid: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    customers = st.builds(
        lambda d, c, lim, cur, terms, seg, fin: customer(
            d,
            lim,
            cid=c,
            currency=cur,
            terms=terms,
            **({} if seg is None else {"segment": seg}),
            **({} if fin is None else {"financials": fin}),
        ),
        _days,
        cid,
        # a limit of 0 is exercised by an explicit test in test_step.py
        st.sampled_from([100.0, 1000.0, 5000.0]),
        _cur,
        st.integers(0, 60),
        st.none()
        | st.fixed_dictionaries(
            {}, optional={"industry": st.sampled_from(["a", "b"]), "region": st.just("EU")}
        ),
        st.none()
        | st.dictionaries(
            st.sampled_from(["revenue", "current_ratio"]),
            st.integers(-(10**6), 10**6) | st.floats(-1e6, 1e6),
        ),
    )
    orders = st.builds(
        lambda d, c, oid, amt, status, cur: order(d, oid, amt, status, cid=c, currency=cur),
        _days,
        cid,
        st.sampled_from(["o1", "o2", "o3"]),
        _amount,
        st.sampled_from(["placed", "placed", "cancelled"]),
        _cur,
    )
    invoices = st.builds(
        lambda d, c, iid, amt, due, cur: invoice(d, iid, amt, d + due, cid=c, currency=cur),
        _days,
        cid,
        st.sampled_from(["i1", "i2", "i3", "i4"]),
        _amount,
        st.integers(-5, 60),
        _cur,
    )
    payments = st.builds(
        lambda d, c, pid, amt, status, iid, cur: payment(
            d, pid, amt, status, invoice_id=iid, cid=c, currency=cur
        ),
        _days,
        cid,
        st.sampled_from(["p1", "p2", "p3"]),
        _paid,
        st.sampled_from(["settled", "settled", "bounced", "reversed"]),
        st.none() | st.sampled_from(["i1", "i2", "i3", "i4"]),
        _cur,
    )
    statements = st.builds(
        lambda d, c, bal, dpd, status, cur: statement(d, bal, dpd, status, cid=c, currency=cur),
        _days,
        cid,
        st.sampled_from([-50.0, 0.0, 300.0, 950.0, 2000.0]),
        st.sampled_from([0, 0, 30, 60, 90, 120]),
        st.sampled_from(["no_balance", "paid_in_full", "revolving", "delinquent"]),
        _cur,
    )
    outcomes = st.builds(
        lambda d, c, o: outcome(d, o, cid=c),
        _days,
        cid,
        st.sampled_from(["default", "written_off", "recovered", "current"]),
    )
    collections = st.builds(lambda d, c: collection(d, cid=c), _days, cid)
    return st.one_of(customers, orders, invoices, payments, statements, outcomes, collections)


def steps_and_wake_ups(
    events: Iterable[dict[str, Any]], gaps: list[float], ctx: Context
) -> Iterator[CustomerState]:
    """One customer's state after each of ``events`` the core accepts (rejected ones are
    skipped), and after each of the wake-ups that follow it, ``gaps`` days apart (as
    many of them as the events applied so far pick)."""
    for state in accepted_steps(events, ctx):
        yield state
        assert state.clock is not None
        now = state.clock
        for gap in gaps[: 1 + len(state.seen) % len(gaps)]:
            now += gap * DAY
            advance(state, now, ctx)  # in place
            yield state


def accepted_steps(events: Iterable[dict[str, Any]], ctx: Context) -> Iterator[CustomerState]:
    """One customer's state (one object, changed in place) after each of ``events`` the
    core accepts; rejected ones are skipped."""
    state = CustomerState("c1")
    for raw in events:
        try:
            state, _ = step(state, parse(raw), ctx)
        except BadEvent:
            continue
        yield state


def _number(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every event a unique event_id (e0, e1, ...)."""
    out = []
    for i, e in enumerate(events):
        e = dict(e)
        e["event_id"] = f"e{i}"
        out.append(e)
    return out


def _maybe_sorted(drawn: tuple[list[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    events, in_time_order = drawn
    return sorted(events, key=lambda e: e["occurred_at"]) if in_time_order else events


def event_lists(
    customers: tuple[str, ...] = ("c1",), min_size: int = 0, max_size: int = 30
) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Lists of contract events (as dicts) with unique event ids; half of them in event-time
    order (realistic, so warnings fire and resolve), half in arbitrary order."""
    return (
        st.tuples(
            st.lists(
                _event_strategy(st.sampled_from(customers)), min_size=min_size, max_size=max_size
            ),
            st.booleans(),
        )
        .map(_maybe_sorted)
        .map(_number)
    )


def gap_lists(most: float, max_size: int = 4) -> st.SearchStrategy[list[float]]:
    """One to ``max_size`` gaps of 0 to ``most`` (in the caller's unit) between wake-ups."""
    return st.lists(
        st.floats(min_value=0, max_value=most, allow_nan=False), min_size=1, max_size=max_size
    )


# --------------------------------------------------------------------------- features, lateness


def same_value(got: Any, want: Any, rel: float = 1e-6, abs_: float = 1e-6) -> bool:
    """Feature values agree: None and labels exactly, numbers within float noise."""
    if got is None or want is None:
        return got is None and want is None
    if isinstance(got, str) or isinstance(want, str):
        return bool(got == want)
    return bool(got == pytest.approx(want, rel=rel, abs=abs_))


def feature_differences(got: dict[str, Any], want: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """name -> (got, want) for every feature that differs (or is missing on one side)."""
    return {
        name: (got.get(name, "<missing>"), want.get(name, "<missing>"))
        for name in sorted(set(got) | set(want))
        if name not in got or name not in want or not same_value(got[name], want[name])
    }


def late_arrival_order(times: list[float], delays: list[float], lateness: float) -> list[int]:
    """Arrival order of events at ``times`` when event ``i`` is held back ``delays[i]``.

    With every delay in ``[0, lateness]`` no event arrives more than ``lateness``
    behind the latest event time seen before it: if ``j`` arrives before ``i`` then
    ``t_j + d_j <= t_i + d_i``, so ``t_i >= t_j - d_i >= t_j - lateness``.
    """
    assert len(times) == len(delays)
    assert all(0 <= d <= lateness for d in delays)
    return sorted(range(len(times)), key=lambda i: (times[i] + delays[i], i))
