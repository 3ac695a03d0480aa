"""Unit tests of the traffic simulator (no Kafka needed)."""

from __future__ import annotations

import argparse
import gzip
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka.errors import KafkaTimeoutError

from stream_risk.schemas.events import input_event_adapter
from stream_risk.tools import simulate
from stream_risk.tools.simulate import (
    DEFAULT_START,
    CustomerProfile,
    DeliveryError,
    KafkaUnavailable,
    SimulationInterrupted,
    configure_parser,
    generate,
    plan_portfolio,
    produce,
    run,
    write_jsonl,
)

# A whole portfolio, big enough for shares to mean something, small enough to validate quickly.
CUSTOMERS, DAYS, SEED, SHARE = 80, 180, 11, 0.25
END = DEFAULT_START + timedelta(days=DAYS)


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return list(generate(CUSTOMERS, DAYS, SEED, deteriorating_share=SHARE, outcomes=True))


@pytest.fixture(scope="module")
def plan() -> dict[str, CustomerProfile]:
    profiles = plan_portfolio(CUSTOMERS, DAYS, SEED, deteriorating_share=SHARE)
    return {p.customer_id: p for p in profiles}


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- a minimal reading of the contract's receivable semantics -------------------------------------


@dataclass
class _Invoice:
    due_at: datetime
    outstanding: int
    max_days_overdue: float = 0.0


@dataclass
class _Account:
    invoices: dict[str, _Invoice] = field(default_factory=dict)  # issue order = oldest first
    payments: dict[str, str] = field(default_factory=dict)  # payment_id -> invoice it settled
    overpaid: int = 0

    def balance(self) -> int:
        return sum(i.outstanding for i in self.invoices.values())


def _cents(amount: float) -> int:
    return round(amount * 100)


def _replay(events: list[dict[str, Any]]) -> dict[str, _Account]:
    """Apply invoices and payments as EVENTS.md says, checking each statement's balance."""
    accounts: dict[str, _Account] = defaultdict(_Account)
    for e in events:
        account = accounts[e["customer_id"]]
        when = _t(e["occurred_at"])
        if e["type"] == "invoice":
            account.invoices[e["invoice_id"]] = _Invoice(_t(e["due_at"]), _cents(e["amount"]))
        elif e["type"] == "payment" and e["status"] == "settled":
            target = e.get("invoice_id") or next(
                k for k, i in account.invoices.items() if i.outstanding > 0
            )
            invoice = account.invoices[target]
            cents = _cents(e["amount"])
            if cents > invoice.outstanding:
                account.overpaid += 1
            invoice.outstanding -= cents
            account.payments[e["payment_id"]] = target
            if invoice.outstanding <= 0:
                late = (when - invoice.due_at) / timedelta(days=1)
                invoice.max_days_overdue = max(invoice.max_days_overdue, late)
        elif e["type"] == "payment" and e["status"] == "bounced":
            account.invoices[account.payments[e["payment_id"]]].outstanding += _cents(e["amount"])
        elif e["type"] == "statement":
            assert _cents(e["balance"]) == account.balance(), e
    for account in accounts.values():
        for invoice in account.invoices.values():
            if invoice.outstanding > 0:
                late = (END - invoice.due_at) / timedelta(days=1)
                invoice.max_days_overdue = max(invoice.max_days_overdue, late)
    return accounts


def _worst_overdue(account: _Account) -> float:
    return max((i.max_days_overdue for i in account.invoices.values()), default=0.0)


# --- tests ----------------------------------------------------------------------------------------


def test_deterministic_for_a_seed() -> None:
    first = list(generate(customers=12, days=60, seed=3))
    assert first == list(generate(customers=12, days=60, seed=3))
    assert first != list(generate(customers=12, days=60, seed=4))


