"""Event-time alignment of the co-partitioned input topics.

Kafka orders records within a partition, never across topics. A worker owns the
same partition number of every input topic (a *partition group*); the core must
see that group's records in event-time order, or a topic that happened to be read
ahead would make in-order events of the other topics late. So, as Kafka Streams
does for a task's partitions:

- every input partition's fetched records wait in a FIFO (its *head* is the next
  one to apply);
- the group hands out the head with the smallest event time (ties: the input
  topics' order, then the offset), as long as every input either has a record
  buffered or is known to have nothing more on the broker (*caught up*);
- an input with nothing buffered that is known to be behind (the broker holds
  records it has not fetched yet) holds the group back until they arrive, at most
  ``max_behind`` seconds (a safety net, never reached while fetching works: a
  warning says when it is);
- an input with nothing buffered whose position is not known yet holds the group
  back for at most ``max_idle`` seconds; then the buffered records go out anyway.

Each input's wait is timed on its own, from when it began holding the group back
(:func:`hold`): a long wait for one input never shortens the wait for another.

Nothing here talks to Kafka: the caller feeds records with their event time,
asks for the releasable ones, and acknowledges them only once applied, so no
offset is committed for a record still held back.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Generic, TypeVar

import orjson

Item = TypeVar("Item")

log = logging.getLogger(__name__)

#: ``caught_up(topic, partition, next_offset, since)``: True when the broker held
#: nothing from ``next_offset`` on at a fetch answered after ``since`` (when the fetch
#: that brought the record about to be released was answered), False when
#: it holds more, None when not known (``next_offset`` None: nothing of that input
#: fetched yet). See :func:`lag_seen`.
CaughtUp = Callable[[str, int, "int | None", float], "bool | None"]


def lag_seen(
    end: int | None, answered: float | None, next_offset: int, since: float
) -> bool | None:
    """Whether an input with nothing buffered is caught up, from its last fetch answer.

    Parameters
    ----------
    end
        Its end offset (high watermark) in its last fetch answer; None: never answered.
    answered
        Wall-clock time of that answer (seconds); None: never answered.
    next_offset
        The next offset it would hand on.
    since
        Wall-clock time the fetch that brought the waiting record was answered.

    Returns
    -------
    bool or None
        False: the broker holds records not read yet (it is behind, whenever seen);
        True: it held nothing more in an answer later than the waiting record's, so
        nothing produced before that record arrived can be missing (Kafka Streams'
        rule: an input known to be caught up with its end offset is not waited for);
        None: its last answer is the waiting record's own or older, or it has none.

    Examples
    --------
    >>> lag_seen(40, 100.02, 40, 100.0)  # a later fetch found nothing more: caught up
    True
    >>> lag_seen(40, 100.0, 40, 100.0) is None  # the waiting record's own fetch
    True
    >>> lag_seen(41, 99.5, 40, 100.0)
    False
    """
    if end is None or answered is None:
        return None
    if next_offset < end:
        return False
    # Not the answer that brought the waiting record: records produced alongside it on
    # other topics may land just after it (a producer writing several topics sends
    # them one by one). The next answer comes as soon as any record lands, or within
    # the consumer's fetch wait.
    return True if answered > since else None


def event_time(value: bytes | None) -> float | None:
    """The ``occurred_at`` of an encoded event as epoch seconds; None if unreadable.

    Only the ordering needs it; validation stays with the monitor, which turns an
    unreadable event into a dead letter.

    >>> event_time(b'{"occurred_at": "2026-01-01T00:00:00Z"}')
    1767225600.0
    >>> event_time(b'{not json') is None
    True
    >>> event_time(b'{"occurred_at": 5}') is None
    True
    """
    if value is None:
        return None
    try:
        raw = orjson.loads(value)["occurred_at"]
        return datetime.fromisoformat(raw).timestamp()
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError):
        return None


class Hold(Enum):
    """What an input with nothing buffered means for its group's next release."""

    #: Known to have nothing more on the broker: the group goes on without it.
    CAUGHT_UP = "caught up"
    #: Keep the group waiting for it.
    WAIT = "wait"
    #: Its position is still not known after ``max_idle``: the group goes on without it.
    IDLE_EXPIRED = "idle expired"
    #: Known to be behind for ``max_behind`` (its records never came): the group goes on.
    BEHIND_EXPIRED = "behind expired"


