"""The notifier: warnings from the Redis stream to the collections team's channels.

For each warning read from the consumer group (:mod:`stream_risk.notify.stream`):

1. its customer's segment is taken from the warning (``segment``) or from the
   profile hash, and the routes pick the channels;
2. per channel, :func:`stream_risk.notify.decide.decide` says whether to send
   (new, escalated or resolved) given the ledger's records and the rate limit;
3. the notification is reserved in the ledger (one notifier at a time tries
   it; see :mod:`stream_risk.notify.ledger` for how a dead holder's
   reservation is taken over);
4. a send is tried up to the channel's ``retry.attempts`` times with
   exponential backoff; one that keeps failing (or fails permanently, e.g.
   HTTP 404) goes to the Kafka topic ``<topic prefix>.notification-dead-letters``
   with the warning, channel, attempts and last error;
5. the reservation becomes the idempotency record after the send succeeded
   (or the dead letter was written), and the stream entry is acknowledged only
   after every channel of the warning is done.

So a notifier killed at any point resumes from its pending entries without
losing a warning. Delivery is at least once: a notifier killed after the
channel accepted a notification but before step 5 leaves a reservation, and
the notification is sent again, with the same idempotency key (the
``Idempotency-Key`` header, the e-mail's ``Message-ID``), which receivers use
to drop the repeat. Redis or Kafka being down makes it back off (jittered,
exponential) and log at a bounded rate; it does not crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from stream_risk.backoff import Backoff, LogGate
from stream_risk.config import Settings
from stream_risk.kafka_security import KafkaSecurity
from stream_risk.notify.channels import DeliveryError, Sender
from stream_risk.notify.decide import Subject, channels_for, decide
from stream_risk.notify.ledger import Ledger
from stream_risk.notify.message import Notification, idempotency_key
from stream_risk.notify.routes import RouteFile
from stream_risk.notify.stream import StreamEntry, WarningStreamReader

log = logging.getLogger(__name__)

T = TypeVar("T")
DEAD_LETTER_TOPIC = "notification-dead-letters"
SEGMENT_FIELDS = ("industry", "size", "region")


class Stopping(Exception):
    """Raised inside a handler when the notifier is asked to stop while it waits."""


class InFlight(Exception):
    """Another live notifier holds the notification's reservation: try again later."""


@dataclass
class NotifierOptions:
    """How the notifier reads the stream (see :class:`WarningStreamReader`)."""

    group: str = "notifier"
    consumer: str = "notifier-1"
    start: str = "$"
    batch: int = 100
    block_ms: int = 1000
    claim_idle_seconds: float = 300.0
    concurrency: int = 8
    max_backoff_seconds: float = 30.0
    #: At most one "unavailable" log line per this many seconds per condition.
    log_interval_seconds: float = 30.0
    #: Added to a channel's worst-case send time to make its reservation lease.
    lease_margin_seconds: float = 30.0


def _transient_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)


def segment_of(warning: Mapping[str, Any], features: Mapping[str, Any] | None) -> dict[str, Any]:
    """The customer's segment: the warning's own ``segment``, else the profile's features.

    >>> segment_of({"segment": {"industry": "retail"}}, {"segment_region": "DACH"})
    {'industry': 'retail', 'size': None, 'region': None}
    >>> segment_of({}, {"segment_industry": "retail", "segment_region": "DACH"})
    {'industry': 'retail', 'size': None, 'region': 'DACH'}
    """
    own = warning.get("segment")
    if isinstance(own, Mapping):
        return {f: own.get(f) for f in SEGMENT_FIELDS}
    features = features or {}
    return {f: features.get(f"segment_{f}") for f in SEGMENT_FIELDS}


REQUIRED = ("warning_id", "customer_id", "level", "status")


