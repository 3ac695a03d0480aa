"""The poison messages that stopped workers, sent to a real worker on a real broker.

Each must end as a bounded dead letter; the worker stays up; the valid events
around them are applied; one event stamped 2099 moves no overdue timer.
"""

from __future__ import annotations

import json

from stream_risk.schemas.outputs import DeadLetter

from .conftest import Env

T0 = "2026-01-01T00:00:00+00:00"


def ev(type_: str, event_id: str, at: str, customer: str, **fields: object) -> dict[str, object]:
    return {
        "type": type_,
        "event_id": event_id,
        "customer_id": customer,
        "occurred_at": at,
        **fields,
    }


def customer(event_id: str, cid: str, **fields: object) -> dict[str, object]:
    fields = {"credit_limit": 1000.0, "currency": "EUR", "payment_terms_days": 30, **fields}
    return ev("customer", event_id, T0, cid, **fields)


def test_poison_messages_become_bounded_dead_letters_and_the_worker_goes_on(env: Env) -> None:
    env.publish_utilisation_pack()  # the "good" customer's warning
    worker = env.worker()
    worker.start()
    # An open invoice due on Jan 5: a 2099 event would fire its 30 and 90 day warnings.
    env.send(customer("setup-c", "debtor"))
    env.send(
        ev(
            "invoice",
            "setup-i",
            T0,
            "debtor",
            invoice_id="i1",
            amount=100.0,
            currency="EUR",
            due_at="2026-01-05T00:00:00+00:00",
        )
    )
    env.send(customer("p1", "p1", payment_terms_days=10**30))
    env.send(
        ev(
            "statement",
            "p2",
            T0,
            "p2",
            statement_id="s",
            balance=1.0,
            currency="EUR",
            days_past_due=10**30,
            status="revolving",
        )
    )
    env.send(customer("p3", "p3", financials={"x": {"y": 10**30}}))
    control = (
        b'{"type": "order", "event_id": "p4", "customer_id": "p4", "note": "'
        + b"\x01" * 250_000
        + b'"}'
    )
    env.send({}, key=b"p4", raw=control, topic="order")
    env.send(customer("p5", "p5", segment={"industry": "x" * 1_000_000}))
    env.send(
        ev(
            "order",
            "p6",
            "2099-01-01T00:00:00+00:00",
            "debtor",
            order_id="o2099",
            amount=1.0,
            currency="EUR",
            status="placed",
        )
    )
    env.send(customer("good", "good", credit_limit=100.0))
    env.send(
        ev(
            "invoice",
            "good-i",
            "2026-01-02T00:00:00+00:00",
            "good",
            invoice_id="g1",
            amount=95.0,
            currency="EUR",
            due_at="2026-02-01T00:00:00+00:00",
        )
    )
    env.flush()

    letters = env.consume("dead-letters", lambda rs: len(rs) >= 6, timeout=120)
    dead = {d.original_sha256: d for d in (DeadLetter.model_validate(r["value"]) for r in letters)}
    reasons = " | ".join(d.reason for d in dead.values())
    assert "payment_terms_days" in reasons
    assert "days_past_due" in reasons
    assert "64 bits" in reasons
    assert reasons.count("exceeds the maximum") == 2
    assert "ahead of" in reasons
    for record in letters:
        assert len(json.dumps(record["value"])) < 20_000
    assert sum(d.truncated for d in dead.values()) == 2

    warnings = env.consume(
        "warnings", lambda rs: any(r["value"]["customer_id"] == "good" for r in rs), timeout=120
    )
    # Nothing fired for the debtor: no event ever moved the partition to 2099.
    assert not [w for w in warnings if w["value"]["customer_id"] == "debtor"]
    assert worker.proc is not None and worker.proc.poll() is None
    assert "Integer exceeds 64-bit range" not in worker.log()
