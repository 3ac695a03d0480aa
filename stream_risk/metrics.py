"""Prometheus metrics of a worker: what came in, what went out, how far behind it is.

Counts the monitor already keeps (events by type, dead letters, warnings by
level and status) are read when Prometheus scrapes, so the per-event path pays
nothing for them. The worker adds what only it can see: per-message latency,
the time a batch takes, and its read positions (for the consumer lag).

Every :class:`WorkerMetrics` has a registry of its own, so two in one process
(tests) do not collide.

>>> m = WorkerMetrics()
>>> m.watch_counts({"events.order": 3, "dead_letters": 1, "warnings.high.firing": 2})
>>> text = m.render().decode()
>>> 'stream_risk_events_total{type="order"} 3.0' in text
True
>>> 'stream_risk_warnings_total{level="high",status="firing"} 2.0' in text
True
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

#: The content type of :meth:`WorkerMetrics.render`.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Seconds from a message's Kafka timestamp until the batch that applied it was sent.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Seconds a probe's wake-up came late: anything long blocked the event loop.
LOOP_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: (topic, partition) -> the next offset this worker will read.
Positions = dict[tuple[str, int], int]


class ReadMessage(Protocol):
    """What the metrics read of a consumed Kafka message (a Faust ``Message`` has it)."""

    topic: str
    partition: int
    offset: int
    #: Kafka timestamp, epoch seconds.
    timestamp: float | None


class _MonitorCounts(Collector):
    """Exports the monitor's running counts (a ``Counter`` of ``kind -> n``) at scrape time."""

    def __init__(self, counts: Mapping[str, int]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "stream_risk_events",
            "Input events applied by the monitor (duplicates included), by event type",
            labels=["type"],
        )
        warnings = CounterMetricFamily(
            "stream_risk_warnings",
            "Warnings the monitor raised, by level and status (firing or resolved)",
            labels=["level", "status"],
        )
        singles = {
            "dead_letters": CounterMetricFamily(
                "stream_risk_dead_letters",
                "Input messages sent to the dead-letter topic",
            ),
            "duplicates": CounterMetricFamily(
                "stream_risk_duplicate_events",
                "Events whose event_id had already been applied",
            ),
            "redelivered": CounterMetricFamily(
                "stream_risk_redelivered_messages",
                "Messages read again after a restart or rebalance and skipped by offset",
            ),
        }
        found = dict.fromkeys(singles, 0)
        for kind, n in list(self.counts.items()):
            head, _, rest = kind.partition(".")
            if head == "events" and rest:
                events.add_metric([rest], n)
            elif head == "warnings" and rest.count(".") == 1:
                level, status = rest.split(".")
                warnings.add_metric([level, status], n)
            elif kind in found:
                found[kind] = n
        yield events
        yield warnings
        for kind, family in singles.items():
            family.add_metric([], found[kind])
            yield family


class _ConsumerLag(Collector):
    """Messages behind the end of each assigned partition this worker has read from."""

    def __init__(
        self,
        positions: Positions,
        assignment: Callable[[], Iterable[tuple[str, int]]],
        highwater: Callable[[str, int], int | None],
    ) -> None:
        self.positions = positions
        self.assignment = assignment
        self.highwater = highwater

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "stream_risk_consumer_lag",
            "Messages in the partition after the last one this worker processed",
            labels=["topic", "partition"],
        )
        try:
            assigned = sorted(self.assignment())
        except Exception:  # the consumer is not started or is rebalancing: no sample
            log.debug("consumer lag: no assignment", exc_info=True)
            assigned = []
        for topic, partition in assigned:
            position = self.positions.get((topic, partition))
            if position is None:
                continue
            try:
                end = self.highwater(topic, partition)
            except Exception:
                log.debug("consumer lag: no highwater for %s/%d", topic, partition, exc_info=True)
                continue
            if end is not None:
                lag.add_metric([topic, str(partition)], max(0, end - position))
        yield lag


