"""Wire the Faust app: topics, the changelog-backed state table and the agents."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from kafka.partitioner.default import murmur2

from stream_risk.agents.alignment import Aligner, event_time
from stream_risk.agents.model_feed import CompactedFeed, model_loader
from stream_risk.agents.monitor import Limits, Message, MonitorDriver
from stream_risk.agents.offsets import read_from_earliest
from stream_risk.agents.rules_feed import rules_loader
from stream_risk.agents.topology import MonitorPublisher, Sender, declare_topics
from stream_risk.api.server import ApiDeps, ApiServer
from stream_risk.api.service import ApiService
from stream_risk.config import Settings
from stream_risk.core import Context
from stream_risk.core.trainer import Trainer
from stream_risk.kafka_security import KafkaSecurity
from stream_risk.message_auth import sign_headers
from stream_risk.metrics import WorkerMetrics
from stream_risk.sinks.redis import RedisSink

log = logging.getLogger(__name__)

#: Largest batch the monitor applies at once, and how long it waits to fill one.
MONITOR_BATCH = 1000
MONITOR_WITHIN = 0.05
PUBLISH_BATCH = 500
PUBLISH_WITHIN = 0.1
#: Records one input partition may hold back for alignment before it is paused.
ALIGN_BUFFERED = 5000
#: How often held-back groups are re-examined when no new record arrives.
ALIGN_TICK = 0.1
#: How long the monitor waits at start for the latest model snapshot.
MODEL_WAIT = 30.0


def _learn(trainer: Trainer, raw: bytes) -> dict[str, Any] | None:
    """Learn one encoded training example; a malformed one is logged and skipped."""
    try:
        return trainer.learn_one(orjson.loads(raw))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        log.error("skipping a malformed training example: %s", exc)
        return None


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
    """A Faust app that lets the worker give up held-back records before a rebalance.

    Faust waits, before it commits on revocation, until every message handed to a
    stream is acknowledged; records the alignment still holds back are never
    applied by this owner, so they are released unacknowledged first (their
    offsets stay uncommitted and the next owner reads them again).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.before_revoke: list[Callable[[set[Any]], None]] = []

    def _new_consumer(self) -> Any:
        consumer = super()._new_consumer()
        # Partitions without a committed offset are read from the earliest one.
        read_from_earliest(consumer)
        return consumer

    async def _on_partitions_revoked(self, revoked: set[Any]) -> None:
        for hook in self.before_revoke:
            hook(revoked)
        await super()._on_partitions_revoked(revoked)


