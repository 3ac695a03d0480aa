"""Exact running totals: the sum, mean and standard deviation of any range in O(1).

A windowed sum recomputed from its records costs as many additions as the window
holds records, on every evaluation. Prefix sums make it two look-ups and a
subtraction, but prefix sums of floats lose what a subtraction of two large totals
cancels. Here every value is held exactly, as an integer count of ``2**-shift``
(a float is a binary fraction, so some ``shift`` makes every value an integer), and
the prefix sums of the values and of their squares are Python integers: a range's
total is exact, and one division rounds it once, correctly.

So a sum does not depend on the order of its terms (a plain float loop does, and
the built-in ``sum`` of floats compensates from Python 3.12 on but not before), and
the standard deviation of equal values is exactly 0 (a two-pass float computation
leaves a residue that would turn the z-score of a repeat order into noise).

>>> totals = RunningTotals([0.1, 0.2, 0.3])
>>> totals.total(0, 3), 0.1 + 0.2 + 0.3
(0.6, 0.6000000000000001)
>>> totals.mean_std(0, 3)[0]
0.2
>>> totals.drop_front(1); totals.append(0.4); totals.total(0, 3)
0.9
>>> RunningTotals([5.0, 5.0, 5.0]).mean_std(0, 3)
(5.0, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def _exact(value: float) -> tuple[int, int]:
    """``value`` as ``(numerator, exponent)`` with ``value == numerator / 2**exponent``."""
    numerator, denominator = value.as_integer_ratio()
    return numerator, denominator.bit_length() - 1


class RunningTotals:
    """Prefix sums of a sequence of floats and of their squares, held exactly.

    Indices are those of the sequence: ``total(lo, hi)`` is the sum of the values at
    ``lo`` up to, not including, ``hi``. Appending is O(1); dropping values from the
    front is a slice deletion; inserting is O(values after the insertion point).

    Parameters
    ----------
    values
        The initial sequence.

    Examples
    --------
    >>> totals = RunningTotals([1.0, 2.0])
    >>> totals.insert(1, 4.0); len(totals), totals.total(1, 3)
    (3, 6.0)
    >>> totals.mean_std(0, 3)
    (2.3333333333333335, 1.5275252316519468)
    >>> totals.mean_std(1, 1)
    (None, None)
    """

    __slots__ = ("_shift", "_squares", "_sums")

    def __init__(self, values: Iterable[float] = ()) -> None:
        self._shift = 0
        self._sums = [0]
        self._squares = [0]
        for value in values:
            self.append(value)

    def __len__(self) -> int:
        return len(self._sums) - 1

    def _scaled(self, value: float) -> int:
        """``value`` in units of ``2**-shift``, finer units first if it needs them."""
        numerator, exponent = _exact(value)
        if exponent > self._shift:
            grow = exponent - self._shift
            self._sums = [s << grow for s in self._sums]
            self._squares = [s << (2 * grow) for s in self._squares]
            self._shift = exponent
        return numerator << (self._shift - exponent)

    def append(self, value: float) -> None:
        x = self._scaled(value)
        self._sums.append(self._sums[-1] + x)
        self._squares.append(self._squares[-1] + x * x)

    def insert(self, index: int, value: float) -> None:
        """Insert ``value`` before the value at ``index`` (as ``list.insert``)."""
        x = self._scaled(value)
        sums, squares = self._sums, self._squares
        at = index + 1
        sums[at:] = [sums[index] + x] + [s + x for s in sums[at:]]
        squares[at:] = [squares[index] + x * x] + [s + x * x for s in squares[at:]]

    def drop_front(self, count: int) -> None:
        """Forget the first ``count`` values (the sums are differences: the origin moves)."""
        del self._sums[:count]
        del self._squares[:count]

    def total(self, lo: int, hi: int) -> float:
        """The sum of the values from ``lo`` up to ``hi``, exactly rounded."""
        return (self._sums[hi] - self._sums[lo]) / (1 << self._shift)

    def mean_std(self, lo: int, hi: int) -> tuple[float | None, float | None]:
        """Mean and sample standard deviation (n - 1) of the values from ``lo`` up to ``hi``.

        The mean and the variance are exactly rounded; the deviation is the square
        root of that variance. ``None`` where there are too few values.
        """
        n = hi - lo
        if n < 1:
            return None, None
        s1 = self._sums[hi] - self._sums[lo]
        mean = s1 / (n << self._shift)
        if n < 2:
            return mean, None
        s2 = self._squares[hi] - self._squares[lo]
        variance = (n * s2 - s1 * s1) / ((n * (n - 1)) << (2 * self._shift))
        return mean, math.sqrt(variance)
