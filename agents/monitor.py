"""The monitor driver: validate, de-duplicate, run the core, collect what to publish.

Kept free of Faust so the batch logic is testable; the agent in
:mod:`stream_risk.agents.app` feeds it messages and performs the sends.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from stream_risk.core import BadEvent, Context, CustomerState, Outputs, advance, profile_of, step
from stream_risk.core.state import decode, encode
from stream_risk.core.timers import TimerQueue
from stream_risk.schemas.events import describe_validation_error, input_event_adapter

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Message:
    """The parts of a Kafka message the monitor needs."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class BatchResult:
    """What one batch publishes: states to write, warnings, profiles, dead letters."""

    #: customer_id -> (partition, encoded state)
    states: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    warnings: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    #: customer_id -> (partition, profile)
    profiles: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    dead_letters: list[tuple[bytes | None, dict[str, Any]]] = field(default_factory=list)
    #: (partition, record) for the tier-changes and credit-actions topics.
    tier_changes: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    credit_actions: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    #: Labelled model inputs from outcome events, for the trainer.
    training_examples: list[dict[str, Any]] = field(default_factory=list)


class MonitorDriver:
    """Applies batches of input messages to per-customer states.

    ``load`` reads a customer's encoded state (from the Faust table). Timers are
    kept per partition and fire on that partition's event-time watermark, so a
    customer's overdue check is written to the same changelog partition as its
    events.
    """

    def __init__(
        self,
        ctx: Context,
        topic_types: dict[str, str],
        load: Callable[[str], bytes | None],
        max_cached: int = 200_000,
    ) -> None:
        self.ctx = ctx
        self.topic_types = topic_types
        self.load = load
        #: Decoded states of this worker's customers; the table holds the truth.
        self.cache: dict[str, CustomerState] = {}
        self.max_cached = max_cached
        self.timers: dict[int, TimerQueue] = {}
        self.watermarks: dict[int, float] = {}
        self.counts: Counter[str] = Counter()

    def forget(self) -> None:
        """Drop cached states and timers (partitions were revoked or assigned)."""
        self.cache.clear()
        self.timers.clear()
        self.watermarks.clear()

    def rebuild_timers(
        self, items: Iterable[tuple[str, bytes]], partition_of: Callable[[str], int]
    ) -> None:
        """Re-create the timer queues from stored states (after a restart or rebalance)."""
        self.timers.clear()
        for customer_id, raw in items:
            try:
                state = decode(raw)
            except ValueError:
                log.exception("unreadable state for customer %s", customer_id)
                continue
            if state.next_wakeup is not None:
                partition = state.partition
                if partition is None:
                    partition = partition_of(customer_id)
                self._queue(partition).schedule(customer_id, state.next_wakeup)

    def _queue(self, partition: int) -> TimerQueue:
        queue = self.timers.get(partition)
        if queue is None:
            queue = self.timers[partition] = TimerQueue()
        return queue

    def process(self, messages: Iterable[Message]) -> BatchResult:
        """Apply ``messages`` in order; return everything to publish for them."""
        result = BatchResult()
        if len(self.cache) > self.max_cached:
            self.cache.clear()
        cache = self.cache
        self.ctx.detected_at = datetime.now(UTC)
        for msg in messages:
            self._one(msg, result, cache)
        for customer_id, (partition, _) in result.states.items():
            state = cache[customer_id]
            result.states[customer_id] = (partition, encode(state))
            result.profiles[customer_id] = (partition, profile_of(state))
        return result

    def _state(self, customer_id: str, cache: dict[str, CustomerState]) -> CustomerState:
        state = cache.get(customer_id)
        if state is None:
            raw = self.load(customer_id)
            state = decode(raw) if raw is not None else CustomerState(customer_id)
            cache[customer_id] = state
        return state

    def _one(self, msg: Message, result: BatchResult, cache: dict[str, CustomerState]) -> None:
        expected_type = self.topic_types.get(msg.topic)
        if msg.value is None:
            self._dead(msg, "empty message (no value)", result)
            return
        try:
            event = input_event_adapter.validate_json(msg.value)
        except ValidationError as exc:
            self._dead(msg, "invalid event: " + describe_validation_error(exc), result)
            return
        if expected_type is not None and event.type != expected_type:
            self._dead(msg, f"event type {event.type!r} on the {expected_type!r} topic", result)
            return
        customer_id = event.customer_id
        if msg.key is None or msg.key != customer_id.encode():
            # The key decides the partition; any other key splits a customer's state.
            self._dead(msg, "message key must be the customer_id", result)
            return
        ts = event.occurred_at.timestamp()
        self._fire_timers(msg.partition, ts, result, cache)
        state = self._state(customer_id, cache)
        if state.offsets.get(msg.topic, -1) >= msg.offset:
            # Redelivered after a crash or rebalance: already in the state.
            self.counts["redelivered"] += 1
            result.states[customer_id] = (msg.partition, b"")
            return
        try:
            state, out = step(state, event, self.ctx)
        except BadEvent as exc:
            self._dead(msg, str(exc), result)
            return
        except Exception as exc:  # a bug must not stop the stream; the event is kept
            log.exception("failed to apply event %s", event.event_id)
            self._dead(msg, f"internal error: {type(exc).__name__}: {exc}", result)
            return
        self.counts[f"events.{event.type}"] += 1
        # A duplicate still refreshes the profile: after a crash its first
        # publication may not have happened.
        result.states[customer_id] = (msg.partition, b"")
        if out.duplicate:
            self.counts["duplicates"] += 1
            return
        state.offsets[msg.topic] = msg.offset
        state.partition = msg.partition
        self._collect(msg.partition, state, out, result)
        result.training_examples.extend(out.training_examples)

    def _fire_timers(
        self, partition: int, now: float, result: BatchResult, cache: dict[str, CustomerState]
    ) -> None:
        if now <= self.watermarks.get(partition, float("-inf")):
            return
        self.watermarks[partition] = now
        queue = self.timers.get(partition)
        if not queue:
            return
        for customer_id, wake in queue.due(now):
            state, out = advance(self._state(customer_id, cache), wake, self.ctx)
            result.states[customer_id] = (partition, b"")
            self._collect(partition, state, out, result)

    def _collect(
        self,
        partition: int,
        state: CustomerState,
        out: Outputs,
        result: BatchResult,
    ) -> None:
        result.tier_changes.extend((partition, change) for change in out.tier_changes)
        result.credit_actions.extend((partition, action) for action in out.credit_actions)
        for warning in out.warnings:
            self.counts[f"warnings.{warning['level']}.{warning['status']}"] += 1
            result.warnings.append((partition, warning))
        self._queue(partition).schedule(state.customer_id, state.next_wakeup)

    def _dead(self, msg: Message, reason: str, result: BatchResult) -> None:
        self.counts["dead_letters"] += 1
        raw = msg.value or b""
        try:
            text = raw.decode()
            b64 = None
        except UnicodeDecodeError:
            import base64

            text = raw.decode(errors="replace")
            b64 = base64.b64encode(raw).decode()
        record = {
            "reason": reason,
            "source": msg.topic,
            "partition": msg.partition,
            "offset": msg.offset,
            "key": msg.key.decode(errors="replace") if msg.key is not None else None,
            "original": text,
            "original_base64": b64,
            "received_at": datetime.now(UTC).isoformat(),
        }
        log.warning("dead letter %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, reason)
        result.dead_letters.append((msg.key, record))
