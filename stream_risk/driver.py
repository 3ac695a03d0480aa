"""The monitor driver: validate, de-duplicate, run the core, collect what to publish.

One driver loop for the worker and for ``replay``: the agent in
:mod:`stream_risk.agents.app` feeds it batches of Kafka messages and performs the
sends; :class:`stream_risk.replay.Replayer` feeds it the events of files one by
one through :meth:`MonitorDriver.apply_event`, the same guard. Free of Faust and
of any I/O, so it is testable and replay needs no broker.

Every message ends applied or dead-lettered. One guard covers all a message
causes: decoding, the limits of :class:`Limits` (size, clock skew), the step,
encoding the state and every output. When any of it fails, the customer's
state goes back to its encoding from before the message (the last good
encoding doubles as the snapshot, so a message costs one encode), the
message's outputs are dropped, and a bounded dead letter is written instead.
A timer wake-up that evaluated nothing (most do) is not encoded: the state to
go back to is then the last encoding with the wake-up's clock marks on it
(:class:`~stream_risk.core.ClockMarks`), and the batch's end encodes it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from pydantic import ValidationError

from stream_risk.core import (
    BadEvent,
    ClockMarks,
    Context,
    CustomerState,
    Outputs,
    advance,
    profile_of,
    step,
)
from stream_risk.core.state import decode, encode, encode_after, timer_fields
from stream_risk.core.timers import TimerQueue
from stream_risk.core.units import DAY
from stream_risk.schemas.events import describe_validation_error, input_event_adapter

if TYPE_CHECKING:
    from stream_risk.config import Settings

log = logging.getLogger(__name__)

#: Characters of the original kept in a dead letter when the whole does not fit.
EXCERPT_CHARS = 1_000
#: Longest reason and key text in a dead letter.
REASON_CHARS = 1_000
KEY_CHARS = 200
#: Room a Kafka record needs besides its value (key, headers, framing).
RECORD_OVERHEAD = 1_024


@dataclass(frozen=True, slots=True)
class Limits:
    """What one message may be and cause; beyond it, the message is a dead letter."""

    #: Largest input message value (bytes).
    max_event_bytes: int = 65_536
    #: Largest record the producer may send (its ``max_request_size``): states,
    #: outputs and dead letters stay below it.
    max_message_bytes: int = 1_000_000
    #: How far (seconds) ``occurred_at`` may be ahead of the record's timestamp.
    clock_skew: float = 3_600.0
    #: Hold ``occurred_at`` to the record's timestamp plus ``clock_skew``.
    check_record_time: bool = True
    #: Also hold it to the wall clock plus ``clock_skew`` (a live stream).
    check_wall_clock: bool = True
    #: Timer firings per batch; the rest fire in the next batches.
    max_timer_fires: int = 20_000

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits ``settings`` give the worker (``STREAM_RISK_MAX_EVENT_BYTES``, ...)."""
        return cls(
            max_event_bytes=settings.max_event_bytes,
            max_message_bytes=settings.max_message_bytes,
            clock_skew=settings.clock_skew_seconds,
            check_record_time=settings.clock_checks != "off",
            check_wall_clock=settings.clock_checks == "live",
            max_timer_fires=settings.max_timer_fires_per_batch,
        )

    def too_early(self, occurred: float, record_time: float | None, now: float) -> bool:
        """Whether an event at ``occurred`` is further ahead than the clock checks allow.

        ``record_time`` is the record's timestamp (None or 0: none), ``now`` the wall
        clock, all in seconds. Such an event is a dead letter; event-time alignment
        must not wait on it either.

        >>> limits = Limits(clock_skew=60.0)
        >>> limits.too_early(1_000.0, 900.0, 2_000.0), limits.too_early(950.0, 900.0, 2_000.0)
        (True, False)
        >>> limits.too_early(1_000.0, None, 900.0), limits.too_early(1_000.0, None, 990.0)
        (True, False)
        >>> Limits(check_wall_clock=False).too_early(1e10, None, 0.0)
        False
        """
        return self.clock_violation(occurred, record_time, now) is not None

    def clock_violation(self, occurred: float, record_time: float | None, now: float) -> str | None:
        """Why an event at ``occurred`` breaks the clock checks, or None when it does not.

        A record timestamp of None or not above 0 (Kafka's -1) is no timestamp.

        >>> Limits(clock_skew=60.0).clock_violation(1_000.0, 900.0, 2_000.0)
        "occurred_at is 100s ahead of the record's timestamp (allowed clock skew 60s)"
        >>> Limits(clock_skew=60.0).clock_violation(1_000.0, -1.0, 2_000.0) is None
        True
        """
        skew = self.clock_skew
        stamped = record_time if record_time is not None and record_time > 0 else None
        if self.check_record_time and stamped is not None and occurred > stamped + skew:
            return (
                f"occurred_at is {_span(occurred - stamped)} ahead of the record's "
                f"timestamp (allowed clock skew {_span(skew)})"
            )
        if self.check_wall_clock and occurred > now + skew:
            return (
                f"occurred_at is {_span(occurred - now)} ahead of the wall clock "
                f"(allowed clock skew {_span(skew)})"
            )
        return None

    def for_replay(self) -> Limits:
        """These limits as replay holds events to them.

        Without the wall clock (a replay reads history; the stream's own time bounds
        it) and without a per-batch bound on timer firings (every due timer fires
        before the next event).

        >>> Limits(max_event_bytes=2_048).for_replay()
        Limits(max_event_bytes=2048, max_message_bytes=1000000, clock_skew=3600.0, \
check_record_time=True, check_wall_clock=False, max_timer_fires=9223372036854775807)
        """
        return replace(self, check_wall_clock=False, max_timer_fires=sys.maxsize)