def hold(
    caught_up: bool | None,
    waiting_since: float | None,
    now: float,
    max_idle: float,
    max_behind: float,
) -> Hold:
    """Whether an input with nothing buffered holds its group back at ``now``.

    Parameters
    ----------
    caught_up
        True: the broker holds nothing more for it; False: it holds records not
        fetched yet (known lag); None: not known.
    waiting_since
        Monotonic time the input began holding the group back (None: it begins now).
    now
        Monotonic clock reading.
    max_idle, max_behind
        How long an input whose lag is not known, or known to be behind, is waited for.

    Examples
    --------
    >>> hold(True, 0.0, 100.0, 2.0, 60.0)
    <Hold.CAUGHT_UP: 'caught up'>
    >>> hold(None, 0.0, 1.0, 2.0, 60.0)
    <Hold.WAIT: 'wait'>
    >>> hold(None, 0.0, 2.0, 2.0, 60.0)
    <Hold.IDLE_EXPIRED: 'idle expired'>
    >>> hold(False, 0.0, 30.0, 2.0, 60.0)  # records on their way: keep waiting
    <Hold.WAIT: 'wait'>
    >>> hold(False, 0.0, 60.0, 2.0, 60.0)
    <Hold.BEHIND_EXPIRED: 'behind expired'>
    """
    if caught_up is True:
        return Hold.CAUGHT_UP
    waited = 0.0 if waiting_since is None else now - waiting_since
    if caught_up is False:
        return Hold.WAIT if waited < max_behind else Hold.BEHIND_EXPIRED
    return Hold.WAIT if waited < max_idle else Hold.IDLE_EXPIRED


@dataclass(slots=True)
class _Input(Generic[Item]):
    """One input partition's buffered records, oldest first."""

    #: (event time, offset, wall-clock arrival, item)
    records: deque[tuple[float, int, float, Item]] = field(default_factory=deque)
    #: Offset after the last record added (None: nothing fetched yet).
    next_offset: int | None = None
    #: Event time of the last record added: an unreadable record keeps its place.
    last_time: float = float("-inf")
    #: Monotonic time it began holding the group back with nothing buffered (None: not).
    waiting_since: float | None = None
    #: When its current wait ends (None: not waiting, or already gone past).
    deadline: float | None = None
    #: How the group last went on without it during the current wait (said once each).
    passed: Hold | None = None

    def stop_waiting(self) -> None:
        self.waiting_since = None
        self.deadline = None
        self.passed = None


@dataclass(slots=True)
class _Group(Generic[Item]):
    """The inputs of one partition number."""

    inputs: list[_Input[Item]]


