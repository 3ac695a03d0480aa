"""The worker's small parts: the start gate, the trainer and the batch publisher, without Kafka."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from stream_risk.agents.app import StartGate, TrainerRole, WorkerApp
from stream_risk.agents.monitor import BatchResult
from stream_risk.agents.state_store import CustomerStates
from stream_risk.agents.topology import MonitorPublisher, Sender
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


def test_the_gate_says_once_that_the_worker_is_set_up_after_the_first_rebuild() -> None:
    said: list[int] = []
    rebuilt: list[int] = []
    gate = _gate(rebuilt, model_ready=True)
    gate.started = lambda: said.append(len(rebuilt))

    async def scenario() -> None:
        await gate.pass_through()
        await gate.pass_through()
        gate.rebalanced()
        await gate.pass_through()

    asyncio.run(scenario())
    assert said == [1]  # once, with the timers rebuilt


def test_a_stopping_worker_gives_up_its_held_records_before_waiting_for_acks() -> None:
    """Faust's stop waits until every message handed to a stream is acknowledged, as a
    revocation does: the records the alignment holds back are given up first."""
    app = WorkerApp("wiring-test", broker="kafka://127.0.0.1:1")
    given_up: list[set[Any]] = []
    app.before_revoke.append(given_up.append)
    asyncio.run(app._stop_consumer())
    assert given_up == [set()]


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


class _Producer:
    """Records sends; each delivery resolves only when the test says so."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.pending: list[asyncio.Future[Any]] = []

    async def send(self, **record: Any) -> asyncio.Future[Any]:
        self.sent.append((record["topic"], record["key"]))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        return future


class _Table:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.changelog_topic = self

    def get_topic_name(self) -> str:
        return "app-customer-state-changelog"


def _batch() -> BatchResult:
    result = BatchResult()
    result.states["c1"] = (0, b'{"v": 3}')
    result.warnings.append((0, {"customer_id": "c1", "warning_id": "w1"}))
    result.profiles["c1"] = (0, {"customer_id": "c1"})
    return result


def test_a_state_reaches_the_changelog_only_after_the_broker_has_its_outputs() -> None:
    """The state carries the offsets of its records: in the changelog before the warning,
    a kill in between would make the restarted worker skip the record as already applied,
    and the warning would never be sent."""
    producer = _Producer()
    app = type("App", (), {"producer": producer})()
    table = _Table()
    publisher = MonitorPublisher(
        Sender(app, stop=lambda: None),
        Settings(topic_prefix="stream-risk"),
        CustomerStates(table),
    )

    async def scenario() -> list[str]:
        publishing = asyncio.create_task(publisher.publish(_batch()))
        await asyncio.sleep(0.01)
        before = [topic for topic, _ in producer.sent]
        for future in producer.pending:
            future.set_result(None)
        await publishing
        return before

    before = asyncio.run(scenario())
    assert "app-customer-state-changelog" not in before
    assert set(before) == {"stream-risk.warnings", "stream-risk.profiles"}
    assert producer.sent[-1] == ("app-customer-state-changelog", b"c1")
    assert table.data == {b"c1": b'{"v": 3}'}


def test_no_state_is_written_when_an_output_fails() -> None:
    producer = _Producer()
    app = type("App", (), {"producer": producer})()
    table = _Table()
    stopped: list[bool] = []
    publisher = MonitorPublisher(
        Sender(app, stop=lambda: stopped.append(True)),
        Settings(topic_prefix="stream-risk"),
        CustomerStates(table),
    )

    async def scenario() -> None:
        publishing = asyncio.create_task(publisher.publish(_batch()))
        await asyncio.sleep(0.01)
        producer.pending[0].set_exception(RuntimeError("broker gone"))
        for future in producer.pending[1:]:
            future.set_result(None)
        try:
            await publishing
        except RuntimeError:
            pass
        else:
            raise AssertionError("a failed output was not seen")

    asyncio.run(scenario())
    assert stopped == [True]
    assert all(topic != "app-customer-state-changelog" for topic, _ in producer.sent)
    assert table.data == {}
