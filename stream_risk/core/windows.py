"""Event-time windows over small sorted record lists.

Records are lists whose first element is the event time (epoch seconds).
Inserting keeps them sorted, so records that arrive out of order within the
allowed lateness give exactly the state in-order arrival gives. Sums and
counts are over the half-open interval ``(now - width, now]``: a record
leaves a 30-day window exactly 30 days after it happened.

>>> records: list[list[float]] = []
>>> insert(records, [20.0, 5.0]), insert(records, [10.0, 3.0])
(0, 0)
>>> records
[[10.0, 3.0], [20.0, 5.0]]
>>> bounds(records, now=25.0, width=10.0)
(1, 2)
>>> window_count(records, now=25.0, width=20.0)
2
>>> expire(records, horizon=10.0), records
([[10.0, 3.0]], [[20.0, 5.0]])
"""

from __future__ import annotations

import bisect
import functools
import operator
from typing import Any

#: The event time of a record (its first field): the key time-ordered records are bisected on.
time_of = operator.itemgetter(0)


def insert(records: list[list[Any]], record: list[Any]) -> int:
    """Insert ``record`` keeping ``records`` sorted by time; ties keep arrival order.

    Returns the index it was inserted at.
    """
    ts = record[0]
    if not records or records[-1][0] <= ts:
        records.append(record)
        return len(records) - 1
    at = bisect.bisect_right(records, ts, key=time_of)
    records.insert(at, record)
    return at


def expire(records: list[list[Any]], horizon: float) -> list[list[Any]]:
    """Drop every record at or before ``horizon``; returns them, oldest first."""
    if not records or records[0][0] > horizon:
        return []
    cut = bisect.bisect_right(records, horizon, key=time_of)
    dropped = records[:cut]
    del records[:cut]
    return dropped


def until(records: list[list[Any]], now: float) -> int:
    """How many records are at or before ``now`` (all, unless some are ahead of it).

    >>> until([[1.0], [5.0], [9.0]], 5.0), until([[1.0], [5.0]], 9.0)
    (2, 2)
    """
    hi = len(records)
    if hi and records[-1][0] > now:
        hi = bisect.bisect_right(records, now, key=time_of)
    return hi


def bounds(records: list[list[Any]], now: float, width: float) -> tuple[int, int]:
    """Index range of the records with ``now - width < time <= now`` (by bisection).

    Sums over it come from :class:`stream_risk.core.running_totals.RunningTotals`.
    """
    hi = until(records, now)
    lo = bisect.bisect_right(records, now - width, 0, hi, key=time_of)
    return lo, hi


def in_window(records: list[list[Any]], now: float, width: float) -> list[list[Any]]:
    """Records with ``now - width < time <= now``, oldest first."""
    lo, hi = bounds(records, now, width)
    return records[lo:hi]


def window_count(records: list[list[Any]], now: float, width: float) -> int:
    lo, hi = bounds(records, now, width)
    return hi - lo


def counts_and_sums(
    records: list[list[Any]], now: float, widths: tuple[float, ...], field: int
) -> tuple[list[int], list[float]]:
    """Count and sum of ``field`` in each window ``(now - width, now]``, newest first.

    The windows are those of :func:`age_bounds`.

    >>> counts_and_sums([[1.0, 2.0], [5.0, 3.0], [9.0, 4.0]], 9.0, (5.0, 10.0), 1)
    ([2, 3], [7.0, 9.0])
    """
    counts: list[int] = []
    sums: list[float] = []
    for lo, hi in age_bounds(records, now, widths):
        counts.append(hi - lo)
        values = map(operator.itemgetter(field), reversed(records[lo:hi]))
        sums.append(functools.reduce(operator.add, values, 0.0))
    return counts, sums


def age_bounds(
    records: list[list[Any]], now: float, widths: tuple[float, ...]
) -> list[tuple[int, int]]:
    """Index range of each window ``(now - width, now]``, by the records' ages.

    A record is in a window when its age ``now - time`` is below the width; records
    at or before ``now`` less the longest width are in none (whatever the rounding
    of the age). The ranges are found by bisection.

    >>> age_bounds([[1.0], [5.0], [9.0], [12.0]], 9.0, (5.0, 10.0))
    [(1, 3), (0, 3)]
    """
    hi = until(records, now)
    first = bisect.bisect_right(records, now - max(widths), 0, hi, key=time_of)
    ranges: list[tuple[int, int]] = []
    for width in widths:
        # The age only grows towards older records: the window is a suffix.
        lo = bisect.bisect_right(records, now - width, first, hi, key=time_of)
        while lo > first and now - records[lo - 1][0] < width:
            lo -= 1
        while lo < hi and not now - records[lo][0] < width:
            lo += 1
        ranges.append((lo, hi))
    return ranges


def slope_per(points: list[tuple[float, float]], unit: float) -> float | None:
    """Least-squares slope of ``(time, value)`` points, per ``unit`` of time.

    >>> slope_per([(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)], unit=1.0)
    2.0
    >>> slope_per([(0.0, 1.0)], unit=1.0) is None
    True
    """
    n = len(points)
    if n < 2:
        return None
    mean_t = sum(p[0] for p in points) / n
    mean_v = sum(p[1] for p in points) / n
    var = sum((p[0] - mean_t) ** 2 for p in points)
    if var == 0:
        return None
    cov = sum((p[0] - mean_t) * (p[1] - mean_v) for p in points)
    return cov / var * unit
