"""Where reading starts after a rebalance, and what a commit may cover (agents/offsets.py)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import pytest
from faust.types import TP
from intervaltree import IntervalTree

from stream_risk.agents.offsets import commit_start, committable, read_from_earliest

IN, CHANGELOG = TP("orders", 0), TP("app-customer-state-changelog", 0)


class FakeTopics:
    def acks_enabled_for(self, topic: str) -> bool:
        return not topic.endswith("-changelog")


class FakeApp:
    topics = FakeTopics()
    consumer_generation_id = 9


class FakeMessage:
    def __init__(self, tp: Any, offset: int, generation: int) -> None:
        self.tp = tp
        self.offset = offset
        self.generation_id = generation


class FakeConsumer:
    """The parts of a Faust consumer the patch touches, with aiokafka's seek semantics."""

    def __init__(self, committed: Mapping[Any, int | None], position: int, earliest: int) -> None:
        self.app = FakeApp()
        self.committed = dict(committed)
        self.positions = {tp: position for tp in committed}
        self.earliest = earliest
        self._read_offset: dict[Any, int | None] = {}
        self._committed_offset: defaultdict[Any, int | None] = defaultdict(lambda: None)
        self._acked: defaultdict[Any, list[int]] = defaultdict(list)
        self._gap: defaultdict[Any, IntervalTree] = defaultdict(IntervalTree)
        self.fetches: list[list[int]] = []
        self.handed_on: list[tuple[str, int]] = []
        self.flow_active = True

    def stop_flow(self) -> None:
        self.flow_active = False

    def resume_flow(self) -> None:
        self.flow_active = True

    async def callback(self, message: Any) -> None:
        self.handed_on.append((message.tp.topic, message.offset))

    async def getmany(self, timeout: float) -> Any:
        for offset in self.fetches.pop(0):
            yield IN, FakeMessage(IN, offset, self.app.consumer_generation_id)

    async def seek_to_committed(self) -> Mapping[Any, int | None]:
        for tp, offset in self.committed.items():
            if offset and offset > 0:  # as aiokafka: None and 0 leave the position alone
                self.positions[tp] = offset
        return dict(self.committed)

    async def seek(self, tp: Any, offset: int) -> None:
        self.positions[tp] = offset

    async def earliest_offsets(self, *tps: Any) -> Mapping[Any, int]:
        return {tp: self.earliest for tp in tps}

    def _new_offset(self, tp: Any) -> int | None:
        # Faust's rule: the first run of consecutive acknowledged offsets, no head check.
        acked = sorted(self._acked[tp])
        if not acked:
            return None
        end = acked[0]
        while end + 1 in acked:
            end += 1
        self._acked[tp] = [o for o in acked if o > end]
        return end + 1


@pytest.mark.parametrize("committed", [None, 0])
def test_a_partition_without_a_commit_is_read_from_the_earliest_offset(
    committed: int | None,
) -> None:
    # The fetcher had gone past 1,022 records that were dropped in a rebalance.
    consumer = FakeConsumer({IN: committed, CHANGELOG: None}, position=1022, earliest=0)
    read_from_earliest(consumer)
    asyncio.run(consumer.perform_seek())  # type: ignore[attr-defined]
    assert consumer.positions[IN] == 0
    # Table recovery reads the changelog itself: its position is not touched.
    assert consumer.positions[CHANGELOG] == 1022


def test_a_committed_partition_is_read_from_its_commit() -> None:
    consumer = FakeConsumer({IN: 500}, position=900, earliest=0)
    read_from_earliest(consumer)
    asyncio.run(consumer.perform_seek())  # type: ignore[attr-defined]
    assert consumer.positions[IN] == 500
    assert consumer._committed_offset[IN] == 500


class FetcherThread:
    """Faust's consumer thread: ``call_thread`` runs a call on it (here, records it)."""

    def __init__(self, consumer: FakeConsumer) -> None:
        self.consumer = consumer
        self.calls: list[tuple[Any, ...]] = []

    async def call_thread(self, fun: Any, *args: Any) -> Any:
        # Where it runs: the fake's position moves only through this thread.
        self.calls.append(args)
        return await fun(*args)