def readable(warning: Mapping[str, Any] | None) -> bool:
    """A warning the notifier can handle: the identifying fields are strings.

    >>> readable({"warning_id": "w", "customer_id": "c", "level": "high", "status": "firing"})
    True
    >>> readable({"warning_id": "w", "customer_id": "c", "level": None, "status": "firing"})
    False
    """
    return warning is not None and all(isinstance(warning.get(k), str) for k in REQUIRED)


def subject_of(warning: Mapping[str, Any], segment: Mapping[str, Any]) -> Subject:
    labels = warning.get("labels")
    return Subject(
        level=str(warning.get("level", "")),
        status=str(warning.get("status", "")),
        rule=str(warning.get("rule", "")),
        segment={k: None if v is None else str(v) for k, v in segment.items()},
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {},
    )


class DeadLetters:
    """Writes notifications that finally failed to a Kafka topic (aiokafka)."""

    def __init__(self, bootstrap: str, topic: str, security: KafkaSecurity | None = None) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.security = security or KafkaSecurity()
        self._producer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, acks="all", **self.security.aiokafka()
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer

    async def send(self, key: str, record: Mapping[str, Any]) -> None:
        """Write one dead letter and wait for the broker's acknowledgement."""
        await self.start()
        await self._producer.send_and_wait(self.topic, orjson.dumps(record), key=key.encode())

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


