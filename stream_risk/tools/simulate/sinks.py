"""Where simulated events go: Kafka (:func:`produce`) or a file (:func:`write_jsonl`),
optionally paced (a fixed rate, or event time replayed at a speed-up), with progress.
"""

from __future__ import annotations

import contextlib
import gzip
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeAlias

import kafka.errors
import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaTimeoutError

from stream_risk.kafka_security import KafkaSecurity
from stream_risk.tools.simulate.model import Event

_PROGRESS_EVERY_S = 2.0
#: How often a held-back sender asks again whether it may go on.
_HOLD_POLL_S = 0.1


# --- pacing and progress --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Progress:
    """A progress report of :func:`produce` or :func:`write_jsonl`.

    Attributes
    ----------
    sent : int
        Events sent (or written) so far.
    elapsed : float
        Wall-clock seconds since the first event.
    event_time : str or None
        ``occurred_at`` of the last event sent.
    final : bool
        Whether this is the last report (done, or interrupted).
    interrupted : bool
        Whether sending was interrupted (Ctrl-C).
    """

    sent: int
    elapsed: float
    event_time: str | None = None
    final: bool = False
    interrupted: bool = False

    @property
    def rate(self) -> float:
        """Events per wall-clock second so far."""
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


ProgressCallback: TypeAlias = Callable[[Progress], None]


def stderr_progress(progress: Progress) -> None:
    """Print a progress line on stderr (the default reporter of :func:`run`)."""
    if progress.interrupted:
        text = f"interrupted: {progress.sent:,} events sent and flushed"
    elif progress.final:
        text = f"done: {progress.sent:,} events"
    else:
        text = f"{progress.sent:,} events"
    text += f" in {progress.elapsed:.1f} s ({progress.rate:,.0f} ev/s)"
    if progress.event_time:
        text += f", event time {progress.event_time}"
    print(f"simulate: {text}", file=sys.stderr, flush=True)


class SimulationInterrupted(KeyboardInterrupt):
    """Ctrl-C while sending; what was sent before has been flushed.

    Parameters
    ----------
    sent : int
        How many events had been sent (and flushed) when interrupted.
    """

    def __init__(self, sent: int) -> None:
        super().__init__(f"interrupted after {sent} events")
        self.sent = sent


class DeliveryError(RuntimeError):
    """Kafka did not acknowledge some events."""


@dataclass(slots=True)
class _Deliveries:
    """Counts the broker's acknowledgements.

    On Ctrl-C the interrupt may land inside ``send`` after the record was queued, so
    counting sends could be off by one; after a flush, acknowledgements are exact.
    """

    acknowledged: int = 0
    failures: list[BaseException] = field(default_factory=list)

    def ok(self, _metadata: object) -> None:
        self.acknowledged += 1

    def failed(self, error: BaseException) -> None:
        self.failures.append(error)


class KafkaUnavailable(ConnectionError):
    """No Kafka broker answered at the bootstrap address."""


# How "nobody answers" surfaces: kafka-python 2.x raises NoBrokersAvailable, 3.x removed that
# class and times out bootstrapping instead.
_NO_BROKER_ERRORS: tuple[type[BaseException], ...] = tuple(
    error
    for error in (getattr(kafka.errors, "NoBrokersAvailable", None), KafkaTimeoutError)
    if error is not None
)


def check_pacing(rate: float | None, speed: float | None) -> None:
    if rate is not None and speed is not None:
        raise ValueError("give either rate or speed, not both")
    if rate is not None and not rate > 0:
        raise ValueError(f"rate must be > 0 events per second, got {rate}")
    if speed is not None and not speed > 0:
        raise ValueError(f"speed must be > 0 simulated seconds per second, got {speed}")


class _Pacer:
    """Holds events back to a wall-clock schedule and reports progress while doing so.

    While ``hold_back()`` is true (a reader that cannot keep up), sending waits, and the
    schedule resumes where it paused instead of making up for the wait in a burst.
    """

    def __init__(
        self,
        rate: float | None,
        speed: float | None,
        progress: ProgressCallback | None,
        hold_back: Callable[[], bool] | None = None,
    ) -> None:
        check_pacing(rate, speed)
        self.rate = rate
        self.speed = speed
        self.progress = progress
        self.hold_back = hold_back
        self.sent = 0
        self.event_time: str | None = None
        # The clock starts with the first event, not while connecting to the broker.
        self.started = self.last_report = 0.0
        self.first_event_time: datetime | None = None

    def wait(self, event: Mapping[str, Any]) -> None:
        """Sleep until ``event`` is due."""
        if not self.started:
            self.started = self.last_report = time.monotonic()
        if self.hold_back is not None and self.hold_back():
            held = time.monotonic()
            while self.hold_back():
                time.sleep(_HOLD_POLL_S)
                self.maybe_report()
            self.started += time.monotonic() - held
        if self.rate is not None:
            self._sleep_until(self.started + self.sent / self.rate)
        elif self.speed is not None:
            when = datetime.fromisoformat(event["occurred_at"])
            if self.first_event_time is None:
                self.first_event_time = when
            lag = (when - self.first_event_time).total_seconds() / self.speed
            self._sleep_until(self.started + lag)

    def _sleep_until(self, deadline: float) -> None:
        # Sleep in slices so that long quiet stretches of event time still report progress.
        while (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(remaining, 0.5))
            self.maybe_report()

    def sent_one(self, event: Mapping[str, Any]) -> None:
        self.sent += 1
        self.event_time = event.get("occurred_at")
        if self.sent % 256 == 0:  # checking the clock per event would cost more than sending
            self.maybe_report()

    def maybe_report(self) -> None:
        now = time.monotonic()
        if self.progress is not None and now - self.last_report >= _PROGRESS_EVERY_S:
            self.last_report = now
            self.progress(Progress(self.sent, now - self.started, self.event_time))

    def finish(self, interrupted: bool = False) -> None:
        if self.progress is not None:
            elapsed = time.monotonic() - self.started if self.started else 0.0
            self.progress(
                Progress(self.sent, elapsed, self.event_time, final=True, interrupted=interrupted)
            )