def test_every_seek_runs_on_the_consumer_thread() -> None:
    # Faust seeks from the calling thread; the fetcher, on its own thread, then
    # fails on a partition whose records it was handing out.
    consumer = FakeConsumer({IN: 500}, position=900, earliest=0)
    thread = consumer._thread = FetcherThread(consumer)  # type: ignore[attr-defined]
    read_from_earliest(consumer)
    asyncio.run(consumer.perform_seek())  # type: ignore[attr-defined]
    asyncio.run(consumer.seek(IN, 42))
    assert thread.calls == [(IN, 500), (IN, 42)]
    assert consumer.positions[IN] == 42


def test_no_commit_passes_a_record_that_was_not_applied() -> None:
    consumer = FakeConsumer({IN: None}, position=1022, earliest=0)
    read_from_earliest(consumer)
    asyncio.run(consumer.perform_seek())  # type: ignore[attr-defined]
    # Records 1022.. acknowledged, 0..1021 not: nothing may be committed.
    consumer._acked[IN] = list(range(1022, 1030))
    assert consumer._new_offset(IN) is None
    consumer._acked[IN] = list(range(0, 1030))
    assert consumer._new_offset(IN) == 1030
    # One record missing right after the commit holds the next one (Faust lets one pass).
    consumer._acked[IN] = [1031, 1032]
    assert consumer._new_offset(IN) is None
    consumer._acked[IN] = [1030, 1031, 1032]
    assert consumer._new_offset(IN) == 1033


@pytest.mark.parametrize(
    ("acked", "start", "expected"),
    [
        ([0, 1, 2], 0, True),
        ([1, 2], 0, False),
        ([41, 42], 40, False),
        ([40], 40, True),
        ([], 0, False),
        ([7], None, True),
    ],
)
def test_committable(acked: list[int], start: int | None, expected: bool) -> None:
    assert committable(acked, start) is expected


def test_a_truncated_log_starts_at_its_earliest_offset() -> None:
    assert commit_start(5, 40) == 40
    assert commit_start(None, 12) == 12


# --- records reach the streams in offset order from where reading starts ----------------------


class Fetching(FakeConsumer):
    """A consumer whose fetches are scripted, for the records handed to the streams."""

    def __init__(self, committed: Mapping[Any, int | None], position: int) -> None:
        super().__init__(committed, position, earliest=0)
        self.app = FakeApp()  # its own generation
        self.sought: list[tuple[Any, int]] = []

    async def seek(self, tp: Any, offset: int) -> None:
        self.sought.append((tp, offset))
        await super().seek(tp, offset)

    def drain(self, *fetches: list[int]) -> None:
        """Faust's drain loop over ``fetches``, as wrapped by the patch."""
        self.fetches = list(fetches)

        async def run() -> None:
            for _ in fetches:
                async for _, message in self.getmany(timeout=1.0):
                    await self.callback(message)

        asyncio.run(run())


def test_a_record_ahead_of_the_commit_is_not_handed_on_before_the_ones_it_passed() -> None:
    """Partition kept across a rebalance: its fetch position (178) is where its held-back
    records were given up, ahead of the commit (143). Handed on first, 178 would make the
    driver skip 143-177 of its customers as redeliveries."""
    consumer = Fetching({IN: 143}, position=178)
    read_from_earliest(consumer)
    asyncio.run(consumer.perform_seek())  # type: ignore[attr-defined]
    # Fetched from the old position while the seek ran (Faust resumes first), then from
    # the commit once sought back.
    consumer.drain([178, 179], [143, 144, 145], [146])
    assert consumer.handed_on == [
        ("orders", 143),
        ("orders", 144),
        ("orders", 145),
        ("orders", 146),
    ]
    assert (IN, 143) in consumer.sought
    # Faust's own last-read offset no longer drops the records read again.
    assert consumer._read_offset[IN] is None