class Aligner(Generic[Item]):
    """Buffers the input partitions of each partition number and releases in event-time order.

    Parameters
    ----------
    topics
        The input topics in tie-break order (the order ``replay`` is given files).
    max_idle
        Seconds a group waits for an input with nothing buffered and no known position.
    max_behind
        Seconds a group waits for an input with nothing buffered that is known to be
        behind (its records are on their way).
    max_buffered
        Records per input partition above which :meth:`over_limit` names it, so the
        caller can pause fetching it.

    Examples
    --------
    >>> a: Aligner[str] = Aligner(["orders", "payments"], max_idle=1.0)
    >>> a.add("payments", 0, 0, 20.0, "p@20")
    >>> a.add("orders", 0, 0, 10.0, "o@10")
    >>> a.add("orders", 0, 1, 30.0, "o@30")
    >>> a.release(now=0.0, caught_up=lambda t, p, n, since: False)
    ['o@10', 'p@20']
    >>> a.release(now=0.5, caught_up=lambda t, p, n, since: None)  # payments not known: wait
    []
    >>> a.release(now=1.5, caught_up=lambda t, p, n, since: None)  # waited max_idle
    ['o@30']
    """

    def __init__(
        self,
        topics: Sequence[str],
        max_idle: float,
        max_buffered: int = 5000,
        max_behind: float = 60.0,
    ) -> None:
        self.topics = list(topics)
        self.rank = {topic: n for n, topic in enumerate(self.topics)}
        self.max_idle = max_idle
        self.max_behind = max(max_behind, max_idle)
        self.max_buffered = max_buffered
        self.groups: dict[int, _Group[Item]] = {}

    def _group(self, partition: int) -> _Group[Item]:
        group = self.groups.get(partition)
        if group is None:
            group = self.groups[partition] = _Group([_Input() for _ in self.topics])
        return group

    def add(
        self,
        topic: str,
        partition: int,
        offset: int,
        time: float | None,
        item: Item,
        arrived: float = 0.0,
    ) -> None:
        """Buffer one fetched record; ``time`` None for a record without a readable event time.

        ``arrived`` is the wall clock when it was fetched (see :data:`CaughtUp`).
        """
        source = self._group(partition).inputs[self.rank[topic]]
        if time is None:
            # Unreadable (a dead letter to be): it keeps its place in the partition.
            time = source.last_time
        source.last_time = max(source.last_time, time)
        source.next_offset = offset + 1
        source.records.append((time, offset, arrived, item))
        source.stop_waiting()

    def buffered(self) -> int:
        """Records held back in all groups."""
        return sum(len(s.records) for g in self.groups.values() for s in g.inputs)

    def over_limit(self) -> list[tuple[str, int]]:
        """Input partitions holding more than ``max_buffered`` records."""
        return [
            (self.topics[n], partition)
            for partition, group in self.groups.items()
            for n, source in enumerate(group.inputs)
            if len(source.records) > self.max_buffered
        ]

    def next_offset(self, topic: str, partition: int) -> int | None:
        """The offset after the last record added for an input partition (None: none yet)."""
        group = self.groups.get(partition)
        if group is None:
            return None
        return group.inputs[self.rank[topic]].next_offset

    def under_limit(self, topic: str, partition: int) -> bool:
        """True once the input partition is back to half its limit (resume fetching it)."""
        group = self.groups.get(partition)
        if group is None:
            return True
        return len(group.inputs[self.rank[topic]].records) <= self.max_buffered // 2

    def clear(self, partitions: Iterable[int] | None = None) -> list[Item]:
        """Forget buffered records (all, or of ``partitions``) and return them: never applied."""
        chosen = list(self.groups) if partitions is None else list(partitions)
        dropped: list[Item] = []
        for partition in chosen:
            group = self.groups.pop(partition, None)
            if group is not None:
                dropped.extend(r[3] for source in group.inputs for r in source.records)
        return dropped

    def release(self, now: float, caught_up: CaughtUp, limit: int | None = None) -> list[Item]:
        """The records that may be applied now (at most ``limit``), in the order to apply them.

        ``now`` is a monotonic clock reading (for the idle wait only). What the limit
        leaves stays buffered, in order, for the next call.
        """
        released: list[Item] = []
        cap = limit if limit is not None else float("inf")
        for partition, group in self.groups.items():
            if len(released) >= cap:
                break
            self._release_group(partition, group, now, caught_up, released, cap)
        return released

    def _release_group(
        self,
        partition: int,
        group: _Group[Item],
        now: float,
        caught_up: CaughtUp,
        out: list[Item],
        cap: float,
    ) -> None:
        inputs = group.inputs
        while len(out) < cap:
            best: _Input[Item] | None = None
            best_key: tuple[float, int, int] = (float("inf"), 0, 0)
            for n, source in enumerate(inputs):
                if source.records:
                    time, offset, _, _ = source.records[0]
                    key = (time, n, offset)
                    if best is None or key < best_key:
                        best, best_key = source, key
            if best is None:
                for source in inputs:
                    source.stop_waiting()
                return
            arrived = best.records[0][2]
            blocked = False
            for n, source in enumerate(inputs):
                if not source.records:
                    known = caught_up(self.topics[n], partition, source.next_offset, arrived)
                    if self._holds(partition, n, source, known, now):
                        blocked = True
            if blocked:
                return
            out.append(best.records.popleft()[3])

    def _holds(
        self, partition: int, n: int, source: _Input[Item], known: bool | None, now: float
    ) -> bool:
        """Whether the empty input ``n`` holds its group back; says when the group goes on."""
        verdict = hold(known, source.waiting_since, now, self.max_idle, self.max_behind)
        if verdict is Hold.CAUGHT_UP:
            source.stop_waiting()
            return False
        if source.waiting_since is None:
            source.waiting_since = now
        if verdict is Hold.WAIT:
            patience = self.max_behind if known is False else self.max_idle
            source.deadline = source.waiting_since + patience
            return True
        source.deadline = None
        if source.passed is not verdict:
            source.passed = verdict
            waited = now - source.waiting_since
            if verdict is Hold.BEHIND_EXPIRED:
                log.warning(
                    "%s[%d] is behind (broker holds records from offset %s on) but nothing "
                    "came in %.1f s; its group goes on without it, so its records may "
                    "arrive late",
                    self.topics[n],
                    partition,
                    source.next_offset,
                    waited,
                )
            else:
                log.info(
                    "%s[%d] has nothing fetched and its lag is not known after %.1f s "
                    "(next offset %s); its group goes on without it",
                    self.topics[n],
                    partition,
                    waited,
                    source.next_offset,
                )
        return False

    def next_deadline(self) -> float | None:
        """Monotonic time at which an input's wait ends (None: no group waits)."""
        waits = [
            source.deadline
            for group in self.groups.values()
            for source in group.inputs
            if source.deadline is not None
        ]
        return min(waits) if waits else None
