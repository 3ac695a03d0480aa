"""Wire the Faust app: topics, the changelog-backed state table and the agents."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import faust
import orjson
from kafka.partitioner.default import murmur2

from stream_risk.agents.alignment import Aligner, CaughtUp, event_time, lag_seen
from stream_risk.agents.intake import Deliver, can_drain_in_batches, drain_in_batches
from stream_risk.agents.model_feed import CompactedFeed, model_loader
from stream_risk.agents.monitor import Limits, Message, MonitorDriver
from stream_risk.agents.offsets import read_from_earliest
from stream_risk.agents.rules_feed import count_rejected, rules_loader
from stream_risk.agents.state_store import (
    ROCKSDB_OPTIONS,
    CustomerStates,
    StateTable,
    store_url,
)
from stream_risk.agents.topology import MonitorPublisher, Sender, declare_topics, stop_worker
from stream_risk.api.server import ApiServer
from stream_risk.api.service import serve_api
from stream_risk.config import Settings
from stream_risk.core import Context
from stream_risk.core.detectors import import_river
from stream_risk.core.trainer import Trainer
from stream_risk.kafka_security import KafkaSecurity
from stream_risk.message_auth import sign_headers
from stream_risk.metrics import WorkerMetrics
from stream_risk.runtime import tune_garbage_collection
from stream_risk.sinks.redis import RedisSink

log = logging.getLogger(__name__)

Item = TypeVar("Item")

#: Largest batch the monitor applies at once, and how long it waits to fill one. Faust's
#: take waits the whole window even when records are there, so every stage between
#: produce and Redis adds half a window on average: kept short (under a backlog, records
#: queue up while a batch is applied and the next one is larger).
MONITOR_BATCH = 1000
MONITOR_WITHIN = 0.01
PUBLISH_BATCH = 500
PUBLISH_WITHIN = 0.01
#: Seconds of events the monitor applies before it publishes them and lets the event
#: loop run (heartbeats, fetches, the API): a batch of 1000 costs far more.
MONITOR_SLICE = 0.05
#: Records one input partition may hold back for alignment before it is paused.
ALIGN_BUFFERED = 5000
#: How often held-back groups are re-examined when no new record arrives. A record
#: waits for the next fetch answer of its group's empty inputs (a few ms under load);
#: without the tick it would then wait for the monitor's next batch (a whole window).
ALIGN_TICK = 0.005
#: How long the monitor waits at start for the latest model snapshot.
MODEL_WAIT = 30.0
#: The one key of the compacted models topic.
MODEL_KEY = b"risk-model"


def _learn(trainer: Trainer, raw: bytes) -> dict[str, Any] | None:
    """Learn one encoded training example; a malformed one is logged and skipped."""
    try:
        return trainer.learn_one(orjson.loads(raw))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        log.error("skipping a malformed training example: %s", exc)
        return None


class StartGate:
    """What must hold before the monitor applies a batch.

    - the rule set is the published one (never evaluate with an older one);
    - once, at start: the latest model is read, or ``model_wait`` seconds passed
      (then the scorecard scores until a snapshot arrives);
    - after every rebalance: the timers of the stored states are rebuilt.

    ``started`` runs once, when the first batch passes: the worker is set up.
    """

    def __init__(
        self,
        *,
        rules_ready: asyncio.Event,
        model_ready: asyncio.Event,
        model_wait: float,
        rebuild_timers: Callable[[], Awaitable[None]],
        started: Callable[[], None] | None = None,
    ) -> None:
        self.rules_ready = rules_ready
        self.model_ready = model_ready
        self.model_wait = model_wait
        self.rebuild_timers = rebuild_timers
        self.started = started
        self.model_waited = False
        self.rebuild_needed = True

    def rebalanced(self) -> None:
        """Partitions moved: the timers are rebuilt before the next batch."""
        self.rebuild_needed = True

    async def pass_through(self) -> None:
        """Return once a batch may be applied."""
        if not self.rules_ready.is_set():
            await self.rules_ready.wait()
        if not self.model_waited:
            self.model_waited = True
            try:
                await asyncio.wait_for(self.model_ready.wait(), self.model_wait)
            except TimeoutError:
                log.warning("no risk model snapshot read yet; scoring with the scorecard")
        if self.rebuild_needed:
            self.rebuild_needed = False
            await self.rebuild_timers()
        if self.started is not None:
            started, self.started = self.started, None
            started()


class TrainerRole:
    """The single trainer: learns every training example in order, publishes snapshots.

    The training topic has one partition, so one worker learns (single writer)
    and its snapshots form one compacted log every worker follows. The reservoir
    lives in memory: a worker that takes the partition over re-learns the
    retained examples before the first new one (learning is deterministic).
    """

    def __init__(self, *, settings: Settings, security: KafkaSecurity, sender: Sender) -> None:
        self.settings = settings
        self.security = security
        self.sender = sender
        self.trainer: Trainer | None = None

    def forget(self) -> None:
        """Partitions moved: whoever owns the examples now re-learns them."""
        self.trainer = None

    async def learn(self, *, first_offset: int, values: Iterable[bytes | None]) -> None:
        """Learn one batch of examples starting at ``first_offset``; publish the new model."""
        trainer = self.trainer
        if trainer is None:
            trainer = self.trainer = await self.recover(upto=first_offset)
        snapshot = None
        for value in values:
            if value is not None:
                snapshot = _learn(trainer, value) or snapshot
        if snapshot is not None:
            await self.publish(snapshot)

    async def publish(self, snapshot: dict[str, Any]) -> None:
        """Send a signed model snapshot to the compacted models topic."""
        value = orjson.dumps(snapshot)
        await self.sender.send(
            topic=self.settings.topic("models"),
            key=MODEL_KEY,
            value=value,
            partition=0,
            headers=sign_headers(self.settings.signing_secret, MODEL_KEY, value),
        )
        log.info(
            "risk model version %d published (%d outcomes)",
            snapshot["version"],
            snapshot["outcomes"],
        )

    async def recover(self, *, upto: int) -> Trainer:
        """A trainer that learned every retained example before offset ``upto``."""
        settings = self.settings
        trainer = Trainer(refit_every=settings.model_refit_every)
        if upto <= 0:
            return trainer
        from aiokafka import AIOKafkaConsumer, TopicPartition

        tp = TopicPartition(settings.topic("training-examples"), 0)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, **self.security.aiokafka()
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            while await consumer.position(tp) < upto:
                for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    if record.offset < upto and record.value is not None:
                        _learn(trainer, record.value)
        finally:
            await consumer.stop()
        log.info("trainer recovered %d examples (model version %d)", upto, trainer.version)
        return trainer


@dataclass
class Topology:
    """The running pieces, exposed for the CLI and for tests."""

    settings: Settings
    app: faust.App
    driver: MonitorDriver
    sink: RedisSink | None
    metrics: WorkerMetrics
    api: ApiServer | None
    topics: dict[str, Any] = field(default_factory=dict)


class WorkerApp(faust.App):  # type: ignore[misc]
    """A Faust app whose input records reach the monitor in fetched batches, and that
    lets the worker give up held-back records before a rebalance.

    Topics given to :meth:`route` are handed on by the consumer's fetch loop a fetched
    batch at a time (:mod:`stream_risk.agents.intake`); each still has an agent, whose
    stream subscribes it with acknowledgements on. Faust waits, before it commits on
    revocation and when it stops, until every tracked message is acknowledged; records
    the alignment still holds back are never applied by this owner, so they are
    released unacknowledged first (their offsets stay uncommitted and the next owner
    reads them again).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.before_revoke: list[Callable[[set[Any]], None]] = []
        self.routes: dict[str, Deliver] = {}

    def route(self, topics: Iterable[str], deliver: Deliver) -> None:
        """Hand the records of ``topics`` to ``deliver`` in fetched batches (before start)."""
        self.routes.update(dict.fromkeys(topics, deliver))

    def _new_consumer(self) -> Any:
        consumer: Any = super()._new_consumer()
        # Partitions without a committed offset are read from the earliest one.
        read_from_earliest(consumer)
        if not can_drain_in_batches(consumer):
            log.warning(
                "this Faust version's consumer lacks what the batch intake uses: "
                "records go through Faust's streams"
            )
            return consumer
        routes = self.routes  # read as records come: routes may be added after this

        async def drain(fetcher: Any) -> None:
            await drain_in_batches(consumer, fetcher, routes, MONITOR_BATCH)

        consumer._drain_messages = drain
        return consumer

    async def _on_partitions_revoked(self, revoked: set[Any]) -> None:
        for hook in self.before_revoke:
            hook(revoked)
        await super()._on_partitions_revoked(revoked)

    async def _stop_consumer(self) -> None:
        # Stopping waits for unacknowledged messages as a revocation does: without
        # giving up the held records first, a stopping worker spun until killed.
        for hook in self.before_revoke:
            hook(set())
        await super()._stop_consumer()