def test_records_read_again_are_not_handed_on_twice_and_other_generations_wait() -> None:
    consumer = Fetching({IN: 10}, position=10)
    read_from_earliest(consumer)
    asyncio.run(consumer.perform_seek())  # type: ignore[attr-defined]
    consumer.drain([10, 11], [10, 11, 12])
    assert [o for _, o in consumer.handed_on] == [10, 11, 12]
    # A record of a generation whose seek has not run is read again after it.
    consumer.app.consumer_generation_id = 10
    consumer.drain([13])
    assert [o for _, o in consumer.handed_on] == [10, 11, 12]


def test_offsets_without_records_are_passed_over_after_reading_again() -> None:
    """Transaction markers hold offsets with no record: once a fetch made after seeking
    back to the missing offset still begins beyond it, the worker goes on."""
    consumer = Fetching({IN: 20}, position=20)
    read_from_earliest(consumer)
    asyncio.run(consumer.perform_seek())  # type: ignore[attr-defined]
    consumer.drain([20, 22], [22, 23])
    assert [o for _, o in consumer.handed_on] == [20, 22, 23]
    assert consumer.sought[-1] == (IN, 21)
    # The empty offset may be committed past.
    assert [(i.begin, i.end) for i in consumer._gap[IN]] == [(21, 22)]


class FetchingDuringSeek(Fetching):
    """The fetcher runs on while the earliest offsets are asked for after a rebalance."""

    def __init__(self, committed: Mapping[Any, int | None], during: list[int]) -> None:
        super().__init__(committed, position=0)
        self.during = during

    async def earliest_offsets(self, *tps: Any) -> Mapping[Any, int]:
        # From the committed offset seek_to_committed set, in the new generation; the
        # fetch position moves past what it handed on.
        for offset in self.during:
            await self.callback(FakeMessage(IN, offset, self.app.consumer_generation_id))
        self.positions[IN] = self.during[-1] + 1
        return await super().earliest_offsets(*tps)


def test_records_fetched_while_the_seek_runs_are_read_again() -> None:
    """A restarted worker's fetcher read 43-50 of a partition while the seek after its
    first rebalance waited for the broker. Given up then (no generation in force yet),
    they must be read again, not left behind the fetch position until a new record
    happens to arrive."""
    consumer = FetchingDuringSeek({IN: 43}, during=list(range(43, 51)))
    read_from_earliest(consumer)
    asyncio.run(consumer.perform_seek())  # type: ignore[attr-defined]
    assert consumer.handed_on == []
    assert consumer.positions[IN] == 43
    consumer.drain(list(range(43, 51)))
    assert [o for _, o in consumer.handed_on] == list(range(43, 51))


class HandingOnDuringSeek(Fetching):
    """Faust's recovery: the fetcher hands on records while each seek waits for the
    consumer's thread (unless the flow is stopped); after ``perform_seek`` Faust resumes
    the flow, which first empties the streams' queues."""

    async def seek(self, tp: Any, offset: int) -> None:
        await super().seek(tp, offset)
        if self.flow_active:
            for fetched in range(offset, offset + 3):
                await self.callback(FakeMessage(tp, fetched, self.app.consumer_generation_id))
            self.positions[tp] = offset + 3

    def resume(self) -> None:
        self.handed_on.clear()  # flow_control.resume(): every stream queue emptied
        self.resume_flow()


def test_no_record_is_handed_on_while_the_seek_runs() -> None:
    """A restarted worker lost records 43-45 of a partition: handed on while its seek
    ran, emptied from the stream queue by Faust's resume, never read again."""
    consumer = HandingOnDuringSeek({IN: 43}, position=0)
    read_from_earliest(consumer)
    asyncio.run(consumer.perform_seek())  # type: ignore[attr-defined]
    consumer.resume()
    consumer.drain(list(range(consumer.positions[IN], 50)))
    assert [o for _, o in consumer.handed_on] == list(range(43, 50))