def test_every_event_satisfies_the_contract(events: list[dict[str, Any]]) -> None:
    types = set()
    for event in events:
        # The wire format is JSON: validate what a consumer would read off the topic.
        parsed = input_event_adapter.validate_json(orjson.dumps(event))
        assert parsed.occurred_at.utcoffset() is not None
        types.add(event["type"])
    assert types == {
        "customer",
        "order",
        "invoice",
        "payment",
        "statement",
        "outcome",
        "credit_report",
    }
    assert len({e["event_id"] for e in events}) == len(events)


def test_amounts_are_cents_and_not_negative(events: list[dict[str, Any]]) -> None:
    for event in events:
        for name in ("amount", "credit_limit", "balance", "minimum_due"):
            if name in event:
                assert event[name] >= 0
                assert round(event[name], 2) == event[name]


def test_events_are_in_time_order(events: list[dict[str, Any]]) -> None:
    times = [_t(e["occurred_at"]) for e in events]
    assert times == sorted(times)
    assert times[0] == DEFAULT_START
    assert all(e["type"] == "outcome" for e in events if _t(e["occurred_at"]) >= END)


def test_account_documents_are_consistent(
    events: list[dict[str, Any]], plan: dict[str, CustomerProfile]
) -> None:
    customers = [e for e in events if e["type"] == "customer"]
    assert [e["customer_id"] for e in customers] == [f"sim-{n:04d}" for n in range(1, 81)]
    assert {e["payment_terms_days"] for e in customers} <= {30, 45, 60}
    orders = [e for e in events if e["type"] == "order"]
    placed = {e["order_id"] for e in orders if e["status"] == "placed"}
    cancelled = {e["order_id"] for e in orders if e["status"] == "cancelled"}
    assert cancelled and cancelled <= placed
    for invoice in (e for e in events if e["type"] == "invoice"):
        assert invoice["order_id"] in placed - cancelled
        terms = plan[invoice["customer_id"]].payment_terms_days
        assert _t(invoice["due_at"]) - _t(invoice["occurred_at"]) == timedelta(days=terms)
    payments = [e for e in events if e["type"] == "payment"]
    assert sum("invoice_id" in p for p in payments) > 0.8 * len(payments)
    assert any(p["status"] == "bounced" for p in payments)
    # Statements agree with the contract's reading of invoices and payments (including
    # payments without invoice_id settling the oldest invoice), and nobody overpays.
    accounts = _replay(events)
    assert all(a.overpaid == 0 for a in accounts.values())


def test_deteriorating_customers_go_90_days_overdue(
    events: list[dict[str, Any]], plan: dict[str, CustomerProfile]
) -> None:
    accounts = _replay(events)
    troubled = [c for c, p in plan.items() if p.deteriorating]
    healthy = [c for c, p in plan.items() if not p.deteriorating]
    assert len(troubled) == 20
    worst = {c: _worst_overdue(accounts[c]) for c in plan}
    # Only those that catch up on everything in time (a "cure") may stay under 90 days.
    uncured = [c for c in troubled if not _cured(plan[c])]
    assert len(uncured) >= 0.7 * len(troubled)
    assert all(worst[c] > 90 for c in uncured)
    assert sum(worst[c] > 90 for c in healthy) <= 0.05 * len(healthy)
    # What the billing system reports says the same.
    dpd: dict[str, int] = defaultdict(int)
    for e in events:
        if e["type"] == "statement":
            dpd[e["customer_id"]] = max(dpd[e["customer_id"]], e["days_past_due"])
    assert sum(dpd[c] >= 30 for c in troubled) >= 0.9 * len(troubled)
    assert sum(dpd[c] >= 60 for c in healthy) <= 0.05 * len(healthy)


