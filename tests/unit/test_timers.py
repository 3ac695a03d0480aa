"""TimerQueue: event-time wake-ups with rescheduling and cancel."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_risk.core.timers import TimerQueue


def drain(q: TimerQueue, now: float) -> list[tuple[str, float]]:
    return list(q.due(now))


def test_schedule_and_due_in_time_order() -> None:
    q = TimerQueue()
    q.schedule("b", 20.0)
    q.schedule("a", 10.0)
    q.schedule("c", 30.0)
    assert len(q) == 3
    assert drain(q, 5.0) == []
    assert drain(q, 20.0) == [("a", 10.0), ("b", 20.0)]  # at or before now
    assert len(q) == 1
    assert drain(q, 20.0) == []  # popped timers do not fire twice
    assert drain(q, 100.0) == [("c", 30.0)]
    assert len(q) == 0


def test_ties_fire_in_customer_order() -> None:
    q = TimerQueue()
    for cid in ["m", "z", "a"]:
        q.schedule(cid, 7.0)
    assert drain(q, 7.0) == [("a", 7.0), ("m", 7.0), ("z", 7.0)]


def test_reschedule_later_replaces_earlier() -> None:
    q = TimerQueue()
    q.schedule("a", 10.0)
    q.schedule("a", 30.0)
    assert len(q) == 1
    assert drain(q, 20.0) == []
    assert drain(q, 30.0) == [("a", 30.0)]
    assert drain(q, 1000.0) == []


def test_reschedule_earlier_replaces_later() -> None:
    q = TimerQueue()
    q.schedule("a", 30.0)
    q.schedule("a", 10.0)
    assert drain(q, 10.0) == [("a", 10.0)]
    assert drain(q, 1000.0) == []  # the stale 30.0 entry is gone


def test_reschedule_back_to_an_old_time_fires_once() -> None:
    q = TimerQueue()
    q.schedule("a", 10.0)
    q.schedule("a", 20.0)
    q.schedule("a", 10.0)
    q.schedule("a", 10.0)
    assert len(q) == 1
    assert drain(q, 50.0) == [("a", 10.0)]
    assert len(q) == 0


def test_cancel() -> None:
    q = TimerQueue()
    q.schedule("a", 10.0)
    q.schedule("b", 10.0)
    q.schedule("a", None)
    q.schedule("nobody", None)  # cancelling nothing is fine
    assert len(q) == 1
    assert drain(q, 50.0) == [("b", 10.0)]


def test_cancel_then_schedule_same_time_fires_once() -> None:
    q = TimerQueue()
    q.schedule("a", 10.0)
    q.schedule("a", None)
    q.schedule("a", 10.0)
    assert drain(q, 10.0) == [("a", 10.0)]
    assert drain(q, 10.0) == []


def test_schedule_again_after_firing() -> None:
    q = TimerQueue()
    q.schedule("a", 10.0)
    assert drain(q, 10.0) == [("a", 10.0)]
    q.schedule("a", 10.0)
    assert len(q) == 1
    assert drain(q, 10.0) == [("a", 10.0)]


def test_rescheduling_while_draining_fires_again_if_due() -> None:
    """Drivers re-schedule a customer inside the loop (daily overdue checks): a new wake-up
    at or before ``now`` must still fire in the same drain, in time order."""
    q = TimerQueue()
    q.schedule("a", 1.0)
    q.schedule("b", 2.5)
    fired = []
    for cid, wake in q.due(4.0):
        fired.append((cid, wake))
        if cid == "a":
            q.schedule("a", wake + 1.0)
    assert fired == [("a", 1.0), ("a", 2.0), ("b", 2.5), ("a", 3.0), ("a", 4.0)]
    assert len(q) == 1
    assert drain(q, 5.0) == [("a", 5.0)]


def test_clear() -> None:
    q = TimerQueue()
    q.schedule("a", 1.0)
    q.clear()
    assert len(q) == 0
    assert drain(q, 100.0) == []


# ------------------------------------------------------------------ property test


class NaiveTimers:
    """Reference: a dict, and a linear scan for the earliest (wake, customer)."""

    def __init__(self) -> None:
        self.wake: dict[str, float] = {}

    def schedule(self, cid: str, wake: float | None) -> None:
        if wake is None:
            self.wake.pop(cid, None)
        else:
            self.wake[cid] = wake

    def due(self, now: float) -> Iterator[tuple[str, float]]:
        while True:
            ready = [(w, c) for c, w in self.wake.items() if w <= now]
            if not ready:
                return
            w, c = min(ready)
            del self.wake[c]
            yield c, w


CIDS = st.sampled_from(["a", "b", "c", "d"])
TIMES = st.integers(0, 40).map(float)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("schedule"), CIDS, st.none() | TIMES),
        # drain up to `now`; for each fired customer optionally re-schedule it `delta` later
        st.tuples(st.just("due"), TIMES, st.none() | st.integers(1, 15).map(float)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_timer_queue_matches_naive_reference(ops: list[tuple[Any, ...]]) -> None:
    real, ref = TimerQueue(), NaiveTimers()
    for op in ops:
        if op[0] == "schedule":
            _, cid, wake = op
            real.schedule(cid, wake)
            ref.schedule(cid, wake)
        else:
            _, now, delta = op
            got, want = [], []
            for queue, out in ((real, got), (ref, want)):
                for cid, wake in queue.due(now):
                    out.append((cid, wake))
                    if delta is not None:
                        queue.schedule(cid, wake + delta)
            assert got == want
        assert len(real) == len(ref.wake)
