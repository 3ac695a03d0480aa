"""The batch intake: Faust's fetch loop, with the input topics' records handed on in batches."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable
from types import SimpleNamespace
from typing import Any

import faust
import pytest

from stream_risk.agents.app import WorkerApp
from stream_risk.agents.intake import _CONSUMER_PARTS as _PARTS
from stream_risk.agents.intake import can_drain_in_batches, drain_in_batches

TP = faust.types.TP


class _Message:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.tp = TP(topic, partition)


class _Event:
    def __init__(self) -> None:
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True

    async def wait(self) -> None:
        await asyncio.Future()  # never set while the loop runs


class _Topics:
    def acks_enabled_for(self, topic: str) -> bool:
        return True


class _App:
    topics = _Topics()
    should_stop = False


class _Transport:
    app = _App()


class _Fetcher:
    def __init__(self) -> None:
        self._stopped = _Event()


class _Consumer:
    """What :func:`drain_in_batches` uses of Faust's consumer, answering ``answers``."""

    consumer_stopped_errors = (ConnectionError,)

    def __init__(self, answers: list[list[_Message]], fetcher: _Fetcher, commit_every: int) -> None:
        self.answers = answers
        self.fetcher = fetcher
        self.app = _App()
        self.transport = _Transport()
        self._read_offset: defaultdict[Any, int | None] = defaultdict(lambda: None)
        self._commit_every = commit_every
        self._n_acked = 0
        self._stopped = _Event()
        self.suspend_flow = _Event()
        self.should_stop = False
        self.tracked: list[tuple[str, int]] = []
        self.called: list[tuple[str, int]] = []
        self.gaps: list[tuple[Any, int, int]] = []
        self.commits = 0

    async def callback(self, message: _Message) -> None:
        self.called.append((message.topic, message.offset))

    async def wait_first(self, *coros: Awaitable[Any]) -> None:
        # Faust's waits for the first to finish: the callback, in these tests.
        first, *others = coros
        await first
        for other in others:
            getattr(other, "close", lambda: None)()

    def track_message(self, message: _Message) -> None:
        self.tracked.append((message.topic, message.offset))

    async def commit(self) -> None:
        self.commits += 1

    async def _add_gap(self, tp: Any, start: int, end: int) -> None:
        self.gaps.append((tp, start, end))

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, _Message]]:
        if not self.answers:
            self.fetcher._stopped.set()  # the last answer: the fetcher stops after it
            return
        for message in self.answers.pop(0):
            yield message.tp, message


def _drain(
    answers: list[list[_Message]], commit_every: int = 1000, batch_size: int = 1000
) -> tuple[_Consumer, list[Any]]:
    fetcher = _Fetcher()
    consumer = _Consumer(answers, fetcher, commit_every)
    delivered: list[Any] = []

    async def deliver(batch: list[Any]) -> None:
        delivered.append([(m.topic, m.offset) for m in batch])
        consumer._n_acked += len(batch)  # the monitor acknowledges what it applied

    routes = dict.fromkeys(["orders", "payments"], deliver)
    asyncio.run(drain_in_batches(consumer, fetcher, routes, batch_size))
    return consumer, delivered


def test_input_records_go_on_together_and_others_one_by_one_through_faust() -> None:
    answer = [
        _Message("orders", 0, 0),
        _Message("training", 0, 0),
        _Message("payments", 0, 0),
        _Message("orders", 0, 1),
    ]
    consumer, delivered = _drain([answer, [_Message("orders", 0, 2)]])
    assert delivered == [
        [("orders", 0), ("payments", 0), ("orders", 1)],
        [("orders", 2)],
    ]
    assert consumer.called == [("training", 0)]
    # Tracked as Faust's streams track them: a stopping worker waits for their acks.
    assert consumer.tracked == [("orders", 0), ("payments", 0), ("orders", 1), ("orders", 2)]
    assert consumer._read_offset[TP("orders", 0)] == 2


