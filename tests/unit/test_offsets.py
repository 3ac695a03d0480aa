"""Where reading starts after a rebalance, and what a commit may cover (agents/offsets.py)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import pytest
from faust.types import TP

from stream_risk.agents.offsets import commit_start, committable, read_from_earliest

IN, CHANGELOG = TP("orders", 0), TP("app-customer-state-changelog", 0)


class FakeTopics:
    def acks_enabled_for(self, topic: str) -> bool:
        return not topic.endswith("-changelog")


class FakeApp:
    topics = FakeTopics()


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
