"""Late arrivals: within the allowed lateness, arrival order does not matter; beyond it,
an event is a bad event and changes nothing.

The property: a customer's events applied in event-time order, and the same events
arriving shuffled so that none arrives more than ``ctx.allowed_lateness`` behind the
latest event time seen before it, give the same features (all of them) and the same
state once both are advanced to the same time. The shuffles come from holding events
back by a delay in ``[0, lateness]`` (see ``risk_factory.late_arrival_order``), which
produces payments before their invoices, bounces before the payments they undo and
cancellations before their placements; the table tests below pin those cases.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from risk_factory import (
    T0S,
    feature_differences,
    iso_ts,
    late_arrival_order,
    open_invoices,
    parse,
)

from stream_risk.core import BadEvent, Context, CustomerState, advance, step
from stream_risk.core.features import REGISTRY, compute, next_check
from stream_risk.core.ruleset import default_rules
from stream_risk.core.state import decode, encode

DAY = 86_400.0
LATENESS = Context().allowed_lateness


def ev(kind: str, t: float, eid: str, **fields: Any) -> dict[str, Any]:
    event = {"type": kind, "event_id": eid, "customer_id": "c1", "occurred_at": iso_ts(t)}
    if kind in {"order", "invoice", "payment", "statement", "customer"}:
        event["currency"] = "EUR"
    for name in ("due_at", "promised_at"):
        if name in fields:
            fields[name] = iso_ts(fields[name])
    event.update(fields)
    return event


# ------------------------------------------------------------------ strategies

GAPS = st.sampled_from([1, 60, 3600, 6 * 3600, DAY, 3 * DAY, 6 * DAY, 7 * DAY, 8 * DAY, 35 * DAY])
DELAYS = st.sampled_from([0, 0, 0, 0, 1, 3600, DAY, 3 * DAY, 6 * DAY, LATENESS - 1, LATENESS])
AMOUNTS = st.sampled_from([10.0, 99.99, 100.0, 250.5, 400.0, 1200.0])
KINDS = st.sampled_from(
    [
        "customer",
        "placed",
        "placed",
        "cancelled",
        "cancel-first",
        "invoice",
        "invoice",
        "invoice",
        "payment",
        "payment",
        "payment",
        "bounce",
        "statement",
        "promise",
        "outcome",
    ]
)


@st.composite
def timelines(draw: st.DrawFn) -> tuple[list[dict[str, Any]], float]:
    """A customer's events in event-time order (distinct times), and a time at or after
    the last one. References may point forwards: a payment to an invoice issued later, a
    bounce of a payment settled later, a cancellation of an order placed a little later
    (an order id reused months after its cancellation has its own test below)."""
    n = draw(st.integers(1, 28))
    t = T0S
    events: list[dict[str, Any]] = []
    counts = {"o": 0, "i": 0, "p": 0}
    for k in range(n):
        t += draw(GAPS)
        kind = draw(KINDS)
        eid = f"e{k}"
        if kind == "customer":
            limit = draw(st.sampled_from([0.0, 1000.0, 5000.0]))
            events.append(ev("customer", t, eid, credit_limit=limit, payment_terms_days=30))
        elif kind == "placed":
            oid = f"o{counts['o']}"
            counts["o"] += 1
            events.append(ev("order", t, eid, order_id=oid, amount=draw(AMOUNTS), status="placed"))
        elif kind == "cancelled":  # a placed order, or one never placed
            k = draw(st.integers(0, counts["o"]))
            oid = f"o{k}" if k < counts["o"] else f"ghost{k}"
            events.append(ev("order", t, eid, order_id=oid, amount=1.0, status="cancelled"))
        elif kind == "cancel-first":  # in event time, the cancellation precedes its placement
            oid = f"o{counts['o']}"
            counts["o"] += 1
            events.append(ev("order", t, eid, order_id=oid, amount=1.0, status="cancelled"))
            t += draw(st.sampled_from([1, 3600, 3 * DAY]))
            events.append(
                ev("order", t, f"{eid}p", order_id=oid, amount=draw(AMOUNTS), status="placed")
            )
        elif kind == "invoice":
            iid = f"i{counts['i']}"
            counts["i"] += 1
            due = t + draw(st.sampled_from([-5, 0, 10, 30])) * DAY
            events.append(ev("invoice", t, eid, invoice_id=iid, amount=draw(AMOUNTS), due_at=due))
        elif kind == "payment":
            pid = f"p{counts['p']}"
            counts["p"] += 1
            ref = draw(st.none() | st.integers(0, counts["i"] + 1).map(lambda i: f"i{i}"))
            extra = {} if ref is None else {"invoice_id": ref}
            events.append(
                ev(
                    "payment",
                    t,
                    eid,
                    payment_id=pid,
                    amount=draw(AMOUNTS),
                    status="settled",
                    **extra,
                )
            )
        elif kind == "bounce":
            pid = f"p{draw(st.integers(0, counts['p']))}"
            status = draw(st.sampled_from(["bounced", "reversed"]))
            events.append(
                ev("payment", t, eid, payment_id=pid, amount=draw(AMOUNTS), status=status)
            )
        elif kind == "statement":
            events.append(
                ev(
                    "statement",
                    t,
                    eid,
                    statement_id=f"s{k}",
                    balance=draw(st.sampled_from([-50.0, 0.0, 300.0, 2000.0])),
                    days_past_due=draw(st.sampled_from([0, 30, 60, 90])),
                    status=draw(st.sampled_from(["revolving", "delinquent", "paid_in_full"])),
                )
            )
        elif kind == "promise":
            events.append(
                ev(
                    "collection",
                    t,
                    eid,
                    action="promise_to_pay",
                    promised_at=t + draw(st.sampled_from([DAY, 10 * DAY, 40 * DAY])),
                    promised_amount=draw(AMOUNTS),
                )
            )
        else:
            events.append(
                ev("outcome", t, eid, outcome=draw(st.sampled_from(["current", "default"])))
            )
    final = t + draw(st.sampled_from([0, 1, DAY, 10 * DAY, 40 * DAY, 100 * DAY]))
    return events, final


# ------------------------------------------------------------------ helpers


def apply_in(events: list[dict[str, Any]], order: list[int], final: float) -> CustomerState:
    ctx = Context()
    state = CustomerState("c1")
    for i in order:
        step(state, parse(events[i]), ctx)  # a BadEvent here is a broken shuffle: fails
    advance(state, final, ctx)
    return state


#: Rules of the default pack that read only features computed from the input (no score,
#: tier or online detector, which learn in arrival order).
_LEARNED = {"risk_score", "risk_score_change", "raw_tier", "tier"} | {
    name for name, f in REGISTRY.items() if f.group == "detectors"
}
ORDER_FREE_RULES = {
    rule.name
    for rule in default_rules()
    if not _LEARNED
    & {*rule.condition.variables, *(v for e in rule.escalate for v in e.condition.variables)}
}


def comparable(state: CustomerState) -> dict[str, Any]:
    """The encoded state without what legitimately depends on arrival order: the ids seen
    (arrival order), warning episodes (ids and times name the triggering event), the
    float rounding of per-day sums, and what learns online in arrival order (detectors,
    the risk score they feed and the model-input snapshots taken at each evaluation)."""
    data = orjson.loads(encode(state))
    for learned in ("seen", "detectors", "snapshots", "risk_score", "tier", "tier_hold"):
        data.pop(learned, None)
    # Lifecycles remember their history (cooldowns, escalations, pending since): what
    # must not depend on arrival order is which rules hold at the end, for the rules
    # that read no learned value.
    holding = set(data.pop("alerts", {})) | {
        rule for rule, ep in data.pop("watch", {}).items() if ep[0] in ("pending", "muted")
    }
    data["holding"] = sorted(holding & ORDER_FREE_RULES)
    # Credit assessments and reviews are decisions taken at evaluation times, as warning
    # episodes are; what they read (the credit report above, the financials) must agree.
    review = data.pop("credit_review", None) or {}
    data["credit_inputs"] = [review.get("fx"), review.get("digest")]
    # The wake-up also serves those lifecycles; the features' own next change must agree.
    data.pop("next_wakeup", None)
    data["next_feature_change"] = next_check(state, state.clock or 0.0)
    data["ledger"] = [[day, round(v, 6)] for day, v in data.get("ledger", [])]
    data["ledger_base"] = round(data.get("ledger_base", 0.0), 6)
    return data


def assert_same_customer(a: CustomerState, b: CustomerState, now: float) -> None:
    fa, fb = compute(a, now), compute(b, now)
    assert set(fa) == set(REGISTRY)
    # Detectors learn in arrival order; assessments are decided at evaluation times.
    online = {name for name, f in REGISTRY.items() if f.group in ("detectors", "assessment")}
    assert {k: v for k, v in feature_differences(fb, fa).items() if k not in online} == {}
    assert comparable(b) == comparable(a)


# ------------------------------------------------------------------ the property


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(timelines(), st.data())
def test_arrival_order_within_the_allowed_lateness_does_not_matter(
    case: tuple[list[dict[str, Any]], float], data: st.DataObject
) -> None:
    events, final = case
    delays = data.draw(st.lists(DELAYS, min_size=len(events), max_size=len(events)))
    times = [parse(e).occurred_at.timestamp() for e in events]
    shuffled = late_arrival_order(times, delays, LATENESS)
    in_order = apply_in(events, list(range(len(events))), final)
    late = apply_in(events, shuffled, final)
    assert_same_customer(in_order, late, final)
    # ... and they stay the same as the clock moves on without events.
    for later in (final + 31 * DAY, final + 91 * DAY):
        advance(in_order, later, Context())
        advance(late, later, Context())
        assert_same_customer(in_order, late, later)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(timelines(), st.sampled_from(range(7)), st.sampled_from([1, 3600, 30 * DAY]))
def test_an_event_older_than_the_allowed_lateness_is_bad_and_changes_nothing(
    case: tuple[list[dict[str, Any]], float], which: int, beyond: float
) -> None:
    events, final = case
    ctx = Context()
    state = apply_in(events, list(range(len(events))), final)
    assert state.clock == final and state.updated_at is not None
    # Lateness counts from the latest event applied; the clock (timers) may be further.
    latest = state.updated_at
    old = latest - LATENESS - beyond
    late = _one_of_each(old)[which]
    before = encode(state)
    with pytest.raises(BadEvent, match="allowed lateness") as err:
        step(state, parse(late), ctx)
    assert "older than the customer's latest event time" in str(err.value)
    assert encode(state) == before
    # Exactly at the allowed lateness it is still applied.
    fresh = decode(before)
    on_time = dict(late, occurred_at=iso_ts(latest - LATENESS))
    _, out = step(fresh, parse(on_time), ctx)
    assert out.duplicate is False
    assert encode(fresh) != before


def _one_of_each(t: float) -> list[dict[str, Any]]:
    return [
        ev("customer", t, "late-c", credit_limit=10.0, payment_terms_days=5),
        ev("order", t, "late-o", order_id="lo", amount=5.0, status="placed"),
        ev("invoice", t, "late-i", invoice_id="li", amount=5.0, due_at=t + DAY),
        ev("payment", t, "late-p", payment_id="lp", amount=5.0, status="settled"),
        ev(
            "statement",
            t,
            "late-s",
            statement_id="ls",
            balance=5.0,
            days_past_due=0,
            status="revolving",
        ),
        ev(
            "collection",
            t,
            "late-k",
            action="promise_to_pay",
            promised_at=t + DAY,
            promised_amount=5.0,
        ),
        ev("outcome", t, "late-x", outcome="default"),
    ]


def test_a_redelivered_old_event_is_a_duplicate_not_a_bad_event() -> None:
    ctx = Context()
    first = ev("order", T0S, "o1", order_id="o1", amount=5.0, status="placed")
    state = CustomerState("c1")
    step(state, parse(first), ctx)
    step(
        state,
        parse(ev("order", T0S + 30 * DAY, "o2", order_id="o2", amount=5.0, status="placed")),
        ctx,
    )
    before = encode(state)
    _, out = step(state, parse(first), ctx)
    assert out.duplicate is True
    assert encode(state) == before


def test_the_allowed_lateness_comes_from_the_context() -> None:
    ctx = Context(allowed_lateness=DAY)
    state = CustomerState("c1")
    step(
        state,
        parse(ev("order", T0S + 5 * DAY, "o1", order_id="o1", amount=5.0, status="placed")),
        ctx,
    )
    step(
        state,
        parse(ev("order", T0S + 4 * DAY, "o2", order_id="o2", amount=5.0, status="placed")),
        ctx,
    )
    with pytest.raises(BadEvent, match="allowed lateness is 1 days"):
        step(
            state,
            parse(ev("order", T0S + 4 * DAY - 1, "o3", order_id="o3", amount=5.0, status="placed")),
            ctx,
        )


# ------------------------------------------------------------------ the cases, by name

INVOICES = [
    ev("invoice", T0S, "i1", invoice_id="i1", amount=100.0, due_at=T0S + 10 * DAY),
    ev("invoice", T0S + DAY, "i2", invoice_id="i2", amount=200.0, due_at=T0S + 20 * DAY),
]


def _case(events: list[dict[str, Any]], arrival: list[int]) -> tuple[CustomerState, CustomerState]:
    final = max(parse(e).occurred_at.timestamp() for e in events)
    a = apply_in(events, list(range(len(events))), final)
    b = apply_in(events, arrival, final)
    assert_same_customer(a, b, final)
    return a, b


@pytest.mark.parametrize("ref", [None, "i2"])
def test_a_payment_arriving_before_its_invoice(ref: str | None) -> None:
    extra = {} if ref is None else {"invoice_id": ref}
    pay = ev(
        "payment", T0S + 2 * DAY, "p1", payment_id="p1", amount=150.0, status="settled", **extra
    )
    events = [*INVOICES, pay]
    a, _ = _case(events, [2, 0, 1])
    _case(events, [0, 2, 1])
    want = {"i2": 150.0} if ref is None else {"i1": 100.0, "i2": 50.0}
    assert open_invoices(a) == want
    assert a.book["credit"] == 0


def test_a_bounce_arriving_before_the_payment_it_undoes() -> None:
    events = [
        *INVOICES,
        ev("payment", T0S + 2 * DAY, "p1", payment_id="p1", amount=250.0, status="settled"),
        ev("payment", T0S + 3 * DAY, "b1", payment_id="p1", amount=250.0, status="bounced"),
    ]
    a, _ = _case(events, [0, 1, 3, 2])
    _case(events, [3, 2, 1, 0])
    assert open_invoices(a) == {"i1": 100.0, "i2": 200.0}
    f = compute(a, a.clock or 0.0)
    assert (f["bounced_payments_90d"], f["payment_count_30d"], f["open_balance"]) == (1, 0, 300.0)


def test_a_cancellation_arriving_before_its_placement() -> None:
    events = [
        ev("order", T0S, "o1", order_id="o1", amount=100.0, status="placed"),
        ev("order", T0S + DAY, "o2", order_id="o2", amount=50.0, status="placed"),
        ev("order", T0S + 2 * DAY, "x1", order_id="o1", amount=100.0, status="cancelled"),
    ]
    a, _ = _case(events, [2, 1, 0])
    f = compute(a, a.clock or 0.0)
    assert (f["order_count_7d"], f["order_amount_7d"]) == (1, 50.0)
    assert f["cancellation_share_90d"] == pytest.approx(0.5)


def test_a_late_invoice_reopens_the_journal_after_folding() -> None:
    """Receivables older than the lateness are folded into the base; a late invoice within
    the lateness still takes its place among the recent ones."""
    events = [
        ev("invoice", T0S, "i0", invoice_id="i0", amount=70.0, due_at=T0S + 5 * DAY),
        ev("payment", T0S + 20 * DAY, "p0", payment_id="p0", amount=70.0, status="settled"),
        ev("invoice", T0S + 40 * DAY, "i1", invoice_id="i1", amount=100.0, due_at=T0S + 41 * DAY),
        ev("payment", T0S + 45 * DAY, "p1", payment_id="p1", amount=100.0, status="settled"),
        ev("invoice", T0S + 46 * DAY, "i2", invoice_id="i2", amount=100.0, due_at=T0S + 42 * DAY),
    ]
    _, b = _case(events, [0, 1, 2, 4, 3])
    # p1 settles i1 (due first) wherever it arrived: i2 (issued later, due earlier) was not
    # there yet at p1's time.
    assert open_invoices(b) == {"i2": 100.0}


def test_a_statement_correction_arriving_before_the_original() -> None:
    """A re-sent statement (same statement_id, later event time) replaces the original; when
    the original arrives late, within the lateness, it must not overwrite its correction."""
    original = ev(
        "statement",
        T0S,
        "s-a",
        statement_id="S1",
        balance=100.0,
        days_past_due=0,
        status="revolving",
    )
    correction = ev(
        "statement",
        T0S + 2 * DAY,
        "s-b",
        statement_id="S1",
        balance=500.0,
        days_past_due=30,
        status="delinquent",
    )
    a, _ = _case([original, correction], [1, 0])
    assert compute(a, a.clock or 0.0)["statement_balance"] == 500.0


def test_an_old_cancellation_does_not_depend_on_when_it_was_forgotten() -> None:
    """Whether a placement whose order id was cancelled 140 days earlier counts must not
    depend on whether an unrelated event (1 s older, well within the lateness) arrived
    before it: the cancellation check runs before the clock's records are forgotten."""
    events = [
        ev("order", T0S, "x0", order_id="o0", amount=1.0, status="cancelled"),
        ev("customer", T0S + 140 * DAY, "c1", credit_limit=1000.0, payment_terms_days=30),
        ev("order", T0S + 140 * DAY + 1, "p0", order_id="o0", amount=10.0, status="placed"),
    ]
    _case(events, [0, 2, 1])


def test_timers_moving_the_clock_do_not_make_an_event_of_a_lagging_topic_late() -> None:
    """A timer advances the clock far past the customer's latest event (the
    partition's newest event time); an event behind that clock but within the
    allowed lateness of the customer's own latest event still applies."""
    ctx = Context()
    state = CustomerState("c1")
    step(state, parse(_one_of_each(0.0)[0]), ctx)
    latest = state.updated_at
    assert latest is not None
    advance(state, latest + 60 * DAY, ctx)
    behind_the_clock = _one_of_each(latest + 1 * DAY)[1]
    _, out = step(state, parse(behind_the_clock), ctx)
    assert out.duplicate is False
    assert state.updated_at == latest + 1 * DAY and state.clock == latest + 60 * DAY
