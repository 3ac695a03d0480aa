"""Events of every type through a real worker: warnings on Kafka, profiles and stream in Redis."""

from __future__ import annotations

import json

from stream_risk.schemas.outputs import DeadLetter, RiskWarning

from .conftest import Env, wait_for
from .topics import create_topics, read_all

T0 = "2026-01-01T00:00:00+00:00"


def ev(
    type_: str, event_id: str, at: str, customer: str = "acme", **fields: object
) -> dict[str, object]:
    return {
        "type": type_,
        "event_id": event_id,
        "customer_id": customer,
        "occurred_at": at,
        **fields,
    }


def test_every_event_type_flows_to_warnings_and_redis(env: Env) -> None:
    env.publish_utilisation_pack()
    worker = env.worker()
    worker.start()
    events = [
        ev(
            "customer",
            "c1",
            T0,
            credit_limit=1000,
            currency="EUR",
            payment_terms_days=30,
            segment={"industry": "retail", "size": "sme", "region": "EU"},
            rating="BBB",
        ),
        ev(
            "order",
            "o1",
            "2026-01-02T00:00:00Z",
            order_id="o1",
            amount=400,
            currency="EUR",
            status="placed",
        ),
        ev(
            "order",
            "o2",
            "2026-01-02T01:00:00Z",
            order_id="o2",
            amount=300,
            currency="USD",
            status="placed",
        ),
        ev(
            "invoice",
            "i1",
            "2026-01-03T00:00:00Z",
            invoice_id="inv1",
            amount=950,
            currency="EUR",
            due_at="2026-02-01T00:00:00Z",
            order_id="o1",
        ),
        ev(
            "payment",
            "p1",
            "2026-01-20T00:00:00Z",
            payment_id="pay1",
            amount=100,
            currency="EUR",
            status="settled",
        ),
        ev(
            "statement",
            "s1",
            "2026-01-31T00:00:00Z",
            statement_id="st1",
            balance=850,
            currency="EUR",
            days_past_due=0,
            status="revolving",
        ),
        ev("collection", "col1", "2026-02-10T00:00:00Z", action="contacted", note="called"),
        # 40 days after the due date: the invoice crossed 30 days past due on event time.
        ev("outcome", "out1", "2026-03-13T00:00:00Z", outcome="current"),
    ]
    # All at once, newest topic first: one topic per event type, read in no fixed
    # order relative to each other; the worker's alignment applies them in event time.
    prefix = env.settings_env["STREAM_RISK_REDIS_PREFIX"]
    create_topics(env)
    for e in reversed(events):
        env.send(e)
    env.flush()

    def have_all(records: list[dict]) -> bool:
        rules = {(r["value"]["rule"], r["value"]["status"]) for r in records}
        return {
            ("high_credit_utilisation", "firing"),
            ("high_credit_utilisation", "resolved"),  # the payment brought it to 85 %
            ("overdue_30_days", "firing"),
        } <= rules

    records = env.consume("warnings", have_all)
    warnings = [RiskWarning.model_validate(r["value"]) for r in records]
    by_rule = {w.rule: w for w in warnings if w.status == "firing"}

    util = by_rule["high_credit_utilisation"]
    assert util.level == "medium"
    assert util.customer_id == "acme"
    assert util.reasons[0].feature == "credit_utilisation"
    assert util.reasons[0].value == 0.95
    assert util.occurred_at.isoformat() == "2026-01-03T00:00:00+00:00"

    overdue = by_rule["overdue_30_days"]
    assert overdue.level == "medium"  # a month late; two months escalates it to high
    # A month late alone is a slip while the customer keeps paying; fired by the
    # event-time check the day the second sign appeared: nothing paid for 45 days.
    assert overdue.occurred_at.isoformat() == "2026-03-06T00:00:00+00:00"
    reasons = {r.feature: r.value for r in overdue.reasons}
    assert reasons["days_past_due"] == 33, overdue.reasons
    assert reasons["days_since_last_payment"] == 45, overdue.reasons
    assert {a.kind for a in overdue.actions} == {"contact_customer", "shorten_terms"}
    assert all(r["key"] == b"acme" for r in records)
    assert 0 <= overdue.risk_score <= 1

    profile = wait_for(
        lambda: (
            (p := env.redis.hgetall(f"{prefix}:profile:acme"))
            and p.get("updated_at", "").startswith("2026-03-13")
            and p
        ),
        what="profile in Redis",
    )
    features = json.loads(profile["features"])
    assert features["open_balance"] == 850.0
    assert features["credit_limit"] == 1000.0
    assert features["order_count_30d"] == 0  # both orders are older than 30 days by then
    assert features["days_past_due"] == 40
    # Other rules of the default pack may hold too; every active one was published.
    active = json.loads(profile["active_warnings"])
    assert overdue.warning_id in active
    assert set(active) <= {w.warning_id for w in warnings if w.status == "firing"}
    util_resolved = [w for w in warnings if w.rule == util.rule and w.status == "resolved"]
    assert [w.warning_id for w in util_resolved] == [util.warning_id]

    # One entry per (warning, status, level): an escalation is a new entry. The Redis
    # sink reads the warnings topic on its own: wait until it has delivered as many.
    expected = sorted((w.warning_id, w.status, w.level) for w in warnings)
    entries = wait_for(
        lambda: (e := env.redis.xrange(f"{prefix}:warnings")) and len(e) >= len(expected) and e,
        what="stream entries",
    )
    ids = [(e[1]["warning_id"], e[1]["status"], e[1]["level"]) for e in entries]
    assert sorted(ids) == expected
    assert len(ids) == len(set(ids))
    assert env.redis.zscore(f"{prefix}:scores", "acme") == float(profile["risk_score"])

    # Paying the invoice resolves the overdue warning with the same warning_id.
    env.send(
        ev(
            "payment",
            "p2",
            "2026-03-14T00:00:00Z",
            payment_id="pay2",
            amount=850,
            currency="EUR",
            status="settled",
            invoice_id="inv1",
        )
    )
    env.flush()
    records = env.consume(
        "warnings",
        lambda rs: any(
            r["value"]["status"] == "resolved" and r["value"]["rule"] == "overdue_30_days"
            for r in rs
        ),
    )
    resolved = [r["value"] for r in records if r["value"]["status"] == "resolved"]
    assert {r["warning_id"] for r in resolved} >= {overdue.warning_id}
    # Valid input, in any order across topics: not one dead letter.
    assert read_all(env, "dead-letters") == []


