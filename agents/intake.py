"""The input topics' records to the monitor in fetched batches, below Faust's streams.

Faust hands a consumer's fetched records to its streams one at a time: for each, its
fetch loop waits on the record's callback together with the flow-control event and
its own stop events (four futures), and the callback builds an event and queues it
for the agent's stream, which hands it on: a bare Faust agent that only decodes
reads about 9,000 to 11,000 records a second on a 2-core machine.

The worker keeps Faust's consumer: its group membership, fetching thread, read
offsets, gaps, commits, tables and recovery. Only the fetch loop is its own
(:func:`drain_in_batches`, installed by :class:`stream_risk.agents.app.WorkerApp`):
records of the routed topics (the monitor's inputs) skip the streams and are
handed on a fetched batch at a time. They are tracked as Faust's streams track them
(a stopping worker waits for them) and their reader acknowledges each once done
with it: Faust commits only acknowledged offsets, so nothing is committed before it
is applied. Records of other topics (the trainer's, the publisher's) take Faust's
own way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

#: ``deliver(messages)``: take a fetched batch of one route's records (Faust messages,
#: in fetch order); each is acknowledged to the consumer once done with.
Deliver = Callable[[list[Any]], Awaitable[None]]

#: What the fetch loop uses of Faust's consumer (faust-streaming 0.15): without any
#: of it, Faust's own loop runs.
_CONSUMER_PARTS = (
    "callback",
    "getmany",
    "track_message",
    "commit",
    "wait_first",
    "suspend_flow",
    "_read_offset",
    "_add_gap",
    "_commit_every",
    "_n_acked",
    "_stopped",
    "consumer_stopped_errors",
)


def can_drain_in_batches(consumer: Any) -> bool:
    """Whether ``consumer`` has every part of Faust's consumer the batch loop uses."""
    return all(hasattr(consumer, name) for name in _CONSUMER_PARTS)


async def drain_in_batches(
    consumer: Any,
    fetcher: Any,
    routes: Mapping[str, Deliver],
    batch_size: int = 1000,
) -> None:
    """Faust's fetch loop (``Consumer._drain_messages``), the ``routes``' topics in batches.

    Each ``getmany`` answer is walked as Faust walks it (records at or after the
    partition's read offset, gaps noted for the commit, a commit every
    ``commit_every`` acknowledgements); records of a topic of ``routes`` are tracked
    and kept aside for its ``deliver``, others go through Faust's callback. The kept
    ones go on at most ``batch_size`` at a time (an answer after a pause holds
    thousands: handing them on at once would keep the event loop from running), and
    at the answer's end.
    """
    callback = consumer.callback
    read_offset = consumer._read_offset
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    commit_every = consumer._commit_every
    consumer_stopped = consumer._stopped.is_set
    fetcher_stopped = fetcher._stopped.is_set
    try:
        while not (consumer_stopped() or fetcher_stopped()):
            batches: dict[Deliver, list[Any]] = {}
            records = consumer.getmany(timeout=1.0)
            # getmany may answer at once again and again: let the loop run between.
            await asyncio.sleep(0)
            if consumer.should_stop:
                continue
            async for tp, message in records:
                offset = message.offset
                last = read_offset[tp]
                if last is not None and offset < last:
                    continue  # read before a seek back: Faust drops it too
                if last and offset - last > 1 and acks_enabled_for(message.topic):
                    # Offsets with no record (compaction, transaction markers): the
                    # commit may pass over them.
                    await consumer._add_gap(tp, last + 1, offset)
                if commit_every is not None and consumer._n_acked >= commit_every:
                    consumer._n_acked = 0
                    await consumer.commit()
                deliver = routes.get(message.topic)
                if deliver is None:
                    await consumer.wait_first(callback(message), consumer.suspend_flow.wait())
                    read_offset[tp] = offset
                    continue
                consumer.track_message(message)
                read_offset[tp] = offset
                batch = batches.setdefault(deliver, [])
                batch.append(message)
                if len(batch) >= batch_size:
                    del batches[deliver]
                    await deliver(batch)
            for deliver, batch in batches.items():
                await deliver(batch)
    except consumer.consumer_stopped_errors:
        if consumer.transport.app.should_stop:
            log.info("broker stopped the consumer while the worker stops")
            return
        raise
    except asyncio.CancelledError:
        if consumer.transport.app.should_stop:
            return
        raise
