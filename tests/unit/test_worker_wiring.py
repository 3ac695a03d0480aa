"""The worker's small parts: the start gate and the trainer, without Kafka."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from stream_risk.agents.app import StartGate, TrainerRole
from stream_risk.config import Settings
from stream_risk.kafka_security import KafkaSecurity


def _gate(rebuilt: list[int], *, model_ready: bool) -> StartGate:
    rules = asyncio.Event()
    rules.set()
    model = asyncio.Event()
    if model_ready:
        model.set()

    async def rebuild() -> None:
        rebuilt.append(1)

    return StartGate(rules_ready=rules, model_ready=model, model_wait=0.01, rebuild_timers=rebuild)


def test_the_gate_rebuilds_timers_once_per_rebalance() -> None:
    rebuilt: list[int] = []
    gate = _gate(rebuilt, model_ready=True)

    async def scenario() -> None:
        await gate.pass_through()  # at start
        await gate.pass_through()
        gate.rebalanced()
        await gate.pass_through()
        await gate.pass_through()

    asyncio.run(scenario())
    assert len(rebuilt) == 2


def test_the_gate_waits_for_a_model_once_then_scores_without_one() -> None:
    gate = _gate([], model_ready=False)

    async def scenario() -> None:
        await gate.pass_through()  # times out after model_wait
        await asyncio.wait_for(gate.pass_through(), 0.005)  # no second wait

    asyncio.run(scenario())
    assert gate.model_waited


def test_the_gate_holds_batches_until_the_rule_set_is_read() -> None:
    rules, model = asyncio.Event(), asyncio.Event()
    model.set()

    async def nothing() -> None:
        return None

    gate = StartGate(rules_ready=rules, model_ready=model, model_wait=1.0, rebuild_timers=nothing)

    async def scenario() -> bool:
        waiting = asyncio.create_task(gate.pass_through())
        await asyncio.sleep(0.01)
        held = not waiting.done()
        rules.set()
        await waiting
        return held

    assert asyncio.run(scenario())


class _Sender:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, **record: Any) -> None:
        self.sent.append(record)


def test_the_trainer_skips_malformed_examples_and_publishes_nothing_without_a_refit() -> None:
    settings = Settings()
    sender = _Sender()
    role = TrainerRole(
        settings=settings,
        security=KafkaSecurity.from_settings(settings),
        sender=sender,  # type: ignore[arg-type]
    )

    async def scenario() -> None:
        # From offset 0 there is nothing to recover: no broker is needed.
        await role.learn(first_offset=0, values=[b"not json", None, orjson.dumps({"x": 1})])

    asyncio.run(scenario())
    assert role.trainer is not None and role.trainer.version == 0
    assert sender.sent == []
    role.forget()
    assert role.trainer is None