def test_bad_events_go_to_dead_letters_and_the_stream_goes_on(env: Env) -> None:
    env.publish_utilisation_pack()
    worker = env.worker()
    worker.start()
    env.send({}, key=b"bob", raw=b"{not json", topic="order")
    env.send(
        ev(
            "order",
            "o1",
            T0,
            customer="bob",
            order_id="o1",
            amount=-5,
            currency="EUR",
            status="placed",
        )
    )
    env.send(
        ev(
            "order",
            "o2",
            "2026-01-01T10:00:00",
            customer="bob",
            order_id="o2",
            amount=5,
            currency="EUR",
            status="placed",
        )
    )  # no offset
    env.send(
        ev(
            "order",
            "o3",
            T0,
            customer="bob",
            order_id="o3",
            amount=5,
            currency="JPY",
            status="placed",
        )
    )  # no rate for JPY
    env.send(
        ev(
            "order",
            "o4",
            T0,
            customer="bob",
            order_id="o4",
            amount=5,
            currency="EUR",
            status="placed",
        ),
        key=b"someone-else",
    )
    env.send(
        ev(
            "customer",
            "c1",
            T0,
            customer="bob",
            credit_limit=100,
            currency="EUR",
            payment_terms_days=30,
        )
    )
    env.send(
        ev(
            "statement",
            "s1",
            "2026-01-03T00:00:00Z",
            customer="bob",
            statement_id="s1",
            balance=95,
            currency="EUR",
            days_past_due=0,
            status="revolving",
        )
    )
    env.flush()

    letters = env.consume("dead-letters", lambda rs: len(rs) >= 5)
    dead = [DeadLetter.model_validate(r["value"]) for r in letters]
    reasons = " | ".join(d.reason for d in dead)
    assert "Invalid JSON" in reasons
    assert "greater than or equal to 0" in reasons
    assert "timezone" in reasons
    assert "JPY" in reasons
    assert "key must be the customer_id" in reasons
    assert dead[0].original == "{not json"
    # The valid events are applied: the five bad ones are all the dead letters.
    assert len(read_all(env, "dead-letters")) == 5
    assert {d.source for d in dead} == {env.topic("order")}

    # The good events after the bad ones are still processed.
    warnings = env.consume(
        "warnings", lambda rs: any(r["value"]["customer_id"] == "bob" for r in rs)
    )
    assert warnings[0]["value"]["rule"] == "high_credit_utilisation"
    assert worker.proc is not None and worker.proc.poll() is None