def test_deteriorating_customers_order_more(
    events: list[dict[str, Any]], plan: dict[str, CustomerProfile]
) -> None:
    before: dict[str, list[float]] = defaultdict(list)
    after: dict[str, list[float]] = defaultdict(list)
    for e in events:
        profile = plan[e["customer_id"]]
        if e["type"] == "order" and e["status"] == "placed" and profile.deteriorating:
            bucket = after if profile.in_distress(_t(e["occurred_at"])) else before
            bucket[e["customer_id"]].append(e["amount"])
    spiked = [
        c
        for c in before
        if after[c] and sum(after[c]) / len(after[c]) > 2 * sum(before[c]) / len(before[c])
    ]
    assert len(spiked) >= 0.8 * len(before)


def _cured(profile: CustomerProfile) -> bool:
    return profile.cures_at is not None and profile.cures_at < END


def test_outcomes_label_the_deteriorating(
    events: list[dict[str, Any]], plan: dict[str, CustomerProfile]
) -> None:
    outcomes = {e["customer_id"]: e["outcome"] for e in events if e["type"] == "outcome"}
    assert len(outcomes) == len(plan)
    defaults = {c for c, o in outcomes.items() if o == "default"}
    troubled = {c for c, p in plan.items() if p.deteriorating}
    assert defaults == {c for c in troubled if not _cured(plan[c])}
    assert len(defaults) >= 0.7 * len(troubled)
    assert set(outcomes.values()) == {"default", "current"}
    assert not any(e["type"] == "outcome" for e in generate(customers=3, days=30))


def test_file_output_round_trips(tmp_path: Path) -> None:
    expected = list(generate(customers=6, days=45, seed=5))
    path = tmp_path / "events.jsonl.gz"
    assert write_jsonl(iter(expected), path) == len(expected)
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        assert [json.loads(line) for line in fh] == expected