@dataclass(slots=True)
class Message:
    """The parts of a Kafka message the monitor needs."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    #: The record's timestamp (seconds since the epoch), when the broker gave one.
    timestamp: float | None = None


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

    def _marks(self) -> tuple[int, int, int, int]:
        return (
            len(self.warnings),
            len(self.tier_changes),
            len(self.credit_actions),
            len(self.training_examples),
        )

    def _drop_since(self, marks: tuple[int, int, int, int]) -> None:
        del self.warnings[marks[0] :]
        del self.tier_changes[marks[1] :]
        del self.credit_actions[marks[2] :]
        del self.training_examples[marks[3] :]


class Saved(NamedTuple):
    """A customer's state to go back to: its latest good encoding, and the clock marks
    of the wake-ups since that changed nothing else (``None``: there were none)."""

    raw: bytes
    marks: ClockMarks | None


class Rejected(Exception):
    """A message that cannot be applied; its text is the dead letter's reason."""


def dead_letter(
    msg: Message, reason: str, max_message_bytes: int, received_at: datetime
) -> tuple[bytes | None, dict[str, Any]]:
    """The dead-letter record of ``msg``: the original once if it fits, else an excerpt.

    The record always carries the original's size and SHA-256, and stays below
    ``max_message_bytes`` whatever the original was.

    >>> msg = Message("in.order", 0, 7, b"c1", b"\\x01" * 300_000)
    >>> key, record = dead_letter(msg, "bad", 100_000, datetime(2024, 1, 1, tzinfo=UTC))
    >>> record["truncated"], record["original_bytes"], len(record["original"])
    (True, 300000, 1000)
    >>> len(orjson.dumps(record)) < 100_000
    True
    """
    raw = msg.value or b""
    budget = max_message_bytes - RECORD_OVERHEAD - 4 * REASON_CHARS - 8 * KEY_CHARS
    b64: str | None = None
    truncated = False
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        text = raw.decode(errors="replace")
        excerpt = text[:EXCERPT_CHARS]
        if (len(raw) + 2) // 3 * 4 + 6 * len(excerpt) <= budget:
            # The bytes once, exactly; the text is only a readable excerpt.
            b64 = base64.b64encode(raw).decode()
        else:
            truncated = True
        text = excerpt
    else:
        # JSON escapes control characters six-fold: measure the encoded form.
        if len(raw) > budget or len(orjson.dumps(text)) > budget:
            text, truncated = text[:EXCERPT_CHARS], True
    key = msg.key
    key_text = key.decode(errors="replace") if key is not None else None
    if key_text is not None and len(key_text) > KEY_CHARS:
        key_text = key_text[:KEY_CHARS]
    if key is not None and len(key) > 4 * KEY_CHARS:
        key = None  # not a customer id anyway; the record says what it began with
    record = {
        "reason": reason if len(reason) <= REASON_CHARS else reason[: REASON_CHARS - 1] + "…",
        "source": msg.topic,
        "partition": msg.partition,
        "offset": msg.offset,
        "key": key_text,
        "original": text,
        "original_base64": b64,
        "original_bytes": len(raw),
        "original_sha256": hashlib.sha256(raw).hexdigest(),
        "truncated": truncated,
        "received_at": received_at.isoformat(),
    }
    return key, record


