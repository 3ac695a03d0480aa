"""The trainer agent's counterpart on every worker: follow the compacted models topic.

Every worker reads the whole topic (no consumer group: all partitions, from
the beginning) so it starts with the latest snapshot and then switches to each
new one as it arrives. A snapshot (or a rule set, :mod:`.rules_feed`) is built
completely in a thread of its own, off the event loop, so heartbeats, commits
and batches go on meanwhile; only the switch to it runs on the loop, where the
monitor's batches run one at a time, so a batch is always scored by one model.
A build that takes longer than ``prepare_timeout`` is given up (the active one
stays).

With a signing secret, a record whose signature header is missing or wrong is
rejected (and counted) before it is decoded. A lost broker makes the feed
reconnect with jittered exponential backoff, logging at most once per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from stream_risk.backoff import Backoff, LogGate
from stream_risk.kafka_security import KafkaSecurity
from stream_risk.message_auth import Headers, check

log = logging.getLogger(__name__)

T = TypeVar("T")

#: What a feed does with a record's key and value: build what it switches to (in a
#: thread, off the event loop) and return the switch (run on the loop), or None when
#: there is nothing to switch to; raise to reject the record.
Prepare = Callable[[bytes | None, bytes], Callable[[], None] | None]

#: Seconds a record's build may take before it is given up.
PREPARE_TIMEOUT = 30.0


async def off_loop(fn: Callable[..., T], *args: Any, timeout: float) -> T:
    """``fn(*args)`` in a new daemon thread, awaited for at most ``timeout`` seconds.

    A thread of its own per call, not a shared pool: a build that never ends keeps
    only its own thread, never the next build's (nor the worker's exit: daemon).
    Raises :class:`TimeoutError` when it takes longer; its result is then dropped.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.done():
            return  # given up already
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            outcome: tuple[T | None, BaseException | None] = (fn(*args), None)
        except BaseException as exc:  # handed to the awaiting coroutine
            outcome = (None, exc)
        # RuntimeError: the loop is closed (the worker stopped): nobody waits for it.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(
        target=run, name=f"build-{getattr(fn, '__name__', 'off-loop')}", daemon=True
    ).start()
    return await asyncio.wait_for(done, timeout)


class CompactedFeed:
    """Reads a compacted topic to its end, then follows it, switching with ``prepare``.

    Each record's value is built by ``prepare(key, value)`` off the event loop
    (see :data:`Prepare`); the switch it returns runs on the loop. ``caught_up``
    is set once everything that was in the topic at start has been applied (or
    when the topic is empty). A value ``prepare`` rejects, or takes longer than
    ``prepare_timeout`` seconds to build, is logged and skipped; the previous one
    stays active. With ``secret``, a value without a valid signature is rejected
    the same way (never built) and counted in ``rejected_signatures``.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        prepare: Prepare,
        poll_ms: int = 500,
        *,
        security: KafkaSecurity | None = None,
        secret: str | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
        prepare_timeout: float = PREPARE_TIMEOUT,
        on_reject: Callable[[Exception], None] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.prepare = prepare
        self.prepare_timeout = prepare_timeout
        self.on_reject = on_reject
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
                        await self._take(record.key, record.value, record.headers)
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

    async def _take(self, key: bytes | None, value: bytes | None, headers: Headers = ()) -> None:
        """Check, build (off the loop) and switch to one record; reject it on any failure."""
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
            switch = await off_loop(self.prepare, key, value, timeout=self.prepare_timeout)
        except TimeoutError as exc:
            log.error(
                "%s: gave up a record at key %r after %.0f s of building; the active one stays",
                self.topic,
                key,
                self.prepare_timeout,
            )
            self._rejected(exc)
            return
        except Exception as exc:  # a bad record must not stop the feed
            log.error("%s: rejected a record (%s); the active one stays", self.topic, exc)
            self._rejected(exc)
            return
        if switch is not None:
            switch()
        self.applied += 1

    def _rejected(self, exc: Exception) -> None:
        self.rejected += 1
        if self.on_reject is not None:
            self.on_reject(exc)


def model_loader(prepare: Callable[[dict[str, Any]], Callable[[], None]]) -> Prepare:
    """``prepare`` for the models topic: decode a trainer snapshot and build its model."""

    def build(key: bytes | None, value: bytes) -> Callable[[], None]:
        snapshot = orjson.loads(value)
        if not isinstance(snapshot, dict) or "model" not in snapshot:
            raise ValueError("not a risk model snapshot")
        switch_model = prepare(snapshot)

        def switch() -> None:
            switch_model()
            log.info(
                "risk model version %s loaded (%s outcomes)",
                snapshot.get("version"),
                snapshot.get("outcomes"),
            )

        return switch

    return build
