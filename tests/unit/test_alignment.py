"""Event-time alignment of the input topics of one partition number."""

from __future__ import annotations

import random

import pytest

from stream_risk.agents.alignment import Aligner, Hold, event_time, hold, lag_seen

TOPICS = ["orders", "payments", "statements"]


def never(topic: str, partition: int, next_offset: int | None, since: float) -> bool:
    return False


def unknown(topic: str, partition: int, next_offset: int | None, since: float) -> None:
    return None


def always(topic: str, partition: int, next_offset: int | None, since: float) -> bool:
    return True


def test_release_merges_in_event_time_order_whatever_the_fetch_order() -> None:
    rng = random.Random(7)
    streams = {t: sorted(rng.uniform(0, 1000) for _ in range(200)) for t in TOPICS}
    aligner: Aligner[tuple[str, float]] = Aligner(TOPICS, max_idle=10.0)
    # One topic fetched entirely first, the others in small interleaved chunks.
    for offset, ts in enumerate(streams["statements"]):
        aligner.add("statements", 0, offset, ts, ("statements", ts))
    out: list[tuple[str, float]] = aligner.release(0.0, never)
    pos = {t: 0 for t in TOPICS}
    while pos["orders"] < 200 or pos["payments"] < 200:
        for t in ("orders", "payments"):
            for _ in range(rng.randint(0, 7)):
                if pos[t] < 200:
                    aligner.add(t, 0, pos[t], streams[t][pos[t]], (t, streams[t][pos[t]]))
                    pos[t] += 1
        out += aligner.release(0.0, never)
    out += aligner.release(0.0, always)
    assert len(out) == 600
    assert [ts for _, ts in out] == sorted(ts for s in streams.values() for ts in s)


def test_an_input_not_known_holds_the_group_for_max_idle_only() -> None:
    aligner: Aligner[str] = Aligner(TOPICS, max_idle=2.0)
    aligner.add("orders", 0, 0, 10.0, "o")
    assert aligner.release(100.0, unknown) == []
    assert aligner.next_deadline() == 102.0
    assert aligner.release(101.9, unknown) == []
    assert aligner.release(102.0, unknown) == ["o"]
    assert aligner.next_deadline() is None


def test_an_input_known_to_be_behind_holds_the_group_until_max_behind() -> None:
    aligner: Aligner[str] = Aligner(TOPICS, max_idle=2.0, max_behind=30.0)
    aligner.add("orders", 0, 0, 10.0, "o")
    assert aligner.release(100.0, never) == []
    assert aligner.release(110.0, never) == []
    assert aligner.next_deadline() == 130.0
    assert aligner.release(130.0, never) == ["o"]


def test_caught_up_inputs_do_not_hold_the_group() -> None:
    aligner: Aligner[str] = Aligner(TOPICS, max_idle=60.0)
    aligner.add("orders", 0, 5, 10.0, "o", arrived=1234.5)
    seen: list[tuple[str, int, int | None, float]] = []

    def caught_up(topic: str, partition: int, next_offset: int | None, since: float) -> bool:
        seen.append((topic, partition, next_offset, since))
        return True

    assert aligner.release(0.0, caught_up) == ["o"]
    assert ("payments", 0, None, 1234.5) in seen


def test_partition_groups_are_independent() -> None:
    aligner: Aligner[str] = Aligner(TOPICS, max_idle=60.0)
    aligner.add("orders", 0, 0, 50.0, "p0")
    aligner.add("orders", 1, 0, 10.0, "p1")

    def only_partition_1(topic: str, partition: int, next_offset: int | None, since: float) -> bool:
        return partition == 1

    assert aligner.release(0.0, only_partition_1) == ["p1"]


@pytest.mark.parametrize(
    ("adds", "expected"),
    [
        # ties across topics: the topics' order, as replay's file order
        ([("payments", 0, 5.0, "p"), ("orders", 0, 5.0, "o")], ["o", "p"]),
        # an unreadable record keeps its place behind its partition's earlier records
        (
            [("orders", 0, 5.0, "o"), ("orders", 1, None, "bad"), ("payments", 0, 1.0, "p")],
            ["p", "o", "bad"],
        ),
        # a record behind its own partition is still handed out in its partition's order
        (
            [("orders", 0, 9.0, "o9"), ("orders", 1, 3.0, "o3"), ("payments", 0, 4.0, "p4")],
            ["p4", "o9", "o3"],
        ),
    ],
)
def test_order_of_heads(
    adds: list[tuple[str, int, float | None, str]], expected: list[str]
) -> None:
    aligner: Aligner[str] = Aligner(TOPICS, max_idle=60.0)
    for topic, offset, ts, item in adds:
        aligner.add(topic, 0, offset, ts, item)
    assert aligner.release(0.0, always) == expected


def test_buffer_limits_and_clear() -> None:
    aligner: Aligner[int] = Aligner(TOPICS, max_idle=60.0, max_buffered=4)
    for n in range(5):
        aligner.add("orders", 3, n, float(n), n)
    assert aligner.over_limit() == [("orders", 3)]
    assert not aligner.under_limit("orders", 3)
    assert aligner.buffered() == 5
    assert sorted(aligner.clear([3])) == [0, 1, 2, 3, 4]
    assert aligner.buffered() == 0
    assert aligner.under_limit("orders", 3)