def test_each_route_gets_its_own_topics_records_in_fetch_order() -> None:
    fetcher = _Fetcher()
    answer = [
        _Message("orders", 0, 0),
        _Message("profiles", 1, 5),
        _Message("orders", 1, 0),
        _Message("warnings", 0, 2),
        _Message("training", 0, 0),
    ]
    consumer = _Consumer([answer], fetcher, 1000)
    got: dict[str, list[Any]] = {"monitor": [], "publisher": []}

    def reader(name: str) -> Any:
        async def deliver(batch: list[Any]) -> None:
            got[name].append([(m.topic, m.offset) for m in batch])

        return deliver

    routes = dict.fromkeys(["orders"], reader("monitor"))
    routes.update(dict.fromkeys(["profiles", "warnings"], reader("publisher")))
    asyncio.run(drain_in_batches(consumer, fetcher, routes))
    assert got == {
        "monitor": [[("orders", 0), ("orders", 0)]],
        "publisher": [[("profiles", 5), ("warnings", 2)]],
    }
    assert consumer.called == [("training", 0)]


def test_a_large_answer_goes_on_in_batches_of_at_most_batch_size() -> None:
    answer = [_Message("orders", 0, n) for n in range(5)] + [_Message("training", 0, 0)]
    consumer, delivered = _drain([answer], batch_size=2)
    assert delivered == [
        [("orders", 0), ("orders", 1)],
        [("orders", 2), ("orders", 3)],
        [("orders", 4)],
    ]
    assert consumer.called == [("training", 0)]


def test_records_before_the_read_offset_are_dropped_and_gaps_are_noted() -> None:
    consumer, delivered = _drain(
        [[_Message("orders", 0, 4)], [_Message("orders", 0, 3), _Message("orders", 0, 9)]]
    )
    assert delivered == [[("orders", 4)], [("orders", 9)]]
    # 5 to 8 hold no record (compaction, transaction markers): the commit passes them.
    assert consumer.gaps == [(TP("orders", 0), 5, 9)]


def test_offsets_are_committed_every_commit_every_acknowledgements() -> None:
    answers = [[_Message("orders", 0, n)] for n in range(5)]
    consumer, delivered = _drain(answers, commit_every=2)
    assert len(delivered) == 5
    # Checked before each record, as Faust checks: after two acks, then two more.
    assert consumer.commits == 2


@pytest.mark.parametrize("missing", ["track_message", "_read_offset", "callback", "_n_acked"])
def test_a_consumer_without_what_the_loop_uses_is_left_to_faust(missing: str) -> None:
    """Another Faust version's consumer keeps Faust's own fetch loop."""
    parts = {name: object() for name in _PARTS}
    assert can_drain_in_batches(SimpleNamespace(**parts))
    del parts[missing]
    assert not can_drain_in_batches(SimpleNamespace(**parts))


def test_faust_s_consumer_has_what_the_loop_uses() -> None:
    """The installed Faust's consumer class, as the worker's app creates it."""
    app = faust.App("intake-probe", broker="kafka://localhost:1")
    assert can_drain_in_batches(app.consumer)


def test_the_worker_app_s_consumer_fetches_with_the_batch_loop() -> None:
    """Routed topics go to their reader: the worker's consumer runs the batch loop."""
    app = WorkerApp("intake-probe", broker="kafka://localhost:1")
    delivered: list[Any] = []

    async def deliver(batch: list[Any]) -> None:
        delivered.append(batch)

    app.route(["orders"], deliver)
    consumer = app.consumer
    fetcher = _Fetcher()
    stand_in = _Consumer([[_Message("orders", 0, 0), _Message("orders", 0, 1)]], fetcher, 1000)
    # The installed loop drains the real consumer; run it on a stand-in's answers.
    for name in ("getmany", "track_message", "_read_offset", "_stopped"):
        setattr(consumer, name, getattr(stand_in, name))
    asyncio.run(consumer._drain_messages(fetcher))
    assert [[(m.topic, m.offset) for m in batch] for batch in delivered] == [
        [("orders", 0), ("orders", 1)]
    ]