def test_cli_writes_a_file(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    path = tmp_path / "cli.jsonl"
    args = parser.parse_args(
        [
            "--customers",
            "4",
            "--days",
            "40",
            "--seed",
            "9",
            "--start",
            "2026-03-01",
            "--currency",
            "USD",
            "--outcomes",
            "--out",
            str(path),
        ]
    )
    assert run(args) == 0
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    start = datetime.fromisoformat("2026-03-01T00:00:00+00:00")
    assert lines == list(generate(4, 40, 9, start, "USD", 0.1, outcomes=True))
    assert {e["currency"] for e in lines if "currency" in e} == {"USD"}


def test_cli_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    for bad in (
        ["--deteriorating-share", "1.5"],
        ["--customers", "0"],
        ["--start", "soon"],
        ["--rate", "10", "--speed", "3600"],
        ["--rate", "-1"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(bad)
        assert exit_info.value.code == 2
    args = parser.parse_args(["--out", str(tmp_path / "missing" / "x.jsonl")])
    assert run(args) == 2
    assert "does not exist" in capsys.readouterr().err


class _FakeProducer:
    """Stands in for KafkaProducer: records what would be sent."""

    instances: list[_FakeProducer] = []

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.flushed = self.closed = False
        self.fail_after: int | None = None
        self.reject = False
        _FakeProducer.instances.append(self)

    def send(self, topic: str, key: bytes, value: bytes) -> _FakeProducer:
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise KeyboardInterrupt
        self.sent.append((topic, key, value))
        return self

    def add_callback(self, callback: Any) -> None:
        if not self.reject:
            callback(None)  # acknowledged at once

    def add_errback(self, callback: Any) -> None:
        if self.reject:
            callback(RuntimeError("NotLeaderForPartition"))

    def flush(self) -> None:
        self.flushed = True

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


@pytest.fixture
def fake_kafka(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_FakeProducer]]:
    _FakeProducer.instances = []
    monkeypatch.setattr(simulate.sinks, "KafkaProducer", _FakeProducer)
    yield _FakeProducer


TOPICS = {
    t: f"test.{t}"
    for t in ("customer", "order", "invoice", "payment", "statement", "credit_report")
}


def test_produce_routes_keys_and_paces(fake_kafka: type[_FakeProducer]) -> None:
    batch = list(generate(customers=3, days=20, seed=2))[:40]
    started = time.monotonic()
    assert produce(iter(batch), "broker:9092", TOPICS, rate=400.0) == len(batch)
    assert time.monotonic() - started >= (len(batch) - 1) / 400
    producer = fake_kafka.instances[0]
    assert producer.flushed and producer.closed
    for event, (topic, key, value) in zip(batch, producer.sent, strict=True):
        assert topic == f"test.{event['type']}"
        assert key == event["customer_id"].encode()
        assert value == json.dumps(event, separators=(",", ":")).encode()  # compact JSON
    # speed: one simulated hour per 0.1 s.
    hour = [
        {**batch[0], "occurred_at": "2026-01-01T00:00:00+00:00"},
        {**batch[0], "occurred_at": "2026-01-01T01:00:00+00:00"},
    ]
    started = time.monotonic()
    produce(hour, "broker:9092", TOPICS, speed=36_000.0)
    assert time.monotonic() - started >= 0.09


def test_produce_waits_while_held_back_and_shifts_its_schedule(
    fake_kafka: type[_FakeProducer],
) -> None:
    event = next(iter(generate(customers=1, days=5, seed=2)))
    hour = [
        {**event, "occurred_at": "2026-01-01T00:00:00+00:00"},
        {**event, "occurred_at": "2026-01-01T01:00:00+00:00"},  # due 0.1 s after the first
    ]
    sent_while_held: list[int] = []
    held_until: list[float] = []

    def worker_behind() -> bool:
        # Behind for 0.3 s once the first event is out.
        sent = len(fake_kafka.instances[0].sent)
        if sent == 1 and not held_until:
            held_until.append(time.monotonic() + 0.3)
        behind = bool(held_until) and time.monotonic() < held_until[0]
        if behind:
            sent_while_held.append(sent)
        return behind

    started = time.monotonic()
    assert produce(hour, "broker:9092", TOPICS, speed=36_000.0, hold_back=worker_behind) == 2
    # Nothing went out while held, and the second event kept its 0.1 s after the wait
    # instead of following at once (no burst to make up for the wait).
    assert sent_while_held and set(sent_while_held) == {1}
    assert time.monotonic() - started >= 0.39


def test_produce_interrupted_flushes_and_counts(
    fake_kafka: type[_FakeProducer], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupting(**config: Any) -> _FakeProducer:
        producer = _FakeProducer(**config)
        producer.fail_after = 7  # Ctrl-C while sending the 8th event
        return producer

    monkeypatch.setattr(simulate.sinks, "KafkaProducer", interrupting)
    with pytest.raises(SimulationInterrupted) as info:
        produce(generate(customers=3, days=20), "broker:9092", TOPICS)
    assert info.value.sent == 7
    assert fake_kafka.instances[0].flushed and fake_kafka.instances[0].closed


def test_produce_reports_rejected_events(
    fake_kafka: type[_FakeProducer], monkeypatch: pytest.MonkeyPatch
) -> None:
    def rejecting(**config: Any) -> _FakeProducer:
        producer = _FakeProducer(**config)
        producer.reject = True
        return producer

    monkeypatch.setattr(simulate.sinks, "KafkaProducer", rejecting)
    with pytest.raises(DeliveryError, match="NotLeaderForPartition"):
        produce(generate(customers=2, days=10), "broker:9092", TOPICS)


def test_unreachable_kafka(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(KafkaUnavailable):
        produce(generate(customers=1, days=5), "127.0.0.1:1", TOPICS, connect_timeout=0.5)

    def unreachable(**config: Any) -> None:
        raise KafkaTimeoutError("Unable to bootstrap")

    monkeypatch.setattr(simulate.sinks, "KafkaProducer", unreachable)
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    assert run(parser.parse_args(["--customers", "2", "--bootstrap", "127.0.0.1:1"])) == 1
    assert "docker/services.sh start" in capsys.readouterr().err