def test_event_time_reads_occurred_at_only() -> None:
    assert event_time(b'{"occurred_at": "2026-01-01T01:00:00+01:00", "x": 1}') == 1767225600.0
    assert event_time(None) is None
    assert event_time(b"[]") is None
    assert event_time(b'{"occurred_at": "yesterday"}') is None


def test_release_limit_keeps_the_rest_in_order() -> None:
    aligner: Aligner[int] = Aligner(TOPICS, max_idle=60.0)
    for n in range(10):
        aligner.add(TOPICS[n % 3], n % 2, n, float(n), n)
    first = aligner.release(0.0, always, limit=4)
    assert len(first) == 4
    rest = aligner.release(0.0, always)
    assert sorted(first + rest) == list(range(10))
    by_partition = [[n for n in first + rest if n % 2 == p] for p in (0, 1)]
    assert all(part == sorted(part) for part in by_partition)


@pytest.mark.parametrize(
    ("caught_up", "waiting_since", "now", "expected"),
    [
        # Known to have nothing more: never waited for, however long or short.
        (True, None, 0.0, Hold.CAUGHT_UP),
        (True, 0.0, 1000.0, Hold.CAUGHT_UP),
        # Lag not known: waited for up to max_idle (2 s), then the group goes on.
        (None, None, 50.0, Hold.WAIT),
        (None, 10.0, 11.9, Hold.WAIT),
        (None, 10.0, 12.0, Hold.IDLE_EXPIRED),
        (None, 10.0, 500.0, Hold.IDLE_EXPIRED),
        # Known unread records on the broker: waited for well past max_idle ...
        (False, None, 50.0, Hold.WAIT),
        (False, 10.0, 12.0, Hold.WAIT),
        (False, 10.0, 69.9, Hold.WAIT),
        # ... up to the max_behind cap (60 s), so a stuck partition cannot stall the rest.
        (False, 10.0, 70.0, Hold.BEHIND_EXPIRED),
    ],
)
def test_hold_decides_from_the_inputs_lag_and_how_long_it_held_the_group(
    caught_up: bool | None, waiting_since: float | None, now: float, expected: Hold
) -> None:
    assert hold(caught_up, waiting_since, now, max_idle=2.0, max_behind=60.0) is expected


def test_a_long_wait_for_one_input_does_not_cut_short_the_wait_for_another() -> None:
    aligner: Aligner[str] = Aligner(TOPICS, max_idle=2.0, max_behind=60.0)
    status: dict[str, bool | None] = {"payments": False, "statements": True}

    def known(topic: str, partition: int, next_offset: int | None, since: float) -> bool | None:
        return status[topic]

    aligner.add("orders", 0, 0, 10.0, "o@10")
    assert aligner.release(100.0, known) == []  # payments behind: wait
    assert aligner.release(130.0, known) == []
    # payments' records arrive; then statements' lag becomes unknown and it is empty.
    aligner.add("payments", 0, 0, 5.0, "p@5")
    status["statements"] = None
    assert aligner.release(130.0, known) == []  # statements' wait starts now, not at 100
    assert aligner.next_deadline() == 132.0
    assert aligner.release(131.9, known) == []
    assert aligner.release(132.0, known) == ["p@5"]


def test_an_input_whose_lag_becomes_known_is_waited_for_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    aligner: Aligner[str] = Aligner(TOPICS, max_idle=2.0, max_behind=60.0)
    status: dict[str, bool | None] = {"payments": None, "statements": True}

    def known(topic: str, partition: int, next_offset: int | None, since: float) -> bool | None:
        return status[topic]

    aligner.add("orders", 0, 0, 10.0, "o@10")
    aligner.add("orders", 0, 1, 20.0, "o@20")
    assert aligner.release(100.0, known) == []
    with caplog.at_level("INFO", logger="stream_risk.agents.alignment"):
        assert aligner.release(102.0, known, limit=1) == ["o@10"]
    assert "payments[0] has nothing fetched and its lag is not known" in caplog.text
    status["payments"] = False  # now known to have unread records: hold o@20 for them
    assert aligner.release(103.0, known) == []
    assert aligner.next_deadline() == 160.0
    with caplog.at_level("WARNING", logger="stream_risk.agents.alignment"):
        assert aligner.release(160.0, known) == ["o@20"]
    assert "payments[0] is behind" in caplog.text


@pytest.mark.parametrize(
    ("end", "answered", "next_offset", "since", "expected"),
    [
        # Never answered: not known.
        (None, None, 0, 100.0, None),
        (40, None, 40, 100.0, None),
        # Nothing more on the broker in a fetch answered after the waiting record's.
        (40, 100.5, 40, 100.0, True),
        (0, 100.001, 0, 100.0, True),
        # The waiting record's own answer, or an older one: records produced alongside
        # it may land just after it.
        (40, 100.0, 40, 100.0, None),
        (0, 100.0, 0, 100.0, None),
        (40, 99.999, 40, 100.0, None),
        # Records not read yet: behind, however old the answer.
        (41, 99.0, 40, 100.0, False),
        (41, 101.0, 40, 100.0, False),
    ],
)
def test_lag_seen_takes_an_input_as_caught_up_only_from_a_fresh_enough_answer(
    end: int | None, answered: float | None, next_offset: int, since: float, expected: bool | None
) -> None:
    assert lag_seen(end, answered, next_offset, since) is expected
