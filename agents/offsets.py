"""Where a worker starts reading a partition, and how far it may commit.

Gaps in the Faust/aiokafka consumer let a committed offset pass records that were
never applied, or lose records handed on:

- After a rebalance Faust seeks every partition back to its committed offset,
  but aiokafka's ``seek_to_committed`` does nothing for a partition without one
  (``None`` or ``0``). Records fetched before the rebalance and dropped (from an
  older generation, or held back for alignment and released unapplied) stay
  behind the fetch position: the worker goes on after them as if the reset
  policy were ``latest``.
- Faust commits the first run of consecutive acknowledged offsets without
  checking that it starts where reading started when nothing is committed yet
  (and it tolerates a gap of one record after a committed offset).
- Faust empties the streams' queues when it resumes the flow after that seek:
  a record the fetcher handed on while the seek ran is gone, though handed on.
- Faust resumes the input partitions after a rebalance *before* it seeks them
  back to the committed offset, and a partition kept across the rebalance may
  still be fetched from where its held-back records were given up: records far
  ahead of the commit reach the streams first. Applied, they make every record
  before them look like a redelivery (the driver skips a customer's records at
  or below the last offset it applied), and those are lost. Faust also drops a
  record below the last offset it handed on, and counts a jump in offsets as a
  gap to commit past.

:func:`read_from_earliest` closes them on a live consumer: partitions without a
committed offset are sought to their earliest offset; nothing is handed on while
that seek runs; a commit is held back while the lowest acknowledged offset is
above the next one to apply; and the records of each input partition reach the
streams strictly in offset order from where reading starts (:func:`admit`): one
ahead of the next expected offset is held back and the partition is sought back
to that offset; only when a fetch made after that seek still begins beyond it are
the offsets in between taken as holding no record (transaction markers, a
truncated log) and passed over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

log = logging.getLogger(__name__)


class Admit(Enum):
    """What becomes of a fetched input record (see :func:`admit`)."""

    #: The next one to hand on.
    PASS = "pass"
    #: Below the next one: handed on already in this generation, or committed.
    REPEAT = "repeat"
    #: Beyond the next one, which never came: held back; the partition is sought back.
    AHEAD = "ahead"
    #: Beyond the next one, fetched after seeking back to it: nothing lies between.
    GAP = "gap"


def admit(offset: int, expected: int | None, fetched_after_seek_back: bool) -> Admit:
    """Whether a fetched record at ``offset`` goes on to the streams.

    ``expected`` is the next offset of its partition to hand on (None: not known
    yet, any record starts the partition); ``fetched_after_seek_back`` says that
    the record's fetch was made after the partition was sought back to ``expected``.

    >>> admit(143, 143, False), admit(120, 143, False)
    (<Admit.PASS: 'pass'>, <Admit.REPEAT: 'repeat'>)
    >>> admit(178, 143, False), admit(144, 143, True)
    (<Admit.AHEAD: 'ahead'>, <Admit.GAP: 'gap'>)
    >>> admit(9, None, False)
    <Admit.PASS: 'pass'>
    """
    if expected is None or offset == expected:
        return Admit.PASS
    if offset < expected:
        return Admit.REPEAT
    return Admit.GAP if fetched_after_seek_back else Admit.AHEAD


@dataclass
class Reading:
    """Where each input partition's next record to hand on is, on one consumer."""

    #: Next offset to hand on, per input partition.
    expected: dict[Any, int] = field(default_factory=dict)
    #: Per partition sought back to ``expected``: the number of fetches made before
    #: that seek finished (infinite while it runs).
    sought_back: dict[Any, float] = field(default_factory=dict)
    #: The generation whose seek to the committed offsets finished.
    generation: int | None = None
    #: Fetches made so far, and the one whose records are being handed on.
    fetches: int = 0
    delivering: int = 0