class _SinkWrites(Collector):
    """What the Redis publisher has written (read from the sink's counters)."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink

    def collect(self) -> Iterator[Metric]:
        written = CounterMetricFamily(
            "stream_risk_redis_writes",
            "Warnings and profiles the publisher wrote to Redis",
            labels=["kind"],
        )
        written.add_metric(["warning"], self.sink.written_warnings)
        written.add_metric(["profile"], self.sink.written_profiles)
        yield written
        errors = CounterMetricFamily(
            "stream_risk_redis_write_errors",
            "Redis writes of the publisher that failed (each batch is retried until written)",
        )
        errors.add_metric([], getattr(self.sink, "write_errors", 0))
        yield errors


class WorkerMetrics:
    """The metrics one worker exposes on ``GET /metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        #: (topic, partition) -> next offset to read, kept by the agents for the lag.
        self.positions: Positions = {}
        self.latency = Histogram(
            "stream_risk_event_latency_seconds",
            "Seconds from a message's Kafka timestamp until the monitor handed its outputs "
            "to the producer",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "stream_risk_batch_seconds",
            "Seconds the monitor took to apply one batch and hand its outputs to the producer",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.http_requests = Counter(
            "stream_risk_http_requests",
            "HTTP requests answered by the worker's API, by route and status code",
            ["route", "status"],
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "stream_risk_event_loop_lag_seconds",
            "Seconds the worker's event loop woke a periodic probe later than asked: "
            "how long something blocked it",
            buckets=LOOP_LAG_BUCKETS,
            registry=self.registry,
        )
        self.collection_actions = Counter(
            "stream_risk_collection_actions",
            "Collection events the API produced, by action",
            ["action"],
            registry=self.registry,
        )

    def watch_counts(self, counts: Mapping[str, int]) -> None:
        """Export the monitor's counts (``events.<type>``, ``dead_letters``, ...)."""
        self.registry.register(_MonitorCounts(counts))

    def watch_lag(
        self,
        assignment: Callable[[], Iterable[tuple[str, int]]],
        highwater: Callable[[str, int], int | None],
    ) -> None:
        """Export the consumer lag: ``highwater(topic, partition)`` minus the read position."""
        self.registry.register(_ConsumerLag(self.positions, assignment, highwater))

    def watch_sink(self, sink: Any) -> None:
        """Export the Redis sink's counters (``written_warnings``, ``written_profiles``,
        ``write_errors``)."""
        self.registry.register(_SinkWrites(sink))

    def mark_read(self, messages: Iterable[ReadMessage]) -> None:
        """Record the read position after ``messages`` (for the consumer lag)."""
        positions = self.positions
        for m in messages:
            positions[(m.topic, m.partition)] = m.offset + 1

    def observe_batch(self, messages: Sequence[ReadMessage], seconds: float, now: float) -> None:
        """One applied batch: its messages, how long it took, and the wall clock after it.

        >>> from types import SimpleNamespace as Msg
        >>> m = WorkerMetrics()
        >>> m.observe_batch([Msg(topic="t", partition=0, offset=7, timestamp=99.5)], 0.01, 100.0)
        >>> sums = [s.value for s in m.latency.collect()[0].samples if s.name.endswith("_sum")]
        >>> m.positions, sums
        ({('t', 0): 8}, [0.5])
        """
        self.batch_seconds.observe(seconds)
        observe = self.latency.observe
        for m in messages:
            if m.timestamp is not None:
                observe(max(0.0, now - m.timestamp))
        self.mark_read(messages)

    async def probe_loop_lag(
        self,
        interval: float = 0.25,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rounds: int | None = None,
    ) -> None:
        """Sleep ``interval`` over and over; record how late each wake-up is.

        >>> import asyncio
        >>> ticks = iter([0.0, 0.25, 0.25, 0.75])  # second sleep woke 0.25 s late
        >>> m = WorkerMetrics()
        >>> async def nap(_: float) -> None: ...
        >>> asyncio.run(m.probe_loop_lag(0.25, nap, lambda: next(ticks), rounds=2))
        >>> [s.value for s in m.loop_lag.collect()[0].samples if s.name.endswith("_sum")]
        [0.25]
        """
        n = 0
        while rounds is None or n < rounds:
            n += 1
            started = clock()
            await sleep(interval)
            self.loop_lag.observe(max(0.0, clock() - started - interval))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
