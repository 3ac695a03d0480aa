"""The worker's topics, declared once from a table, and the one way it sends to Kafka.

Every topic carries raw bytes both ways: validation and encoding are the
engine's. Input topics have ``STREAM_RISK_PARTITIONS`` partitions; the topics
one consumer must read in order have one (see :mod:`stream_risk.config`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NoReturn

import orjson

from stream_risk.agents.monitor import BatchResult
from stream_risk.agents.state_store import CustomerStates
from stream_risk.config import COMPACTED_TOPICS, SINGLE_PARTITION_TOPICS, Settings

log = logging.getLogger(__name__)

#: Exit status of a worker that stops itself (``EX_SOFTWARE``): its supervisor restarts it.
STOP_STATUS = 70


def stop_worker() -> NoReturn:
    """End the process at once, before Faust commits another offset.

    No clean shutdown: a clean stop commits the offsets of what was consumed,
    which is exactly what must not happen when an output may be missing. The
    restart reprocesses from the last commit.
    """
    os._exit(STOP_STATUS)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One output topic of the worker: its setting key and shape."""

    key: str
    compacted: bool = False
    single_partition: bool = False

    @classmethod
    def of(cls, key: str) -> TopicSpec:
        """The spec of ``key`` as :mod:`stream_risk.config` shapes it.

        >>> TopicSpec.of("models")
        TopicSpec(key='models', compacted=True, single_partition=True)
        """
        return cls(key, key in COMPACTED_TOPICS, key in SINGLE_PARTITION_TOPICS)


#: Every topic the worker writes (the input topics are one per event type).
OUTPUT_TOPICS: tuple[TopicSpec, ...] = tuple(
    TopicSpec.of(key)
    for key in (
        "warnings",
        "dead-letters",
        "profiles",
        "tier-changes",
        "credit-actions",
        "training-examples",
        "models",
    )
)


def declare_topics(app: Any, settings: Settings) -> dict[str, Any]:
    """Declare the input topics (as one channel, ``"inputs"``) and every output topic once."""

    def declare(*names: str, compacted: bool = False, partitions: int | None = None) -> Any:
        return app.topic(
            *names,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions or settings.partitions,
            internal=True,
            compacting=compacted or None,
        )

    topics = {"inputs": declare(*settings.input_topics().values())}
    for spec in OUTPUT_TOPICS:
        topics[spec.key] = declare(
            settings.topic(spec.key),
            compacted=spec.compacted,
            partitions=1 if spec.single_partition else None,
        )
    return topics


class Sender:
    """Sends records through the worker's producer, keyword arguments only.

    Faust flushes the producer before every offset commit, and a send that fails
    for good is seen inside that flush: the worker stops there, so no offset is
    committed past an output that never reached Kafka. The restart reprocesses
    from the last commit; de-duplication absorbs what was already applied.
    """

    def __init__(self, app: Any, stop: Callable[[], None] | None = None) -> None:
        self.app = app
        self.stop = stop or stop_worker

    async def send(
        self,
        *,
        topic: str,
        key: bytes | None,
        value: bytes,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        """Hand one record to the producer; return its delivery (checked before the next
        commit in any case)."""
        future: asyncio.Future[Any] = await self.app.producer.send(
            topic=topic,
            key=key,
            value=value,
            partition=partition,
            timestamp=None,
            headers=headers or None,
        )
        future.add_done_callback(self._delivered)
        return future

    def _delivered(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is None:
            return
        log.critical(
            "a send to Kafka failed for good (%s); stopping the worker so that "
            "no offset is committed past it",
            future.exception(),
        )
        self.stop()


class MonitorPublisher:
    """Writes one batch's results: every keyed output, then, once the broker has them,
    the changelog states.

    A state in the changelog carries the offsets of the records applied to it, and
    a record at or below them is skipped as a redelivery after a restart: so a state
    must never reach the changelog before the outputs of its records. Killed between
    the two, the worker recovers the older state and applies the records again (their
    outputs are sent again, with the same ids).
    """

    def __init__(self, sender: Sender, settings: Settings, states: CustomerStates) -> None:
        self.sender = sender
        self.states = states
        self.names = {key: settings.topic(key) for key in (s.key for s in OUTPUT_TOPICS)}

    async def publish(self, result: BatchResult) -> None:
        """Send everything ``result`` carries, then store its states (one changelog write per
        customer)."""
        send = self.sender.send
        sent: list[asyncio.Future[Any]] = []
        # Every output record is keyed by its customer, on the customer's partition
        # (training examples: the trainer's single partition).
        names = self.names
        outputs: tuple[tuple[str, Iterable[tuple[int, dict[str, Any]]]], ...] = (
            (names["warnings"], result.warnings),
            (names["profiles"], result.profiles.values()),
            (names["training-examples"], ((0, example) for example in result.training_examples)),
            (names["tier-changes"], result.tier_changes),
            (names["credit-actions"], result.credit_actions),
        )
        for name, records in outputs:
            for partition, record in records:
                sent.append(
                    await send(
                        topic=name,
                        key=record["customer_id"].encode(),
                        value=orjson.dumps(record),
                        partition=partition,
                    )
                )
        for dead_key, record in result.dead_letters:
            sent.append(
                await send(topic=names["dead-letters"], key=dead_key, value=orjson.dumps(record))
            )
        if sent:
            # A failed send raises here (and stops the worker): no state goes out after it.
            await asyncio.gather(*sent)
        states = self.states
        changelog = states.changelog
        for customer_id, (partition, raw) in result.states.items():
            key = customer_id.encode()
            delivered = await send(topic=changelog, key=key, value=raw, partition=partition)
            states.put(partition, key, raw, delivered)