class Notifier:
    """Reads warnings, routes them, sends them, remembers what it sent.

    Nothing touches the network before :meth:`setup`.
    """

    def __init__(
        self,
        route_file: RouteFile,
        settings: Settings,
        senders: Mapping[str, Sender],
        options: NotifierOptions | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.route_file = route_file
        self.config = route_file.config
        self.settings = settings
        self.senders = dict(senders)
        self.options = options or NotifierOptions()
        self._clock = clock
        self.stream_key = f"{settings.redis_prefix}:warnings"
        self.reader = WarningStreamReader(
            settings.redis_url,
            self.stream_key,
            self.options.group,
            self.options.consumer,
            start=self.options.start,
            count=self.options.batch,
            block_ms=self.options.block_ms,
            claim_idle_seconds=self.options.claim_idle_seconds,
        )
        self.dead_letters = DeadLetters(
            settings.kafka_bootstrap,
            settings.topic(DEAD_LETTER_TOPIC),
            KafkaSecurity.from_settings(settings),
        )
        # This process's reservations: a restart of the same consumer has another token.
        self.token = uuid.uuid4().hex[:12]
        self.stats: Counter[str] = Counter()
        self._client: Any = None
        self._ledger: Ledger | None = None
        self._stop = asyncio.Event()
        self._redis_gate = LogGate(self.options.log_interval_seconds)
        self._kafka_gate = LogGate(self.options.log_interval_seconds)

    # --- lifecycle ------------------------------------------------------------------------------

    async def setup(self) -> None:
        """Open clients, create the consumer group and senders; waits while Redis is down."""
        import redis.asyncio as aioredis

        for sender in self.senders.values():
            await sender.setup()
        self._client = aioredis.from_url(
            self.settings.redis_url, socket_timeout=10, socket_connect_timeout=5
        )
        windows = [
            limit.window_seconds
            for name in self.config.channels
            if (limit := self.config.rate_limit_for(name)) is not None
        ]
        self._ledger = Ledger(
            self._client,
            self.settings.redis_prefix,
            self.options.group,
            self.config.defaults.idempotency_ttl_seconds,
            max(windows, default=0.0),
        )
        await self._retrying("create the consumer group", self.reader.setup)
        await asyncio.to_thread(self._ensure_dead_letter_topic)
        log.info(
            "notifier ready: group %s, consumer %s, stream %s, channels %s, dead letters to %s",
            self.options.group,
            self.options.consumer,
            self.stream_key,
            ", ".join(self.senders) or "none",
            self.dead_letters.topic,
        )

    def _ensure_dead_letter_topic(self) -> None:
        from stream_risk.kafka_admin import KafkaUnavailable, ensure_topics

        try:
            ensure_topics(self.settings, timeout=10)
        except (KafkaUnavailable, ValueError) as exc:
            # The topic is created when Kafka is back (by the worker, or on first use).
            log.warning("could not check the Kafka topics (%s); going on", exc)

    def stop(self) -> None:
        """Ask :meth:`run` to finish the current batch and return."""
        self._stop.set()

    async def close(self) -> None:
        for sender in self.senders.values():
            await sender.close()
        await self.dead_letters.close()
        await self.reader.close()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def run(self) -> None:
        """Read, notify and acknowledge until :meth:`stop`."""
        while not self._stop.is_set():
            try:
                entries = await self._retrying("read the warnings stream", self.reader.read)
            except Stopping:
                break
            if entries:
                await self.handle_batch(entries)
        log.info(
            "notifier stopped: %s",
            ", ".join(f"{k} {v}" for k, v in sorted(self.stats.items())) or "nothing done",
        )

    # --- waiting --------------------------------------------------------------------------------

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake up (and raise :class:`Stopping`) when asked to stop."""
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except TimeoutError:
            return
        raise Stopping

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run a Redis call, backing off (jittered) while Redis is unreachable; the
        concurrent handlers share one log gate, so an outage logs a line per interval."""
        backoff = Backoff(base=0.5, cap=self.options.max_backoff_seconds)
        while True:
            try:
                result = await call()
            except _transient_errors() as exc:
                delay = backoff.next()
                self.reader.restart()
                self.stats["redis_retries"] += 1
                if self._redis_gate.allow(time.monotonic()):
                    skipped = self._redis_gate.take_swallowed()
                    log.warning(
                        "Redis unavailable, cannot %s (%s); retry %d in %.1fs%s",
                        what,
                        exc,
                        backoff.failures,
                        delay,
                        f" ({skipped} more failed calls not logged)" if skipped else "",
                    )
                await self._pause(delay)
                continue
            if backoff.failures:
                self._redis_gate.reset()
                log.warning("Redis is back after %d failed attempts", backoff.failures)
            return result

    # --- handling -------------------------------------------------------------------------------

    async def handle_batch(self, entries: list[StreamEntry]) -> list[str]:
        """Handle entries (one customer's in order, customers concurrently); ack the handled."""
        segments = await self._retrying("read profiles", lambda: self._segments(entries))
        by_customer: dict[str, list[tuple[StreamEntry, dict[str, Any]]]] = defaultdict(list)
        handled: list[str] = []
        for entry, segment in zip(entries, segments, strict=True):
            if entry.warning is None or not readable(entry.warning):
                log.warning("stream entry %s holds no readable warning; skipped", entry.entry_id)
                self.stats["unreadable"] += 1
                handled.append(entry.entry_id)
                continue
            by_customer[entry.warning["customer_id"]].append((entry, segment))
        gate = asyncio.Semaphore(self.options.concurrency)

        async def one_customer(items: list[tuple[StreamEntry, dict[str, Any]]]) -> None:
            async with gate:
                for entry, segment in items:
                    assert entry.warning is not None
                    try:
                        await self.handle(entry.warning, segment)
                    except Stopping:
                        raise
                    except InFlight as exc:
                        # Left pending: the holder records it; a later delivery sees that.
                        log.info("%s stays pending: %s", entry.entry_id, exc)
                        return
                    except Exception:
                        # Left pending: retried after --claim-idle, or at the next start.
                        log.exception("could not handle %s; it stays pending", entry.entry_id)
                        self.stats["failed"] += 1
                        return  # this customer's later warnings wait, to keep the order
                    handled.append(entry.entry_id)

        results = await asyncio.gather(
            *(one_customer(items) for items in by_customer.values()), return_exceptions=True
        )
        # Acknowledge what is done even when stopping: the rest stays pending for next time.
        try:
            await self._retrying("acknowledge", lambda: self.reader.ack(handled))
        except Stopping:
            log.warning(
                "stopping with %d handled warnings unacknowledged (Redis is down); "
                "their records keep them from being sent again",
                len(handled),
            )
        for result in results:
            if isinstance(result, Stopping):
                continue
            if isinstance(result, BaseException):
                raise result
        self.stats["acknowledged"] += len(handled)
        return handled

    async def _segments(self, entries: list[StreamEntry]) -> list[dict[str, Any]]:
        need = [
            e
            for e in entries
            if e.warning is not None and not isinstance(e.warning.get("segment"), Mapping)
        ]
        features: dict[str, Any] = {}
        if need:
            pipe = self._client.pipeline(transaction=False)
            ids = sorted({str(e.warning.get("customer_id")) for e in need if e.warning})
            for cid in ids:
                pipe.hget(f"{self.settings.redis_prefix}:profile:{cid}", "features")
            for cid, raw in zip(ids, await pipe.execute(), strict=True):
                features[cid] = orjson.loads(raw) if raw else None
        return [
            segment_of(e.warning, features.get(str(e.warning.get("customer_id"))))
            if e.warning is not None
            else {}
            for e in entries
        ]

    async def handle(self, warning: Mapping[str, Any], segment: Mapping[str, Any]) -> None:
        """Notify every channel the routes pick for one warning; returns when all are done."""
        subject = subject_of(warning, segment)
        channels = [c for c in channels_for(self.config.routes, subject) if c in self.senders]
        if not channels:
            self.stats["unrouted"] += 1
            return
        results = await asyncio.gather(
            *(self._channel(warning, segment, c) for c in channels), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _channel(
        self, warning: Mapping[str, Any], segment: Mapping[str, Any], channel: str
    ) -> None:
        assert self._ledger is not None
        ledger = self._ledger
        wid, status, level = warning["warning_id"], warning["status"], warning["level"]
        customer = str(warning["customer_id"])
        key = idempotency_key(wid, status, level, channel)
        limit = self.config.rate_limit_for(channel)
        now = self._clock()
        record = await self._retrying(
            "read the notification records",
            lambda: ledger.lookup(
                key, wid, customer, channel, limit.window_seconds if limit else None, now
            ),
        )
        decision = decide(
            status=status,
            level=level,
            already_done=record.done,
            notified_level=record.notified_level,
            sent_at=record.sent_at,
            limit=limit,
            now=now,
        )
        if not decision.send:
            self.stats[str(decision.reason)] += 1
            if decision.reason == "rate_limited":
                total = await self._retrying(
                    "count a suppressed notification", lambda: ledger.count_suppressed(channel)
                )
                log.warning(
                    "rate limit on %s: suppressed %s for customer %s (%d max per %gs; "
                    "%d suppressed on this channel so far)",
                    channel,
                    key,
                    customer,
                    limit.max if limit else 0,
                    limit.window_seconds if limit else 0,
                    total,
                )
            else:
                log.debug("%s not sent on %s: %s", key, channel, decision.reason)
            return
        assert decision.kind is not None
        note = Notification(channel, decision.kind, dict(warning), dict(segment))
        lease = self.lease_seconds(channel)
        consumer, token = self.options.consumer, self.token
        outcome, found = await self._retrying(
            "reserve a notification", lambda: ledger.reserve(key, consumer, token, lease)
        )
        if outcome == "done":
            self.stats["already_done"] += 1
            log.debug("%s not sent on %s: already %s", key, channel, found)
            return
        if outcome == "busy":
            self.stats["in_flight"] += 1
            raise InFlight(f"{key} is being sent by {found}")
        if outcome == "taken-over":
            # Its holder died before recording the outcome: the channel may have it.
            self.stats["taken_over"] += 1
            log.warning(
                "%s on %s: taking over the reservation of a stopped notifier (%s); sending "
                "again with the same idempotency key",
                key,
                channel,
                found,
            )
        try:
            attempts, error = await self._send_with_retries(note)
        except Stopping:
            # Stopping between attempts: free it for whoever handles the entry next.
            with contextlib.suppress(Exception):
                await ledger.release(key, consumer, token)
            raise
        if error is None:
            await self._retrying(
                "record a sent notification",
                lambda: ledger.record_sent(
                    key, wid, customer, channel, status, level, self._clock()
                ),
            )
            self.stats[f"sent_{decision.kind}"] += 1
            log.info("sent %s on %s (%s) after %d attempt(s)", key, channel, note.kind, attempts)
            return
        await self._dead_letter(note, attempts, error)
        await self._retrying("record a dead letter", lambda: ledger.record_dead_lettered(key))

    def lease_seconds(self, channel: str) -> float:
        """How long a reservation on ``channel`` lasts: every attempt timing out, every
        pause between them, and a margin."""
        policy = self.config.retry_for(channel)
        timeout = self.config.channels[channel].timeout_seconds
        return policy.attempts * timeout + policy.total_wait() + self.options.lease_margin_seconds

    async def _send_with_retries(self, note: Notification) -> tuple[int, str | None]:
        """Attempts used and the last error (``None`` when the channel accepted it)."""
        policy = self.config.retry_for(note.channel)
        sender = self.senders[note.channel]
        attempts = 0
        while True:
            attempts += 1
            try:
                await sender.send(note)
                return attempts, None
            except DeliveryError as exc:
                error, permanent = str(exc), exc.permanent
            except Exception as exc:  # a sender bug must not stop the other channels
                error, permanent = f"{type(exc).__name__}: {exc}", False
            if permanent or attempts >= policy.attempts:
                log.warning(
                    "%s on %s failed %s after %d attempt(s): %s",
                    note.key,
                    note.channel,
                    "permanently" if permanent else "for good",
                    attempts,
                    error,
                )
                return attempts, error
            delay = policy.delay(attempts)
            log.info(
                "%s on %s: attempt %d failed (%s); next in %.2fs",
                note.key,
                note.channel,
                attempts,
                error,
                delay,
            )
            await self._pause(delay)

    async def _dead_letter(self, note: Notification, attempts: int, error: str) -> None:
        channel = self.config.channels[note.channel]
        record = {
            "warning": dict(note.warning),
            "channel": note.channel,
            "channel_type": channel.type,
            "kind": note.kind,
            "idempotency_key": note.key,
            "attempts": attempts,
            "last_error": error,
            "group": self.options.group,
            "failed_at": datetime.fromtimestamp(self._clock(), UTC).isoformat(),
        }
        backoff = Backoff(base=0.5, cap=self.options.max_backoff_seconds)
        while True:
            try:
                await self.dead_letters.send(str(note.warning["customer_id"]), record)
                break
            except Exception as exc:  # Kafka down: keep the entry pending and retry
                delay = backoff.next()
                if self._kafka_gate.allow(time.monotonic()):
                    skipped = self._kafka_gate.take_swallowed()
                    log.warning(
                        "cannot write the dead letter for %s to %s (%s); retry in %.1fs%s",
                        note.key,
                        self.dead_letters.topic,
                        exc,
                        delay,
                        f" ({skipped} more failures not logged)" if skipped else "",
                    )
                await self.dead_letters.close()
                # Still ours while Kafka is down: keep the lease from running out.
                with contextlib.suppress(*_transient_errors()):
                    assert self._ledger is not None
                    await self._ledger.extend(
                        note.key,
                        self.options.consumer,
                        self.token,
                        self.lease_seconds(note.channel),
                    )
                await self._pause(delay)
        self._kafka_gate.reset()
        self.stats["dead_lettered"] += 1
        log.warning("dead-lettered %s to %s", note.key, self.dead_letters.topic)