class MonitorDriver:
    """Applies batches of input messages to per-customer states.

    ``load`` reads a customer's encoded state (from the Faust table). Timers are
    kept per partition and fire on that partition's event-time watermark, so a
    customer's overdue check is written to the same changelog partition as its
    events. The watermark moves only with events that pass the checks of
    :class:`Limits` and are applied; ``clock`` is the wall clock (seconds).
    """

    def __init__(
        self,
        ctx: Context,
        topic_types: dict[str, str],
        load: Callable[[str], bytes | None],
        max_cached: int = 200_000,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ctx = ctx
        self.topic_types = topic_types
        self.load = load
        #: Decoded states of this worker's customers; the table holds the truth.
        self.cache: dict[str, CustomerState] = {}
        self.max_cached = max_cached
        self.limits = limits or Limits()
        self.clock = clock
        self.timers: dict[int, TimerQueue] = {}
        self.watermarks: dict[int, float] = {}
        self.counts: Counter[str] = Counter()
        #: customer_id -> the latest good encoding of a state touched in this batch.
        self._encoded: dict[str, bytes] = {}
        #: customer_id -> the clock marks of the wake-ups since that encoding, when
        #: they changed nothing else (see :class:`Saved`).
        self._clock_marks: dict[str, ClockMarks] = {}
        self._fires_left = 0
        #: Partitions whose timers were left behind their watermark by the per-batch bound.
        self._behind: set[int] = set()

    def forget(self) -> None:
        """Drop cached states and timers (partitions were revoked or assigned)."""
        self.cache.clear()
        self.timers.clear()
        self.watermarks.clear()
        self._behind.clear()

    def rebuild_timers(
        self, items: Iterable[tuple[str, bytes]], partition_of: Callable[[str], int]
    ) -> None:
        """Re-create the timer queues and watermarks from stored states (after a restart
        or rebalance).

        A partition's watermark is the latest event time applied to any of its
        customers: events older than it fire no timer, as before the restart.
        """
        self.timers.clear()
        earliest: dict[int, float] = {}
        for customer_id, raw in items:
            try:
                # Only the three fields the timers need: every state is read here.
                partition, latest, wake = timer_fields(raw)
            except ValueError:
                log.exception("unreadable state for customer %s", customer_id)
                continue
            if partition is None:
                partition = partition_of(customer_id)
            if latest is not None and latest > self.watermarks.get(partition, float("-inf")):
                self.watermarks[partition] = latest
            if wake is not None:
                self._queue(partition).schedule(customer_id, wake)
                earliest[partition] = min(wake, earliest.get(partition, wake))
        for partition, wake in earliest.items():
            if wake <= self.watermarks.get(partition, float("-inf")):
                # Left behind by the per-batch bound: the next event catches them up.
                self._behind.add(partition)

    def _queue(self, partition: int) -> TimerQueue:
        queue = self.timers.get(partition)
        if queue is None:
            queue = self.timers[partition] = TimerQueue()
        return queue

    def process(self, messages: Iterable[Message]) -> BatchResult:
        """Apply ``messages`` in order; return everything to publish for them."""
        result = BatchResult()
        now = self.begin()
        for msg in messages:
            try:
                self._one(msg, result, now)
            except Rejected as exc:
                self._dead(msg, str(exc), result)
            except Exception as exc:  # outside the step (which undoes itself): nothing to undo
                log.exception("failed to handle %s[%d]@%d", msg.topic, msg.partition, msg.offset)
                self.counts["internal_errors"] += 1
                self._dead(msg, f"internal error: {type(exc).__name__}: {exc}", result)
        self.encode_woken()
        limit = self.limits.max_message_bytes - RECORD_OVERHEAD
        for customer_id, (partition, _) in result.states.items():
            result.states[customer_id] = (partition, self._encoded[customer_id])
            try:
                # Most groups were just computed by the customer's evaluation: reused.
                kept = self.ctx.memory.of(customer_id).groups
                profile = profile_of(self.cache[customer_id], kept)
                too_big = len(orjson.dumps(profile)) > limit
            except Exception:  # the state is written; only its profile is missing
                log.exception("no profile for customer %s", customer_id)
                self.counts["profile_errors"] += 1
                continue
            if too_big:
                log.error("profile of customer %s exceeds the message size", customer_id)
                self.counts["profile_errors"] += 1
                continue
            result.profiles[customer_id] = (partition, profile)
        self._encoded = {}
        return result

    def encode_woken(self) -> None:
        """Encode the states whose latest wake-ups were not encoded (see :class:`Saved`).

        Their size is not checked again: since the encoding checked last, only the
        few numbers of their clock marks changed, well within the room kept for a
        record's framing (:data:`RECORD_OVERHEAD`).
        """
        for customer_id in self._clock_marks:
            self._encoded[customer_id] = encode_after(self.cache[customer_id])
        self._clock_marks.clear()

    def begin(self) -> float:
        """Start a batch: reset the per-batch bounds; return the wall clock it runs at."""
        if len(self.cache) > self.max_cached:
            self.cache.clear()
        self._encoded = {}
        self._clock_marks = {}
        self._fires_left = self.limits.max_timer_fires
        now = self.clock()
        self.ctx.detected_at = datetime.fromtimestamp(now, UTC)
        return now

    def encoded_size(self, customer_id: str) -> int:
        """Bytes of the customer's latest good encoding in this batch (0: not touched);
        after wake-ups that were not encoded, the encoding from before them."""
        raw = self._encoded.get(customer_id)
        return 0 if raw is None else len(raw)

    def _saved(self, customer_id: str) -> Saved:
        return Saved(self._encoded[customer_id], self._clock_marks.get(customer_id))

    def _save(self, customer_id: str, saved: Saved) -> None:
        self._encoded[customer_id] = saved.raw
        if saved.marks is None:
            self._clock_marks.pop(customer_id, None)
        else:
            self._clock_marks[customer_id] = saved.marks

    def _state(self, customer_id: str) -> CustomerState:
        """The customer's state, its encoding remembered as the snapshot to go back to."""
        state = self.cache.get(customer_id)
        if state is None:
            raw = self.load(customer_id)
            try:
                state = decode(raw) if raw is not None else CustomerState(customer_id)
            except ValueError as exc:
                raise Rejected(
                    f"the stored state of {customer_id!r} is unreadable: {exc}"
                ) from None
            self.cache[customer_id] = state
            if customer_id not in self._encoded:
                self._encoded[customer_id] = raw if raw is not None else encode(state)
        elif customer_id not in self._encoded:
            # A cached state changed only through step and advance, each followed by
            # encode_after: its large fields' parts from then are still current.
            self._encoded[customer_id] = encode_after(state)
        return state

    def _restore(self, customer_id: str, partition: int) -> None:
        """Put the customer's state back as it was before the failed message or timer."""
        saved = self._saved(customer_id)
        state = decode(saved.raw)
        if saved.marks is not None:
            saved.marks.restore(state)
        self.cache[customer_id] = state
        self._queue(partition).schedule(customer_id, state.next_wakeup)

    def _one(self, msg: Message, result: BatchResult, now: float) -> None:
        """Apply one message, or raise :class:`Rejected` with the reason."""
        limits = self.limits
        if msg.value is None:
            raise Rejected("empty message (no value)")
        if len(msg.value) > limits.max_event_bytes:
            raise Rejected(
                f"message of {len(msg.value)} bytes exceeds the maximum of "
                f"{limits.max_event_bytes} bytes"
            )
        try:
            event = input_event_adapter.validate_json(msg.value)
        except ValidationError as exc:
            raise Rejected("invalid event: " + describe_validation_error(exc)) from None
        expected_type = self.topic_types.get(msg.topic)
        if expected_type is not None and event.type != expected_type:
            raise Rejected(f"event type {event.type!r} on the {expected_type!r} topic")
        customer_id = event.customer_id
        try:
            key = customer_id.encode()
        except UnicodeEncodeError:
            raise Rejected("customer_id is not valid Unicode text") from None
        if msg.key is None or msg.key != key:
            # The key decides the partition; any other key splits a customer's state.
            raise Rejected("message key must be the customer_id")
        self.apply_event(event, msg.partition, result, now, msg.topic, msg.offset, msg.timestamp)

    def apply_event(
        self,
        event: Any,
        partition: int,
        result: BatchResult,
        now: float,
        topic: str | None = None,
        offset: int | None = None,
        record_time: float | None = None,
    ) -> None:
        """Apply one validated event under the guard, or raise :class:`Rejected`.

        The part of a message's handling that ``replay`` shares: the clock checks,
        the timers due before the event, the step, the size of the state and of every
        output, and the undo of all of it when any fails. ``topic`` and ``offset``
        (both or neither) recognise a redelivery; ``record_time`` is the record's
        timestamp (seconds), ``now`` the wall clock.
        """
        limits = self.limits
        customer_id = event.customer_id
        ts = event.occurred_at.timestamp()
        self._check_clock(ts, record_time, now)
        # Timers fire up to the event before it applies (as in replay); when the event
        # is then rejected, they are undone with it: a rejected event moves no time.
        fired: list[tuple[str, Saved, bool]] = []
        marks = result._marks()
        try:
            self._fire_timers(partition, ts, result, fired)
            state = self._state(customer_id)
            # Replay has no offsets (topic and offset None): nothing is redelivered there.
            if topic is not None and offset is not None and state.offsets.get(topic, -1) >= offset:
                # Redelivered after a crash or rebalance: already in the state.
                self.counts["redelivered"] += 1
                result.states[customer_id] = (partition, b"")
                self._applied(partition, ts, result, marks)
                return
            state, out = step(state, event, self.ctx)
            if not out.duplicate:
                if topic is not None and offset is not None:
                    state.offsets[topic] = offset
                    state.partition = partition
                self._collect(partition, state, out, result)
                result.training_examples.extend(out.training_examples)
            raw = encode_after(state)
            if len(raw) > limits.max_message_bytes - RECORD_OVERHEAD:
                raise Rejected(
                    f"the customer's state would grow to {len(raw)} bytes, above the "
                    f"maximum message size of {limits.max_message_bytes} bytes"
                )
        except (BadEvent, Rejected) as exc:
            self._undo(customer_id, partition, result, marks, fired)
            raise Rejected(str(exc)) from None
        except Exception as exc:  # a bug must not stop the stream; the event is kept
            log.exception("failed to apply event %s", event.event_id)
            self.counts["internal_errors"] += 1
            self._undo(customer_id, partition, result, marks, fired)
            raise Rejected(f"internal error: {type(exc).__name__}: {exc}") from None
        self._save(customer_id, Saved(raw, None))
        # A duplicate still refreshes the profile: after a crash its first
        # publication may not have happened.
        result.states[customer_id] = (partition, b"")
        self.counts[f"events.{event.type}"] += 1
        if out.duplicate:
            self.counts["duplicates"] += 1
        self._applied(partition, ts, result, marks)

    def _applied(
        self, partition: int, ts: float, result: BatchResult, marks: tuple[int, int, int, int]
    ) -> None:
        """Only applied events (or ones applied before a redelivery) move the watermark."""
        if ts > self.watermarks.get(partition, float("-inf")):
            self.watermarks[partition] = ts
        for _, warning in result.warnings[marks[0] :]:
            self.counts[f"warnings.{warning['level']}.{warning['status']}"] += 1

    def _undo(
        self,
        customer_id: str,
        partition: int,
        result: BatchResult,
        marks: tuple[int, int, int, int],
        fired: list[tuple[str, Saved, bool]],
    ) -> None:
        """Drop the message's outputs; restore its customer, then what its timers changed."""
        result._drop_since(marks)
        if customer_id in self._encoded:
            self._restore(customer_id, partition)
        for fired_id, before, woke in reversed(fired):
            self._save(fired_id, before)
            self._restore(fired_id, partition)
            self.counts["timer_wakeups"] -= woke
        self._fires_left += len(fired)

    def _check_clock(self, ts: float, record_ts: float | None, now: float) -> None:
        reason = self.limits.clock_violation(ts, record_ts, now)
        if reason is not None:
            raise Rejected(reason)

    def advance_to(self, partition: int, now: float, result: BatchResult) -> None:
        """Fire the partition's timers due at or before event time ``now`` (end of a replay)."""
        queue = self.timers.get(partition)
        if queue:
            for customer_id, wake in queue.due(now):
                self._advance(partition, customer_id, wake, result, [])

    def _fire_timers(
        self,
        partition: int,
        ts: float,
        result: BatchResult,
        fired: list[tuple[str, Saved, bool]],
    ) -> None:
        queue = self.timers.get(partition)
        watermark = self.watermarks.get(partition, float("-inf"))
        if not queue or self._fires_left <= 0:
            return
        if ts <= watermark and partition not in self._behind:
            return
        # Up to the event, or to the watermark when an earlier batch left firings over.
        for customer_id, wake in queue.due(max(ts, watermark)):
            self._advance(partition, customer_id, wake, result, fired)
            self._fires_left -= 1
            if self._fires_left <= 0:
                # The timer queue is lazy: what is still due stays queued for later.
                self.counts["timer_catch_up_deferred"] += 1
                self._behind.add(partition)
                return
        self._behind.discard(partition)

    def _advance(
        self,
        partition: int,
        customer_id: str,
        wake: float,
        result: BatchResult,
        fired: list[tuple[str, Saved, bool]],
    ) -> None:
        """Fire one timer under its own guard: a failure leaves the state as it was.

        ``fired`` gets the customer, its state to go back to and whether the timer
        moved its clock, to undo it with the event that moved the time, should that
        event be rejected. A wake-up that evaluated nothing is not encoded: its clock
        marks go on the state to go back to instead.
        """
        marks = result._marks()
        try:
            state = self._state(customer_id)
            before = self._saved(customer_id)
            # A wake-up re-evaluates the customer unless an event already brought it there.
            woke = state.clock is None or wake > state.clock
            state, out = advance(state, wake, self.ctx)
            self._collect(partition, state, out, result)
            if out.clock_only:
                raw = None
            else:
                raw = encode_after(state)
                if len(raw) > self.limits.max_message_bytes - RECORD_OVERHEAD:
                    raise Rejected(f"state of {len(raw)} bytes")
        except Exception:
            log.exception("timer of customer %s at %s failed", customer_id, wake)
            self.counts["timer_errors"] += 1
            result._drop_since(marks)
            if customer_id in self._encoded:
                self._restore(customer_id, partition)
                # Not again in this run: the next event of the customer re-evaluates it.
                self._queue(partition).schedule(customer_id, None)
            return
        fired.append((customer_id, before, woke))
        self.counts["timer_wakeups"] += woke
        if raw is None:
            self._save(customer_id, Saved(self._encoded[customer_id], ClockMarks.of(state)))
        else:
            self._save(customer_id, Saved(raw, None))
        result.states[customer_id] = (partition, b"")

    def _collect(
        self,
        partition: int,
        state: CustomerState,
        out: Outputs,
        result: BatchResult,
    ) -> None:
        limit = self.limits.max_message_bytes - RECORD_OVERHEAD
        for kind, records in (
            ("warning", out.warnings),
            ("tier change", out.tier_changes),
            ("credit action", out.credit_actions),
        ):
            for record in records:
                size = len(orjson.dumps(record))
                if size > limit:
                    raise Rejected(f"a {kind} of {size} bytes would exceed the message size")
        result.tier_changes.extend((partition, change) for change in out.tier_changes)
        result.credit_actions.extend((partition, action) for action in out.credit_actions)
        result.warnings.extend((partition, warning) for warning in out.warnings)
        self._queue(partition).schedule(state.customer_id, state.next_wakeup)

    def _dead(self, msg: Message, reason: str, result: BatchResult) -> None:
        self.counts["dead_letters"] += 1
        log.warning(
            "dead letter %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, reason[:REASON_CHARS]
        )
        result.dead_letters.append(
            dead_letter(msg, reason, self.limits.max_message_bytes, datetime.now(UTC))
        )


def _span(seconds: float) -> str:
    """A duration for a reason: ``90s``, ``2.5h``, ``3.0d``."""
    if seconds < 3_600:
        return f"{seconds:.0f}s"
    if seconds < DAY:
        return f"{seconds / 3_600:.1f}h"
    return f"{seconds / DAY:.1f}d"