def within(
    items: Sequence[Item],
    seconds: float,
    handed: list[int],
    clock: Callable[[], float] = time.perf_counter,
) -> Iterator[Item]:
    """``items`` in order until ``seconds`` have passed since the first (which always goes);
    ``handed[0]`` counts those handed out.

    >>> ticks = iter([0.0, 0.02, 0.06, 0.07])
    >>> handed = [0]
    >>> list(within("abcd", 0.05, handed, lambda: next(ticks))), handed
    (['a', 'b'], [2])
    """
    started = clock()
    for item in items:
        if handed[0] and clock() - started >= seconds:
            return
        handed[0] += 1
        yield item


def partition_for(customer_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a customer id key."""
    return int(murmur2(customer_id.encode()) & 0x7FFFFFFF) % partitions


class AlignedInput:
    """Event-time alignment in front of the monitor.

    It takes the input topics' records (Faust messages) as fetched. Each partition
    number's records wait until they are the earliest of their group; held records
    stay unacknowledged, so no offset is committed past one not yet applied. A
    partition far ahead of its group is paused until the others catch up. ``apply``
    applies one released batch; if it raises, the infrastructure failed (bad events
    are dead letters, never exceptions), and ``stop`` ends the worker before any
    offset of the batch is committed. Applied records are acknowledged to the
    consumer, whose commits count acknowledgements.
    """

    def __init__(
        self,
        *,
        app: Any,
        aligner: Aligner[Any],
        apply: Callable[[list[Any]], Awaitable[None]],
        stop: Callable[[], None] = stop_worker,
        limits: Limits | None = None,
    ) -> None:
        self.app = app
        self.aligner = aligner
        self.apply = apply
        self.stop = stop
        #: The monitor's clock checks: an event they reject holds no partition back.
        self.limits = limits
        self.paused: set[Any] = set()
        #: Held while a batch is applied: nothing else changes the engine's state meanwhile.
        self.applying = asyncio.Lock()
        self.last_apply = 0.0
        #: Between a revocation and the next assignment: every record is given up.
        self.revoked = False

    async def add(self, messages: list[Any]) -> None:
        """Hold one fetched batch for alignment, then apply what it releases."""
        arrived = time.time()
        generation = self.app.consumer_generation_id
        # Per input partition: when the fetch that brought its records was answered.
        fetched: dict[tuple[str, int], float] = {}
        for message in messages:
            if message.generation_id != generation or self.revoked:
                # Fetched before a rebalance: whoever owns the partition now reads
                # it again from the last commit; never acknowledged here. Until the
                # new generation starts, that holds for every record: applied after
                # the held ones given up, it would make them look already applied.
                message.acked = True
                continue
            when = event_time(message.value)
            limits = self.limits
            if when is not None and limits and limits.too_early(when, message.timestamp, arrived):
                # A dead letter to be (an event stamped 2099): sorted by its time it
                # would hold the rest of its partition back while the others move on,
                # and their later events would arrive late. It keeps its place.
                when = None
            source = (message.topic, message.partition)
            answered = fetched.get(source)
            if answered is None:
                answered = fetched[source] = self.last_answer(*source) or arrived
            self.aligner.add(
                message.topic,
                message.partition,
                message.offset,
                when,
                message,
                answered,
            )
        for topic_name, partition in self.aligner.over_limit():
            tp = faust.types.TP(topic_name, partition)
            if tp not in self.paused:
                self.paused.add(tp)
                self.app.consumer.pause_partitions([tp])
        await self.apply_released()

    async def take(self, messages: list[Any]) -> None:
        """:meth:`add` a fetched batch, then apply what is released until what stays
        held is under one batch: the fetch loop reads on only then (backpressure)."""
        await self.add(messages)
        while self.aligner.buffered() > MONITOR_BATCH:
            # Sends need not suspend: the loop runs (heartbeats, commits, the API) here.
            await asyncio.sleep(0)
            if not await self.apply_released():
                break

    async def tick(self) -> None:
        """Move on groups waiting on an input with nothing fetched, without new records."""
        if time.monotonic() - self.last_apply >= ALIGN_TICK and self.aligner.buffered():
            await self.apply_released()

    async def apply_released(self) -> int:
        """Apply one bounded batch of released records; resume partitions back under limit.
        Returns how many it applied."""
        async with self.applying:
            self.last_apply = time.monotonic()
            # Bounded batches: a group released after a long wait never stalls the loop.
            messages = self.aligner.release(self.last_apply, self.caught_up(), limit=MONITOR_BATCH)
            if messages:
                try:
                    await self.apply(messages)
                except Exception:
                    log.critical(
                        "the monitor failed on a batch; stopping the worker so that its "
                        "offsets are not committed",
                        exc_info=True,
                    )
                    self.stop()
                    return 0
                ack = self.app.consumer.ack
                for message in messages:
                    ack(message)
            under = [tp for tp in self.paused if self.aligner.under_limit(tp.topic, tp.partition)]
            for tp in under:
                self.paused.discard(tp)
                self.app.consumer.resume_partitions([tp])
                # Faust gives up, unseen, the records of a fetch it was handing on when
                # the partition was paused, and the fetch position has gone past them:
                # read on from the first one not held here, or they would wait for the
                # next record to come (the worker's seek back to a missed offset).
                start = self.aligner.next_offset(tp.topic, tp.partition)
                if start is not None:
                    await self.app.consumer.seek(tp, start)
            return len(messages)

    def caught_up(self) -> CaughtUp:
        """Whether an input partition has nothing more to fetch (``None``: not known),
        for one release: each input's end offset and last fetch answer are read once,
        though the release asks again for every record it hands on."""
        consumer: Any = self.app.consumer
        positions: dict[tuple[str, int], tuple[int | None, float | None] | None] = {}

        def caught_up(
            topic_name: str, partition: int, next_offset: int | None, since: float
        ) -> bool | None:
            key = (topic_name, partition)
            if key not in positions:
                positions[key] = self._position(topic_name, partition)
            position = positions[key]
            if position is None:
                return None
            end, answered = position
            if next_offset is None:
                # Nothing fetched yet: where reading starts is the committed offset.
                committed: dict[Any, int | None] = getattr(consumer, "_committed_offset", {})
                next_offset = committed.get(faust.types.TP(topic_name, partition)) or 0
            return lag_seen(end, answered, next_offset, since)

        return caught_up

    def _position(self, topic_name: str, partition: int) -> tuple[int | None, float | None] | None:
        """An input partition's end offset and last fetch answer (None: not assigned)."""
        try:
            end = self.app.consumer.highwater(faust.types.TP(topic_name, partition))
        except Exception:  # not assigned (any more): not known
            return None
        return end, self.last_answer(topic_name, partition)

    def last_answer(self, topic_name: str, partition: int) -> float | None:
        """Wall-clock time of the last fetch answer for an input partition (None: none)."""
        try:
            polled = self.app.consumer._thread._ensure_consumer().last_poll_timestamp(
                faust.types.TP(topic_name, partition)
            )
        except Exception:  # not assigned (any more), or no fetch yet
            return None
        return None if polled is None else float(polled) / 1000.0

    def abandon_held(self, revoked: set[Any]) -> None:
        """Give up every held record before a rebalance (Faust's revoke hook)."""
        # A flag, not the generation number: the consumer may already carry the new
        # generation when this hook runs, and its records must not be given up.
        self.revoked = True
        for message in self.aligner.clear():
            # Marked done without an ack: the offset is never committed by this
            # owner, and Faust's wait for unacknowledged messages ends.
            message.acked = True
        self.paused.clear()

    def reassigned(self) -> None:
        """Take records again: the new assignment is in force (Faust's assign signal)."""
        self.revoked = False


def worker_app(settings: Settings, security: KafkaSecurity) -> WorkerApp:
    """The Faust app of the worker, with its delivery guarantees."""
    return WorkerApp(
        settings.app_id,
        broker=[f"kafka://{host}" for host in settings.kafka_bootstrap.split(",")],
        store=store_url(settings.store),
        datadir=str(settings.data_dir),
        table_standby_replicas=settings.standby_replicas,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        # Gates the API service (app.web_server), which binds its own host and port.
        web_enabled=settings.web_enabled,
        # Changelog and produce sends are flushed before every commit: at-least-once.
        processing_guarantee="at_least_once",
        broker_commit_every=settings.commit_every,
        broker_commit_interval=settings.commit_interval,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=4096,
        table_cleanup_interval=3600.0,
        **security.faust(),
        # The driver keeps every record it sends below this (dead letters included).
        producer_max_request_size=settings.max_message_bytes,
        # A killed worker's partitions move within seconds, not Faust's default minute.
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        consumer_group_instance_id=settings.group_instance_id,
    )


def build(settings: Settings) -> Topology:
    """Create the Faust app for ``settings`` with all topics, tables and agents."""
    security = KafkaSecurity.from_settings(settings)
    app = worker_app(settings, security)
    partitions = settings.partitions
    input_topics = settings.input_topics()
    topics = declare_topics(app, settings)
    persistent = settings.store == "rocksdb"
    table = app.tables.add(
        StateTable(
            app,
            name="customer-state",
            default=None,
            beacon=app.tables.beacon,
            partitions=partitions,
            # bytes in, bytes out: Faust picks the raw codec; the state codec is ours.
            key_type=bytes,
            value_type=bytes,
            options=dict(ROCKSDB_OPTIONS) if persistent else None,
        )
    )
    states = CustomerStates(table, persistent=persistent)

    def load(customer_id: str) -> bytes | None:
        return states.get(customer_id.encode())

    ctx = Context.from_settings(settings)
    # Before the first batch, whose event loop it would block for a second or more.
    import_river()
    behaviour_file = settings.data_dir / "segment-behaviour.json"
    if ctx.population is not None and ctx.population.load(behaviour_file):
        log.info("segment behaviour detector restored from %s", behaviour_file)
    driver = MonitorDriver(
        ctx, {t: k for k, t in input_topics.items()}, load, limits=Limits.from_settings(settings)
    )
    metrics = WorkerMetrics()
    metrics.watch_counts(driver.counts)
    metrics.watch_lag(
        lambda: app.consumer.assignment(),
        lambda t, p: app.consumer.highwater(faust.types.TP(t, p)),
    )
    sender = Sender(app)

    # Every worker follows the compacted models and rules topics; a valid rules
    # message replaces the whole rule set between two batches, a bad one is ignored.
    model_feed = CompactedFeed(
        settings.kafka_bootstrap,
        settings.topic("models"),
        model_loader(ctx.scorer.prepare),
        security=security,
        secret=settings.signing_secret,
    )
    rules_feed = CompactedFeed(
        settings.kafka_bootstrap,
        settings.topic("rules"),
        rules_loader(ctx, driver.counts),
        security=security,
        secret=settings.signing_secret,
        on_reject=count_rejected(driver.counts),
    )
    log.info("rule set %s active (until one is read from the rules topic)", ctx.rules.version)

    async def rebuild_timers() -> None:
        driver.forget()
        # Reading every stored state (from disk, with RocksDB) takes a while for many
        # customers: off the loop. No batch is applied meanwhile (the gate holds them).
        stored = ((k.decode(), v) for k, v in states.items())
        started = time.perf_counter()
        await asyncio.to_thread(
            driver.rebuild_timers, stored, lambda cid: partition_for(cid, partitions)
        )
        log.info(
            "timers rebuilt from the stored states in %.2fs",
            time.perf_counter() - started,
        )

    gate = StartGate(
        rules_ready=rules_feed.caught_up,
        model_ready=model_feed.caught_up,
        model_wait=MODEL_WAIT,
        rebuild_timers=rebuild_timers,
        started=tune_garbage_collection,
    )
    trainer = TrainerRole(settings=settings, security=security, sender=sender)
    publisher_of_batches = MonitorPublisher(sender, settings, states)

    async def apply_batch(messages: list[Any]) -> None:
        await gate.pass_through()
        while messages:
            # In slices of at most MONITOR_SLICE seconds, each published before the
            # next: a large batch under a backlog must not block the loop throughout.
            started = time.perf_counter()
            handed = [0]
            result = driver.process(
                Message(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)
                for m in within(messages, MONITOR_SLICE, handed)
            )
            await publisher_of_batches.publish(result)
            done, messages = messages[: handed[0]], messages[handed[0] :]
            metrics.observe_batch(done, time.perf_counter() - started, time.time())

    aligned = AlignedInput(
        app=app,
        aligner=Aligner(
            list(input_topics.values()),
            max_idle=settings.alignment_max_idle,
            max_behind=settings.alignment_max_behind,
            max_buffered=ALIGN_BUFFERED,
        ),
        apply=apply_batch,
        limits=driver.limits,
    )
    app.before_revoke.append(aligned.abandon_held)
    app.route(input_topics.values(), aligned.take)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def _assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        aligned.reassigned()
        gate.rebalanced()
        trainer.forget()

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        gate.rebalanced()
        input_names = set(input_topics.values())
        states.revoked(tp.partition for tp in revoked if tp.topic in input_names)

    @app.task  # type: ignore[untyped-decorator]
    async def _follow_models() -> None:
        await model_feed.run()

    @app.task  # type: ignore[untyped-decorator]
    async def _follow_rules() -> None:
        await rules_feed.run()

    @app.agent(topics["inputs"], name="monitor")
    async def monitor(stream: Any) -> None:
        # Routed past Faust's streams, input records never come this way: this stream
        # only subscribes the input topics, with acknowledgements on (what commits count).
        async for events in stream.take_events(MONITOR_BATCH, within=MONITOR_WITHIN):
            messages = [event.message for event in events]
            for message in messages:
                message.incref()  # acknowledged once applied, not as the stream moves on
            await aligned.add(messages)

    @app.timer(ALIGN_TICK)  # type: ignore[untyped-decorator]
    async def _align_idle() -> None:
        await aligned.tick()

    @app.agent(topics["training-examples"], name="trainer")
    async def train(stream: Any) -> None:
        async for events in stream.take_events(500, within=1.0):
            await trainer.learn(
                first_offset=events[0].message.offset,
                values=(event.message.value for event in events),
            )

    @app.timer(60.0)  # type: ignore[untyped-decorator]
    async def _snapshot_behaviour() -> None:
        population = ctx.population
        if population is not None and population.forests:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            # Off the event loop (heartbeats and commits go on); no batch changes the
            # detector meanwhile.
            async with aligned.applying:
                await asyncio.to_thread(population.save, behaviour_file)

    sink: RedisSink | None = None
    if settings.redis_enabled:
        sink = RedisSink(settings.redis_url, prefix=settings.redis_prefix)
        _deliver_to_redis(app, settings=settings, sink=sink, metrics=metrics)

    api: ApiServer | None = None
    if settings.web_enabled:
        api = serve_api(app, settings=settings, metrics=metrics, watermarks=driver.watermarks)

    @app.task  # type: ignore[untyped-decorator]
    async def _probe_loop() -> None:
        await metrics.probe_loop_lag()

    @app.timer(30.0)  # type: ignore[untyped-decorator]
    async def _report() -> None:
        if driver.counts:
            log.info(
                "monitor counts (rule set %s): %s",
                ctx.rules.version,
                dict(sorted(driver.counts.items())),
            )

    return Topology(
        settings=settings,
        app=app,
        driver=driver,
        sink=sink,
        metrics=metrics,
        api=api,
        topics={**topics, "states": table},
    )


def _deliver_to_redis(
    app: WorkerApp, *, settings: Settings, sink: RedisSink, metrics: WorkerMetrics
) -> None:
    """The publisher agent: the warnings and profiles the monitor wrote, into Redis."""
    metrics.watch_sink(sink)
    warnings_name = settings.topic("warnings")
    # Read back as one channel (the topics themselves are declared by declare_topics).
    delivery = app.topic(
        warnings_name,
        settings.topic("profiles"),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    @app.agent(delivery, name="publisher")
    async def publisher(stream: Any) -> None:
        async for events in stream.take_events(PUBLISH_BATCH, within=PUBLISH_WITHIN):
            batch_warnings: list[bytes] = []
            batch_profiles: list[bytes] = []
            for event in events:
                value = event.message.value
                if value is None:
                    continue
                if event.message.topic == warnings_name:
                    batch_warnings.append(value)
                else:
                    batch_profiles.append(value)
            await sink.write_until_done(batch_warnings, batch_profiles, asyncio.sleep)
            metrics.mark_read(e.message for e in events)

    @app.task  # type: ignore[untyped-decorator]
    async def _open_sink() -> None:
        await sink.setup()
