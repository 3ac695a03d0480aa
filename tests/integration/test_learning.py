"""The learning loop on Kafka: outcomes -> training examples -> one trainer -> model
snapshots on the compacted topic -> every worker scores with them; a killed worker's
trainer re-learns the retained examples and carries on with the same model."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from stream_risk.core import Context, CustomerState, step
from stream_risk.core.trainer import Trainer
from stream_risk.schemas.events import input_event_adapter

from .conftest import Env, wait_for

T0 = datetime(2026, 1, 1, tzinfo=UTC)
REFIT_EVERY = 20


def at(days: float) -> str:
    return (T0 + timedelta(days=days)).isoformat()


def history(cid: str, late: bool, days_after: float = 0.0) -> list[dict[str, Any]]:
    """A customer's profile and four monthly statements; late payers fall behind."""
    events: list[dict[str, Any]] = [
        {
            "type": "customer",
            "event_id": f"{cid}-c",
            "customer_id": cid,
            "occurred_at": at(days_after),
            "credit_limit": 1000,
            "currency": "EUR",
            "payment_terms_days": 30,
        }
    ]
    for month in range(4):
        events.append(
            {
                "type": "statement",
                "event_id": f"{cid}-s{month}",
                "customer_id": cid,
                "occurred_at": at(days_after + 30 * month + 1),
                "statement_id": f"{cid}-s{month}",
                "balance": 800.0 if late else 200.0,
                "currency": "EUR",
                "days_past_due": 30 * month if late else 0,
                "status": "delinquent" if late and month else "revolving",
            }
        )
    return events


def outcome(cid: str, adverse: bool, days: float) -> dict[str, Any]:
    return {
        "type": "outcome",
        "event_id": f"{cid}-o",
        "customer_id": cid,
        "occurred_at": at(days),
        "outcome": "default" if adverse else "current",
    }


def cohort(prefix: str, n: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(seed)
    events, outcomes = [], []
    for i in range(n):
        late = rng.random() < 0.4
        cid = f"{prefix}{i}"
        events += history(cid, late)
        # Mostly the late payers default; a little noise keeps both classes mixed.
        outcomes.append(outcome(cid, late != (rng.random() < 0.1), 125))
    return events, outcomes


def send_histories_then_outcomes(
    env: Env, events: list[dict[str, Any]], outcomes: list[dict[str, Any]]
) -> None:
    """Outcomes come months after the history: send them once every history is applied
    (topics are consumed in no fixed order relative to each other)."""
    for event in events:
        env.send(event)
    env.flush()
    wanted = {o["customer_id"] for o in outcomes}
    last = at(91)
    env.consume(
        "profiles",
        lambda rs: (
            wanted <= {r["value"]["customer_id"] for r in rs if r["value"]["updated_at"] == last}
        ),
    )
    for event in outcomes:
        env.send(event)
    env.flush()


def snapshots(env: Env, at_least: int) -> list[dict[str, Any]]:
    records = env.consume(
        "models", lambda rs: max((r["value"]["version"] for r in rs), default=0) >= at_least
    )
    return [r["value"] for r in records]


def test_outcomes_train_one_model_that_every_worker_scores_with(env: Env) -> None:
    worker = env.worker(STREAM_RISK_MODEL_REFIT_EVERY=str(REFIT_EVERY))
    worker.start()
    events, outcomes = cohort("a", 2 * REFIT_EVERY, 1)
    send_histories_then_outcomes(env, events, outcomes)
    examples = env.consume("training-examples", lambda rs: len(rs) >= 2 * REFIT_EVERY)
    assert {r["value"]["customer_id"] for r in examples} == {o["customer_id"] for o in outcomes}
    assert all(len(r["value"]["features"]) > 40 for r in examples)
    # A batch of examples publishes only its last refit: versions only go up.
    published = snapshots(env, 2)
    versions = [s["version"] for s in published]
    assert versions == sorted(versions) and versions[-1] == 2
    latest = published[-1]

    # The same examples fed to a trainer here give the very same model.
    local = Trainer(refit_every=REFIT_EVERY)
    local_snapshots = [s for r in examples if (s := local.learn_one(r["value"])) is not None]
    assert local_snapshots[1]["model"] == latest["model"]

    # A new customer is scored with the published model: its profile matches
    # the core run here with that snapshot loaded.
    fresh = history("fresh", late=True, days_after=200)
    wait_for(lambda: "risk model version 2 loaded" in worker.log(), what="model v2 loaded")
    for event in fresh:
        env.send(event)
    env.flush()
    profiles = env.consume(
        "profiles",
        lambda rs: any(
            r["value"]["customer_id"] == "fresh" and r["value"]["updated_at"] == at(291) for r in rs
        ),
    )
    got = [r["value"] for r in profiles if r["value"]["customer_id"] == "fresh"][-1]
    ctx = Context(population=None)
    ctx.scorer.load(latest)
    state = CustomerState("fresh")
    for event in fresh:
        step(state, input_event_adapter.validate_json(json.dumps(event)), ctx)
    assert got["risk_score"] == state.risk_score
    card_only = CustomerState("fresh")
    for event in fresh:
        step(
            card_only,
            input_event_adapter.validate_json(json.dumps(event)),
            Context(population=None),
        )
    assert got["risk_score"] != card_only.risk_score

    # Killed and restarted: the trainer re-learns the retained examples (from its
    # committed offset, or all of them), so the next snapshot equals what one
    # uninterrupted trainer would publish.
    worker.kill9()
    worker.start()
    more_events, more_outcomes = cohort("b", REFIT_EVERY, 2)
    send_histories_then_outcomes(env, more_events, more_outcomes)
    all_examples = env.consume("training-examples", lambda rs: len(rs) >= 3 * REFIT_EVERY)
    third = snapshots(env, 3)
    uninterrupted = Trainer(refit_every=REFIT_EVERY)
    expected = [s for r in all_examples if (s := uninterrupted.learn_one(r["value"])) is not None]
    assert [s for s in third if s["version"] == 3][-1]["model"] == expected[2]["model"]
