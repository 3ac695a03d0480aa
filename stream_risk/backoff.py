"""Reconnect pacing: exponential backoff with full jitter, and a bounded log rate.

A client that lost Redis or Kafka waits ``Backoff.next()`` seconds before the
next attempt: a random time up to ``base * 2**failures``, capped. The jitter
keeps many workers that lost the same server from retrying in lock step. An
outage of minutes is then a few dozen attempts, and :class:`LogGate` turns them
into at most one log line per interval (with the count of attempts it
swallowed) instead of one per attempt.

Both take their randomness and clock as arguments, so they are deterministic in
tests:

>>> b = Backoff(base=0.5, cap=8.0, rand=lambda: 1.0)
>>> [b.next() for _ in range(6)]
[0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
>>> b.reset(); b.failures
0
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays between reconnect attempts: full jitter over ``min(cap, base * 2**n)``.

    ``next()`` counts one failure and returns the pause before the next attempt;
    ``reset()`` after a success. With the default ``rand`` a delay is uniform in
    ``[ceiling / 2, ceiling]``, so the pause still grows with every failure.

    >>> b = Backoff(base=1.0, cap=30.0, rand=lambda: 0.0)
    >>> [b.next() for _ in range(3)]
    [0.5, 1.0, 2.0]
    """

    base: float = 0.5
    cap: float = 30.0
    rand: Callable[[], float] = random.random
    failures: int = 0

    def ceiling(self) -> float:
        """The largest pause after the failures counted so far (at least one)."""
        return float(min(self.cap, self.base * 2 ** max(self.failures - 1, 0)))

    def next(self) -> float:
        """Count a failure; the pause before the next attempt."""
        self.failures += 1
        top = self.ceiling()
        # Half fixed, half random: growth stays visible, lock step is broken.
        return top / 2 + self.rand() * top / 2

    def reset(self) -> None:
        """After a success: the next failure starts from ``base`` again."""
        self.failures = 0


@dataclass
class LogGate:
    """At most one log line per ``interval`` seconds for one recurring condition.

    ``allow(now)`` says whether to log now; ``swallowed`` is how many calls were
    refused since the last line (reported in the next one, then reset).

    >>> gate = LogGate(interval=10.0)
    >>> [gate.allow(t) for t in (0.0, 1.0, 5.0, 10.5, 11.0)]
    [True, False, False, True, False]
    >>> gate.allow(30.0), gate.take_swallowed()
    (True, 1)
    """

    interval: float = 10.0
    _last: float | None = field(default=None, repr=False)
    _swallowed: int = field(default=0, repr=False)
    _pending: int = field(default=0, repr=False)

    def allow(self, now: float) -> bool:
        """True when a line may be logged at ``now`` (monotonic seconds)."""
        if self._last is None or now - self._last >= self.interval:
            self._last = now
            self._pending, self._swallowed = self._swallowed, 0
            return True
        self._swallowed += 1
        return False

    def take_swallowed(self) -> int:
        """Lines refused before the one just allowed (0 after the first call)."""
        count, self._pending = self._pending, 0
        return count

    def reset(self) -> None:
        """The condition ended: the next occurrence is logged at once."""
        self._last = None
        self._swallowed = self._pending = 0