def partition_for(customer_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a customer id key."""
    return int(murmur2(customer_id.encode()) & 0x7FFFFFFF) % partitions


def build(settings: Settings) -> Topology:
    """Create the Faust app for ``settings`` with all topics, tables and agents."""
    security = KafkaSecurity.from_settings(settings)
    app = WorkerApp(
        settings.app_id,
        broker=[f"kafka://{host}" for host in settings.kafka_bootstrap.split(",")],
        store="memory://",
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        # Gates the API service below (app.web_server), which binds its own host and port.
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
    partitions = settings.partitions

    input_topics = settings.input_topics()
    topics = declare_topics(app, settings)
    inputs = topics["inputs"]
    warnings_name = settings.topic("warnings")
    profiles_name = settings.topic("profiles")
    models_name = settings.topic("models")

    states = app.Table(
        "customer-state",
        default=None,
        partitions=partitions,
        # bytes in, bytes out: Faust picks the raw codec; the state codec is ours.
        key_type=bytes,
        value_type=bytes,
    )

    def load(customer_id: str) -> bytes | None:
        raw = states.data.get(customer_id.encode())
        return raw if raw is None or isinstance(raw, bytes) else bytes(raw)

    ctx = Context.from_settings(settings)
    behaviour_file = settings.data_dir / "segment-behaviour.json"
    if ctx.population is not None and ctx.population.load(behaviour_file):
        log.info("segment behaviour detector restored from %s", behaviour_file)
    driver = MonitorDriver(
        ctx,
        {t: k for k, t in input_topics.items()},
        load,
        limits=Limits(
            max_event_bytes=settings.max_event_bytes,
            max_message_bytes=settings.max_message_bytes,
            clock_skew=settings.clock_skew_seconds,
            check_record_time=settings.clock_checks != "off",
            check_wall_clock=settings.clock_checks == "live",
            max_timer_fires=settings.max_timer_fires_per_batch,
        ),
    )
    rebuild = {"needed": True}
    metrics = WorkerMetrics()
    metrics.watch_counts(driver.counts)
    metrics.watch_lag(
        lambda: app.consumer.assignment(),
        lambda t, p: app.consumer.highwater(faust.types.TP(t, p)),
    )

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def _assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        rebuild["needed"] = True
        trainer_box["trainer"] = None  # whoever owns the examples now re-learns them

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        rebuild["needed"] = True

    training_name = settings.topic("training-examples")
    # One partition each (declared so): one trainer reads every example in order
    # (single writer), and its snapshots form one compacted log every worker follows.
    training = topics["training-examples"]
    sender = Sender(app)
    model_feed = CompactedFeed(
        settings.kafka_bootstrap,
        models_name,
        model_loader(ctx.scorer.load),
        security=security,
        secret=settings.signing_secret,
    )
    trainer_box: dict[str, Trainer | None] = {"trainer": None}
    model_wait = {"done": False}

    @app.task  # type: ignore[untyped-decorator]
    async def _follow_models() -> None:
        await model_feed.run()

    # Rule sets: every worker follows the compacted rules topic; a valid message
    # replaces the whole rule set between two batches, a bad one is logged and ignored.
    rules_feed = CompactedFeed(
        settings.kafka_bootstrap,
        settings.topic("rules"),
        rules_loader(ctx, driver.counts),
        security=security,
        secret=settings.signing_secret,
    )
    log.info("rule set %s active (until one is read from the rules topic)", ctx.rules.version)

    @app.task  # type: ignore[untyped-decorator]
    async def _follow_rules() -> None:
        await rules_feed.run()

    async def recover_trainer(upto: int) -> Trainer:
        # The reservoir lives in memory: a trainer that takes over re-learns the
        # retained examples before the first new one (learning is deterministic).
        trainer = Trainer(refit_every=settings.model_refit_every)
        if upto <= 0:
            return trainer
        from aiokafka import AIOKafkaConsumer, TopicPartition

        tp = TopicPartition(training_name, 0)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, **security.aiokafka()
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

    @app.agent(training, name="trainer")
    async def train(stream: Any) -> None:
        async for events in stream.take_events(500, within=1.0):
            trainer = trainer_box["trainer"]
            if trainer is None:
                trainer = trainer_box["trainer"] = await recover_trainer(events[0].message.offset)
            snapshot = None
            for event in events:
                if event.message.value is not None:
                    snapshot = _learn(trainer, event.message.value) or snapshot
            if snapshot is not None:
                value = orjson.dumps(snapshot)
                await sender.send(
                    topic=models_name,
                    key=b"risk-model",
                    value=value,
                    partition=0,
                    headers=sign_headers(settings.signing_secret, b"risk-model", value),
                )
                log.info(
                    "risk model version %d published (%d outcomes)",
                    snapshot["version"],
                    snapshot["outcomes"],
                )

    @app.timer(60.0)  # type: ignore[untyped-decorator]
    async def _snapshot_behaviour() -> None:
        population = ctx.population
        if population is not None and population.forests:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            # Off the event loop (heartbeats and commits go on); no batch changes the
            # detector meanwhile.
            async with applying:
                await asyncio.to_thread(population.save, behaviour_file)

    async def handle(events: list[Any]) -> None:
        if not rules_feed.caught_up.is_set():
            # Never evaluate with an older rule set than the published one.
            await rules_feed.caught_up.wait()
        if not model_wait["done"]:
            # Once, at start: score with the latest model from the first batch on.
            model_wait["done"] = True
            try:
                await asyncio.wait_for(model_feed.caught_up.wait(), MODEL_WAIT)
            except TimeoutError:
                log.warning("no risk model snapshot read yet; scoring with the scorecard")
        if rebuild["needed"]:
            rebuild["needed"] = False
            driver.forget()
            # Decoding every stored state takes seconds for many customers: off the loop.
            stored = [(k.decode(), v) for k, v in states.data.items()]
            await asyncio.to_thread(
                driver.rebuild_timers, stored, lambda cid: partition_for(cid, partitions)
            )
        started = time.perf_counter()
        result = driver.process(
            Message(
                e.message.topic,
                e.message.partition,
                e.message.offset,
                e.message.key,
                e.message.value,
                e.message.timestamp,
            )
            for e in events
        )
        await publisher_of_batches.publish(result)
        metrics.observe_batch(
            [e.message for e in events], time.perf_counter() - started, time.time()
        )

    # Event-time alignment: each partition number's input records wait until they
    # are the earliest of their group; held records stay unacknowledged, so no
    # offset is committed past one not yet applied.
    aligner: Aligner[Any] = Aligner(
        list(input_topics.values()),
        max_idle=settings.alignment_max_idle,
        max_buffered=ALIGN_BUFFERED,
    )
    paused: set[Any] = set()
    applying = asyncio.Lock()

    def caught_up(
        topic_name: str, partition: int, next_offset: int | None, since: float
    ) -> bool | None:
        tp = faust.types.TP(topic_name, partition)
        try:
            end = app.consumer.highwater(tp)
            # Only a fetch answered after the waiting record arrived counts: an older
            # answer may predate records produced alongside it.
            kafka: Any = app.consumer
            polled = kafka._thread._ensure_consumer().last_poll_timestamp(tp)
        except Exception:  # not assigned (any more): not known
            return None
        if end is None or polled is None:
            return None
        if next_offset is None:
            # Nothing fetched yet: where reading starts is the committed offset.
            committed: dict[Any, int | None] = getattr(app.consumer, "_committed_offset", {})
            next_offset = committed.get(tp) or 0
        if next_offset < end:
            return False
        return True if polled / 1000.0 > since else None

    def abandon_held(revoked: set[Any]) -> None:
        for event in aligner.clear():
            # Marked done without an ack: the offset is never committed by this
            # owner, and Faust's wait for unacknowledged messages ends.
            event.message.acked = True
        paused.clear()

    app.before_revoke.append(abandon_held)

    last_apply = [0.0]

    async def apply_released() -> None:
        async with applying:
            last_apply[0] = time.monotonic()
            # Bounded batches: a group released after a long wait never stalls the loop.
            events = aligner.release(last_apply[0], caught_up, limit=MONITOR_BATCH)
            if events:
                try:
                    await handle(events)
                except Exception:
                    # Bad events never get here (they are dead letters); this is the
                    # infrastructure failing: stop before any offset of the batch is
                    # committed, so the restart reprocesses it from the last commit.
                    log.critical(
                        "the monitor failed on a batch; stopping the worker so that its "
                        "offsets are not committed",
                        exc_info=True,
                    )
                    os._exit(70)
                for event in events:
                    event.ack()
            for tp in [tp for tp in paused if aligner.under_limit(tp.topic, tp.partition)]:
                paused.discard(tp)
                app.consumer.resume_partitions([tp])

    @app.agent(inputs, name="monitor")
    async def monitor(stream: Any) -> None:
        async for events in stream.take_events(MONITOR_BATCH, within=MONITOR_WITHIN):
            arrived = time.time()
            generation = app.consumer_generation_id
            for event in events:
                message = event.message
                if message.generation_id != generation:
                    # Fetched before a rebalance: whoever owns the partition now reads
                    # it again from the last commit; never acknowledged here.
                    message.acked = True
                    continue
                # Held until applied: the batch's own acknowledgement must not be the last.
                message.incref()
                aligner.add(
                    message.topic,
                    message.partition,
                    message.offset,
                    event_time(message.value),
                    event,
                    arrived,
                )
            for topic_name, partition in aligner.over_limit():
                tp = faust.types.TP(topic_name, partition)
                if tp not in paused:
                    # Far ahead of its group: stop fetching it until the others catch up.
                    paused.add(tp)
                    app.consumer.pause_partitions([tp])
            await apply_released()

    @app.timer(ALIGN_TICK)  # type: ignore[untyped-decorator]
    async def _align_idle() -> None:
        # Groups waiting on an input with nothing fetched move on once it is caught
        # up or their idle time is over, even when no new record arrives.
        if time.monotonic() - last_apply[0] >= ALIGN_TICK and aligner.buffered():
            await apply_released()

    publisher_of_batches = MonitorPublisher(sender, settings, states)

    sink: RedisSink | None = None
    if settings.redis_enabled:
        sink = RedisSink(settings.redis_url, prefix=settings.redis_prefix)
        redis_sink = sink
        metrics.watch_sink(sink)
        # The warnings and profiles the monitor wrote, read back as one channel.
        delivery = app.topic(
            warnings_name,
            profiles_name,
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
                await redis_sink.write_until_done(batch_warnings, batch_profiles, asyncio.sleep)
                metrics.mark_read(e.message for e in events)

        @app.task  # type: ignore[untyped-decorator]
        async def _open_sink() -> None:
            await redis_sink.setup()

    api: ApiServer | None = None
    if settings.web_enabled:

        async def produce(topic: str, key: bytes, value: bytes) -> Any:
            # The worker's own producer: one connection, flushed before every commit.
            return await app.producer.send_and_wait(
                topic=topic, key=key, value=value, partition=None, timestamp=None, headers=None
            )

        def stream_time() -> datetime | None:
            # The furthest event time among this worker's partitions.
            latest = max(driver.watermarks.values(), default=None)
            return None if latest is None else datetime.fromtimestamp(latest, UTC)

        deps = ApiDeps(settings, metrics, produce, stream_time=stream_time)
        api = ApiServer(deps, settings.web_host, settings.web_port)
        app.web_server(ApiService(api))

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
        topics={**topics, "states": states},
    )
