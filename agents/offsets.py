"""Where a worker starts reading a partition, and how far it may commit.

Two gaps in the Faust/aiokafka consumer let a committed offset pass records that
were never applied:

- After a rebalance Faust seeks every partition back to its committed offset,
  but aiokafka's ``seek_to_committed`` does nothing for a partition without one
  (``None`` or ``0``). Records fetched before the rebalance and dropped (from an
  older generation, or held back for alignment and released unapplied) stay
  behind the fetch position: the worker goes on after them as if the reset
  policy were ``latest``.
- Faust commits the first run of consecutive acknowledged offsets without
  checking that it starts where reading started when nothing is committed yet
  (and it tolerates a gap of one record after a committed offset).

:func:`read_from_earliest` closes both on a live consumer: partitions without a
committed offset are sought to their earliest offset, and a commit is held back
while the lowest acknowledged offset is above the next one to apply.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)


def commit_start(committed: int | None, earliest: int) -> int:
    """The first offset to apply in a partition: its committed offset, else the earliest.

    A committed offset below the earliest retained one (the log was truncated)
    starts at the earliest, as the consumer's ``earliest`` reset does.

    >>> commit_start(None, 0), commit_start(0, 0), commit_start(120, 0), commit_start(5, 40)
    (0, 0, 120, 40)
    """
    return earliest if committed is None else max(committed, earliest)


def committable(acked: list[int], start: int | None) -> bool:
    """Whether acknowledged offsets ``acked`` may be committed, ``start`` being the next to apply.

    A commit covers only a run that begins at ``start``: an earlier record not
    yet acknowledged (still in flight, or dropped and to be read again) holds it.

    >>> committable([3, 4, 5], 3), committable([4, 5], 3), committable([], 3)
    (True, False, False)
    >>> committable([9], None)  # nothing known about the start: Faust decides
    True
    """
    if not acked:
        return False
    return start is None or min(acked) <= start


def read_from_earliest(consumer: Any) -> None:
    """Patch a Faust consumer so uncommitted partitions start at the earliest offset.

    ``consumer`` is the app's ``faust.transport.consumer.Consumer``; its
    ``perform_seek`` (run after every rebalance) and ``_new_offset`` (the offset
    each commit would write) are wrapped on the instance.
    """
    starts: dict[Any, int] = {}
    new_offset: Callable[[Any], int | None] = consumer._new_offset

    async def perform_seek() -> None:
        committed: Mapping[Any, int | None] = await consumer.seek_to_committed()
        acked = consumer.app.topics.acks_enabled_for
        # Changelog partitions are read by table recovery, never committed: left alone.
        inputs = [tp for tp in committed if acked(tp.topic)]
        fresh = [tp for tp in inputs if not committed[tp]]
        earliest: Mapping[Any, int] = await consumer.earliest_offsets(*inputs) if inputs else {}
        for tp in fresh:
            # aiokafka seeks only to a committed offset above 0: the others stay
            # wherever the fetcher was, possibly past records never applied.
            await consumer.seek(tp, earliest.get(tp, 0))
        if fresh:
            log.info(
                "reading %d partitions without a committed offset from the earliest", len(fresh)
            )
        starts.clear()
        for tp in inputs:
            starts[tp] = commit_start(committed[tp] or None, earliest.get(tp, 0))
        consumer._read_offset.update(
            {tp: off if off is not None and off >= 0 else None for tp, off in committed.items()}
        )
        consumer._committed_offset.update(
            {tp: off if off else None for tp, off in committed.items() if off is not None}
        )

    def guarded_new_offset(tp: Any) -> int | None:
        start = starts.get(tp)
        if not committable(consumer._acked[tp], start):
            return None
        offset = new_offset(tp)
        if offset is not None and start is not None:
            starts[tp] = offset
        return offset

    consumer.perform_seek = perform_seek
    consumer._new_offset = guarded_new_offset
