"""The notifier's reservation protocol, in process: reserve before the first attempt,
record after, and what happens to a reservation left by a notifier that died.

The ledger here keeps its records in a dictionary with the same rules as the
Lua scripts of :mod:`stream_risk.notify.ledger` (those run against a real
Redis in tests/integration/test_notify.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stream_risk.config import Settings
from stream_risk.notify.ledger import (
    DEAD_LETTERED,
    RESERVED_PREFIX,
    SENT,
    ChannelRecord,
    holder_value,
    is_done,
)
from stream_risk.notify.message import Notification
from stream_risk.notify.routes import load, parse
from stream_risk.notify.service import InFlight, Notifier, NotifierOptions, Stopping

ROUTES = """
defaults:
  retry: {attempts: 2, base_seconds: 0.01, max_seconds: 0.02}
channels:
  hook: {type: webhook, url: "https://hooks.example.com/in", secret_env: S, timeout_seconds: 5}
routes:
  - {name: all, channels: [hook]}
"""
WARNING = {
    "warning_id": "w-1",
    "customer_id": "acme",
    "level": "high",
    "status": "firing",
    "rule": "overdue_30_days",
}
KEY = "w-1:firing:high:hook"


class Killed(BaseException):
    """Stands for kill -9: nothing after it runs (not an ``Exception``, nothing catches it)."""


class MemoryLedger:
    """The ledger's records in a dictionary, reservations with the same rules."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.leases: dict[str, float] = {}
        self.kill_before_record = False

    async def lookup(self, key: str, *args: Any) -> ChannelRecord:
        return ChannelRecord(is_done(self.values.get(key)), None, [])

    async def reserve(
        self, key: str, consumer: str, token: str, lease_seconds: float
    ) -> tuple[str, str | None]:
        mine, found = holder_value(consumer, token), self.values.get(key)
        self.leases[key] = lease_seconds
        if found is None or found == mine:
            self.values[key] = mine
            return "reserved", None
        if not found.startswith(RESERVED_PREFIX):
            return "done", found
        if found.startswith(f"{RESERVED_PREFIX}{consumer}|"):
            self.values[key] = mine
            return "taken-over", found
        return "busy", found

    async def release(self, key: str, consumer: str, token: str) -> None:
        if self.values.get(key) == holder_value(consumer, token):
            del self.values[key]

    async def extend(self, key: str, consumer: str, token: str, lease_seconds: float) -> bool:
        return self.values.get(key) == holder_value(consumer, token)

    async def record_sent(self, key: str, *args: Any) -> None:
        if self.kill_before_record:
            raise Killed
        self.values[key] = SENT

    async def record_dead_lettered(self, key: str) -> None:
        self.values[key] = DEAD_LETTERED

    async def count_suppressed(self, channel: str) -> int:
        return 0


class Receiver:
    """A channel that accepts everything and remembers the idempotency keys it got."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    async def setup(self) -> None:
        return None

    async def send(self, note: Notification) -> None:
        self.keys.append(note.key)  # the receiver's 200

    async def close(self) -> None:
        return None


def notifier(
    ledger: MemoryLedger, receiver: Receiver, consumer: str = "notifier-1", routes: str = ROUTES
) -> Notifier:
    route_file, errors = load(parse(routes, "routes.yaml"))
    assert route_file is not None, errors
    n = Notifier(route_file, Settings(), {"hook": receiver}, NotifierOptions(consumer=consumer))
    n._ledger = ledger  # type: ignore[assignment]
    return n


def test_sent_once_then_recognised() -> None:
    ledger, receiver = MemoryLedger(), Receiver()
    first = notifier(ledger, receiver)
    asyncio.run(first.handle(WARNING, {}))
    asyncio.run(first.handle(WARNING, {}))  # a redelivery
    assert receiver.keys == [KEY]
    assert ledger.values[KEY] == SENT
    assert first.stats["sent_firing"] == 1 and first.stats["duplicate"] == 1


def test_a_kill_between_the_receivers_200_and_the_record_resends_with_the_same_key() -> None:
    # What the README promises: at least once, every repeat with the same idempotency key.
    ledger, receiver = MemoryLedger(), Receiver()
    ledger.kill_before_record = True
    with pytest.raises(Killed):
        asyncio.run(notifier(ledger, receiver).handle(WARNING, {}))
    assert receiver.keys == [KEY]  # the channel has it ...
    assert ledger.values[KEY].startswith(RESERVED_PREFIX)  # ... the ledger does not know

    ledger.kill_before_record = False
    restarted = notifier(ledger, receiver)  # same consumer name, a new process
    asyncio.run(restarted.handle(WARNING, {}))
    assert receiver.keys == [KEY, KEY]  # sent again, with the same key
    assert restarted.stats["taken_over"] == 1
    assert ledger.values[KEY] == SENT
    asyncio.run(restarted.handle(WARNING, {}))
    assert receiver.keys == [KEY, KEY]  # and never a third time
    assert len(set(receiver.keys)) == 1  # a receiver dropping repeated keys acts once


def test_a_live_holder_keeps_its_reservation() -> None:
    ledger, receiver = MemoryLedger(), Receiver()
    ledger.values[KEY] = holder_value("notifier-2", "abc")  # another notifier is sending
    other = notifier(ledger, receiver)
    with pytest.raises(InFlight):
        asyncio.run(other.handle(WARNING, {}))
    assert receiver.keys == []
    assert other.stats["in_flight"] == 1
    assert ledger.values[KEY] == holder_value("notifier-2", "abc")


def test_the_lease_covers_every_attempt_and_pause() -> None:
    n = notifier(MemoryLedger(), Receiver())
    # 2 attempts x 5 s timeout + 0.01 s pause + 30 s margin
    assert n.lease_seconds("hook") == pytest.approx(40.01)
    asyncio.run(n.handle(WARNING, {}))
    assert n._ledger.leases[KEY] == pytest.approx(40.01)  # type: ignore[union-attr]


def test_a_stop_between_attempts_frees_the_reservation() -> None:
    class Failing(Receiver):
        async def send(self, note: Notification) -> None:
            from stream_risk.notify.channels import DeliveryError

            self.keys.append(note.key)
            raise DeliveryError("HTTP 503")

    ledger, receiver = MemoryLedger(), Failing()
    slow_retries = ROUTES.replace("base_seconds: 0.01, max_seconds: 0.02", "base_seconds: 30")
    n = notifier(ledger, receiver, routes=slow_retries)

    async def scenario() -> None:
        task = asyncio.create_task(n.handle(WARNING, {}))
        while not receiver.keys:
            await asyncio.sleep(0.001)
        n.stop()
        with pytest.raises(Stopping):
            await task

    asyncio.run(scenario())
    assert KEY not in ledger.values  # whoever handles the entry next may send at once