# --- sinks ----------------------------------------------------------------------------------------


def produce(
    events: Iterable[Event],
    bootstrap: str,
    topics: Mapping[str, str],
    rate: float | None = None,
    speed: float | None = None,
    progress: ProgressCallback | None = None,
    *,
    connect_timeout: float = 10.0,
    hold_back: Callable[[], bool] | None = None,
) -> int:
    """Send events to Kafka, one topic per event type.

    Each message has key ``customer_id`` (UTF-8), so a customer's events stay in
    order on one partition, and value the compact JSON of the event.

    Parameters
    ----------
    events : iterable of dict
        Contract events, e.g. from :func:`generate`.
    bootstrap : str
        Kafka bootstrap servers, comma separated.
    topics : mapping of str to str
        Event type -> topic, e.g. ``Settings().input_topics()``.
    rate : float, optional
        Send at this many events per second.
    speed : float, optional
        Replay event time at this many simulated seconds per wall-clock second
        (86400: one simulated day per second). At most one of ``rate`` and ``speed``;
        with neither, send as fast as possible.
    progress : callable, optional
        Called with a :class:`Progress` about every 2 s and once at the end
        (:func:`stderr_progress` prints it).
    connect_timeout : float
        Seconds to wait for the broker before giving up.
    hold_back : callable, optional
        Asked before each event; while it returns True nothing is sent, and the
        pacing schedule is shifted by the wait (the demo holds back while its
        worker's lag is too large).

    Returns
    -------
    int
        The number of events sent, all of them acknowledged by the broker.

    Raises
    ------
    KafkaUnavailable
        If no broker answers at ``bootstrap`` within ``connect_timeout``.
    ValueError
        If pacing is invalid or an event type has no topic.
    DeliveryError
        If the broker rejected some events.
    SimulationInterrupted
        On Ctrl-C, after flushing what was sent; ``.sent`` says how many the broker
        acknowledged.
    """
    pacer = _Pacer(rate, speed, progress, hold_back)
    servers = [s.strip() for s in bootstrap.split(",") if s.strip()]
    try:
        producer = KafkaProducer(
            bootstrap_servers=servers,
            client_id="stream-risk-simulator",
            linger_ms=20,  # batch a little: throughput matters more than latency here
            bootstrap_timeout_ms=int(connect_timeout * 1000),
            **KafkaSecurity.from_environment().kafka_python(),
        )
    except _NO_BROKER_ERRORS as exc:
        raise KafkaUnavailable(f"no Kafka broker answered at {bootstrap}") from exc
    deliveries = _Deliveries()
    try:
        try:
            for event in events:
                topic = topics.get(event["type"])
                if topic is None:
                    raise ValueError(f"no topic configured for event type {event['type']!r}")
                pacer.wait(event)
                future = producer.send(
                    topic,
                    key=str(event["customer_id"]).encode("utf-8"),
                    value=orjson.dumps(event),
                )
                future.add_callback(deliveries.ok)
                future.add_errback(deliveries.failed)
                pacer.sent_one(event)
        except KeyboardInterrupt:
            producer.flush()
            pacer.sent = deliveries.acknowledged
            pacer.finish(interrupted=True)
            raise SimulationInterrupted(deliveries.acknowledged) from None
        producer.flush()
    finally:
        producer.close(timeout=5)
    if deliveries.failures:
        raise DeliveryError(
            f"{len(deliveries.failures)} of {pacer.sent} events were not delivered; "
            f"first error: {deliveries.failures[0]}"
        )
    pacer.finish()
    return pacer.sent


def write_jsonl(
    events: Iterable[Event],
    out: str | Path,
    rate: float | None = None,
    speed: float | None = None,
    progress: ProgressCallback | None = None,
) -> int:
    """Write events as JSON lines.

    Parameters
    ----------
    events : iterable of dict
        Contract events, e.g. from :func:`generate`.
    out : str or Path
        A ``.jsonl`` file, a ``.jsonl.gz`` file (gzip), or ``-`` for stdout.
    rate, speed : float, optional
        Pacing as in :func:`produce` (useful when piping stdout into another tool).
    progress : callable, optional
        As in :func:`produce`.

    Returns
    -------
    int
        The number of events written.

    Raises
    ------
    SimulationInterrupted
        On Ctrl-C, after flushing what was written; ``.sent`` says how many.
    """
    pacer = _Pacer(rate, speed, progress)
    with contextlib.ExitStack() as closing:
        sink: IO[bytes] | gzip.GzipFile
        if str(out) == "-":
            sink = sys.stdout.buffer
        elif str(out).endswith(".gz"):
            sink = closing.enter_context(gzip.open(out, "wb", compresslevel=6))
        else:
            sink = closing.enter_context(open(out, "wb"))
        try:
            for event in events:
                pacer.wait(event)
                sink.write(orjson.dumps(event) + b"\n")
                if pacer.rate is not None or pacer.speed is not None:
                    sink.flush()  # paced output is meant to be read as it comes
                pacer.sent_one(event)
        except KeyboardInterrupt:
            sink.flush()
            pacer.finish(interrupted=True)
            raise SimulationInterrupted(pacer.sent) from None
        sink.flush()
    pacer.finish()
    return pacer.sent