class _ReadOffsets(dict[Any, "int | None"]):
    """Faust's last-read offsets, never read for input partitions.

    Faust drops a record below the last offset it handed on and records a jump as
    a gap to commit past; for input partitions :func:`admit` decides instead.
    """

    def __init__(self, is_input: Callable[[str], bool]) -> None:
        super().__init__()
        self.is_input = is_input

    def __getitem__(self, tp: Any) -> int | None:
        if self.is_input(tp.topic):
            return None
        return self.get(tp)


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

    ``consumer`` is the app's ``faust.transport.consumer.Consumer``, not started
    yet; its ``perform_seek`` (run after every rebalance), ``_new_offset`` (the
    offset each commit would write), ``getmany`` (each fetch), ``callback``
    (each record handed to the streams) and ``seek`` are wrapped on the instance.
    """
    starts: dict[Any, int] = {}
    new_offset: Callable[[Any], int | None] = consumer._new_offset
    reading = Reading()
    is_input: Callable[[str], bool] = consumer.app.topics.acks_enabled_for
    consumer._read_offset = _ReadOffsets(is_input)

    async def perform_seek() -> None:
        # No record is handed on until Faust resumes the flow after this seek: that
        # resume empties the streams' queues, and a record handed on before it (the
        # fetcher runs on while the seeks below wait for the consumer's thread) would
        # be lost there, yet counted as handed on.
        consumer.stop_flow()
        committed: Mapping[Any, int | None] = await consumer.seek_to_committed()
        acked = consumer.app.topics.acks_enabled_for
        # Changelog partitions are read by table recovery, never committed: left alone.
        inputs = [tp for tp in committed if acked(tp.topic)]
        fresh = [tp for tp in inputs if not committed[tp]]
        earliest: Mapping[Any, int] = await consumer.earliest_offsets(*inputs) if inputs else {}
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
        # From here on each input partition is handed on from where reading starts.
        reading.expected = dict(starts)
        reading.sought_back.clear()
        reading.generation = consumer.app.consumer_generation_id
        # Only now is every input partition sought to its start. The fetcher runs on
        # while the offsets above are asked for: records it handed on meanwhile, from
        # the committed offsets ``seek_to_committed`` set, were given up as belonging to
        # no generation yet, and the fetch position went past them. Sought to before
        # this point, they would never be read again (a stall until the next record).
        # aiokafka also seeks only to a committed offset above 0: the fresh partitions
        # stay wherever the fetcher was until this seek.
        for tp in inputs:
            await consumer.seek(tp, starts[tp])

    def guarded_new_offset(tp: Any) -> int | None:
        start = starts.get(tp)
        if not committable(consumer._acked[tp], start):
            return None
        offset = new_offset(tp)
        if offset is not None and start is not None:
            starts[tp] = offset
        return offset

    getmany = consumer.getmany

    async def counted_getmany(timeout: float) -> Any:
        reading.fetches += 1
        fetch = reading.fetches
        async for tp, message in getmany(timeout=timeout):
            reading.delivering = fetch
            yield tp, message

    callback = consumer.callback

    async def in_order(message: Any) -> None:
        tp = message.tp
        if not is_input(tp.topic):
            await callback(message)
            return
        if message.generation_id != reading.generation:
            return  # before this generation's seek: read again from the commit
        expected = reading.expected.get(tp)
        verdict = admit(
            message.offset, expected, reading.delivering > reading.sought_back.get(tp, float("inf"))
        )
        if verdict is Admit.REPEAT:
            return
        if verdict is Admit.AHEAD:
            assert expected is not None
            if tp not in reading.sought_back:
                reading.sought_back[tp] = float("inf")
                log.info(
                    "%s[%d]: offset %d arrived before %d; reading again from %d",
                    tp.topic,
                    tp.partition,
                    message.offset,
                    expected,
                    expected,
                )
                await consumer.seek(tp, expected)
                reading.sought_back[tp] = reading.fetches
            return
        if verdict is Admit.GAP:
            assert expected is not None
            log.warning(
                "%s[%d]: no record at offsets %d to %d (transaction markers or a "
                "truncated log); going on",
                tp.topic,
                tp.partition,
                expected,
                message.offset - 1,
            )
            # Nothing to apply there: commits may pass it.
            consumer._gap[tp].addi(expected, message.offset)
            if starts.get(tp) == expected:
                starts[tp] = message.offset
        reading.expected[tp] = message.offset + 1
        reading.sought_back.pop(tp, None)
        await callback(message)

    seek = consumer.seek

    async def seek_where_fetched(tp: Any, offset: int) -> None:
        # Faust's seek moves the fetch position from the calling thread, while the
        # consumer's own thread may be handing out fetched records: aiokafka's fetcher
        # then fails on the partition (a KeyError) and the worker stops. On that thread
        # the two never interleave.
        thread = getattr(consumer, "_thread", None)
        if thread is None:  # no fetcher thread of its own
            await seek(tp, offset)
            return
        await thread.call_thread(seek, tp, offset)

    consumer.seek = seek_where_fetched
    consumer.perform_seek = perform_seek
    consumer._new_offset = guarded_new_offset
    consumer.getmany = counted_getmany
    consumer.callback = in_order
