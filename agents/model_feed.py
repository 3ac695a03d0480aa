"""The trainer agent's counterpart on every worker: follow the compacted models topic.

Every worker reads the whole topic (no consumer group: all partitions, from
the beginning) so it starts with the latest snapshot and then switches to each
new one as it arrives. A snapshot is built completely before it replaces the
scorer's model, and the event loop runs the monitor's batches one at a time,
so a batch is always scored by one model.

With a signing secret, a record whose signature header is missing or wrong is
rejected (and counted) before it is decoded. A lost broker makes the feed
reconnect with jittered exponential backoff, logging at most once per interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson

from stream_risk.backoff import Backoff, LogGate
from stream_risk.kafka_security import KafkaSecurity
from stream_risk.message_auth import Headers, check

log = logging.getLogger(__name__)


class CompactedFeed:
    """Reads a compacted topic to its end, then follows it, calling ``apply(key, value)``.

    ``caught_up`` is set once everything that was in the topic at start has
    been applied (or when the topic is empty). A value ``apply`` rejects is
    logged and skipped; the previous one stays active. With ``secret``, a value
    without a valid signature is rejected the same way and counted in
    ``rejected_signatures``.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        apply: Callable[[bytes | None, bytes], None],
        poll_ms: int = 500,
        *,
        security: KafkaSecurity | None = None,
        secret: str | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.apply = apply
        self.poll_ms = poll_ms
        self.security = security or KafkaSecurity()
        self.secret = secret
        self.backoff = backoff or Backoff(base=0.5, cap=30.0)
        self._sleep = sleep
        self._gate = LogGate(interval=30.0)
        self.caught_up = asyncio.Event()
        self.applied = 0
        self.rejected = 0
        self.rejected_signatures = 0
        self.reconnects = 0
        # Where to resume after a reconnect: re-reading older records would switch
        # back to older rule sets or models on the way.
        self._next: dict[int, int] = {}

    async def run(self) -> None:
        """Follow the topic for ever; a lost connection is retried with backoff."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker went away: back off and start over
                self.reconnects += 1
                delay = self.backoff.next()
                if self._gate.allow(asyncio.get_running_loop().time()):
                    skipped = self._gate.take_swallowed()
                    log.warning(
                        "%s: feed lost the broker (%s: %s); reconnecting in %.1fs%s",
                        self.topic,
                        type(exc).__name__,
                        exc,
                        delay,
                        f" ({skipped} more failures not logged)" if skipped else "",
                    )
                await self._sleep(delay)

    async def _follow(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self.security.aiokafka(),
        )
        await consumer.start()
        try:
            partitions: set[int] | None = None
            while not partitions:
                partitions = await asyncio.get_running_loop().run_in_executor(
                    None, self._partitions
                )
                if not partitions:
                    await asyncio.sleep(1.0)
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            for tp in tps:
                if tp.partition in self._next:
                    consumer.seek(tp, self._next[tp.partition])
            ends = await consumer.end_offsets(tps)
            if self.backoff.failures:
                log.info("%s: feed reconnected", self.topic)
            self.backoff.reset()
            self._gate.reset()
            pending = {tp for tp in tps if ends[tp] > 0}
            if not pending:
                self.caught_up.set()
            while True:
                batches = await consumer.getmany(timeout_ms=self.poll_ms)
                for tp, records in batches.items():
                    for record in records:
                        self._apply(record.key, record.value, record.headers)
                        self._next[tp.partition] = record.offset + 1
                        if tp in pending and record.offset + 1 >= ends[tp]:
                            pending.discard(tp)
                for tp in list(pending):
                    # Compaction can remove the last offsets: the position tells the truth.
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
                if not pending and not self.caught_up.is_set():
                    self.caught_up.set()
        finally:
            await consumer.stop()

    def _partitions(self) -> set[int] | None:
        # aiokafka learns a topic's partitions only once it is subscribed; the
        # blocking client asks the cluster directly (run in a thread).
        from kafka import KafkaConsumer

        client = KafkaConsumer(bootstrap_servers=self.bootstrap, **self.security.kafka_python())
        try:
            found = client.partitions_for_topic(self.topic)
            return set(found) if found else None
        finally:
            client.close()

    def _apply(self, key: bytes | None, value: bytes | None, headers: Headers = ()) -> None:
        if value is None:
            return  # a tombstone: nothing to switch to
        refused = check(self.secret, key, value, headers)
        if refused is not None:
            self.rejected += 1
            self.rejected_signatures += 1
            log.error(
                "%s: rejected a record at key %r (%s); the active one stays",
                self.topic,
                key,
                refused,
            )
            return
        try:
            self.apply(key, value)
        except Exception as exc:  # a bad record must not stop the feed
            self.rejected += 1
            log.error("%s: rejected a record (%s); the active one stays", self.topic, exc)
            return
        self.applied += 1


def model_loader(load: Callable[[dict[str, Any]], None]) -> Callable[[bytes | None, bytes], None]:
    """``apply`` for the models topic: decode a trainer snapshot and load it."""

    def apply(key: bytes | None, value: bytes) -> None:
        snapshot = orjson.loads(value)
        if not isinstance(snapshot, dict) or "model" not in snapshot:
            raise ValueError("not a risk model snapshot")
        load(snapshot)
        log.info(
            "risk model version %s loaded (%s outcomes)",
            snapshot.get("version"),
            snapshot.get("outcomes"),
        )

    return apply
