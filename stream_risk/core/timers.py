"""Event-time timers: which customers need an overdue check by when.

A plain min-heap with lazy deletion: re-scheduling a customer pushes a new
entry, and stale entries are skipped when popped. Drivers keep one queue per
partition (Faust) or one for the whole replay.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator


class TimerQueue:
    """Customers ordered by the event time at which they must be advanced.

    >>> q = TimerQueue()
    >>> q.schedule("a", 20.0); q.schedule("b", 10.0); q.schedule("a", 30.0)
    >>> list(q.due(25.0))
    [('b', 10.0)]
    >>> list(q.due(40.0))
    [('a', 30.0)]
    """

    __slots__ = ("_heap", "_wake")

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._wake: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._wake)

    def schedule(self, customer_id: str, wake: float | None) -> None:
        """Wake ``customer_id`` at ``wake`` (replacing an earlier schedule); ``None`` cancels."""
        if wake is None:
            self._wake.pop(customer_id, None)
            return
        if self._wake.get(customer_id) == wake:
            return
        self._wake[customer_id] = wake
        heapq.heappush(self._heap, (wake, customer_id))

    def due(self, now: float) -> Iterator[tuple[str, float]]:
        """Pop and yield ``(customer_id, wake)`` for every timer at or before ``now``."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            wake, customer_id = heapq.heappop(heap)
            if self._wake.get(customer_id) == wake:
                del self._wake[customer_id]
                yield customer_id, wake

    def clear(self) -> None:
        self._heap.clear()
        self._wake.clear()
