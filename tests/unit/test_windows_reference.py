"""Windowed aggregates by bisection against a direct computation, on every prefix of random
record sequences arriving out of order within the allowed lateness, with expiry."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_risk.core import windows
from stream_risk.core.features import (
    DAY,
    _latest_zscore,
    exposure_at,
    exposures_at,
)
from stream_risk.core.running_totals import RunningTotals
from stream_risk.core.state import CustomerState

LATENESS = 7.0
WIDTHS = (7.0, 30.0, 90.0)

#: (time, amount) records; times in days, some equal (ties keep arrival order).
records = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=400).map(lambda t: t / 2),
        st.floats(min_value=0.01, max_value=1e6, allow_nan=False),
    ),
    max_size=60,
)


def arrival(items: list[tuple[float, float]], delays: list[float]) -> list[list[Any]]:
    """Records in arrival order: each one late by its delay, at most the allowed lateness."""
    order = sorted(range(len(items)), key=lambda i: (items[i][0] + delays[i], i))
    return [[items[i][0], items[i][1], i] for i in order]


def direct(recs: list[list[Any]], now: float, width: float) -> list[list[Any]]:
    """Records in ``(now - width, now]``, oldest first, ties in arrival order."""
    return sorted((r for r in recs if now - width < r[0] <= now), key=lambda r: r[0])


@settings(max_examples=150, deadline=None)
@given(records, st.data())
def test_windows_match_a_direct_computation_on_every_prefix(
    items: list[tuple[float, float]], data: st.DataObject
) -> None:
    delays = data.draw(
        st.lists(
            st.floats(min_value=0.0, max_value=LATENESS),
            min_size=len(items),
            max_size=len(items),
        )
    )
    kept: list[list[Any]] = []
    applied: list[list[Any]] = []
    for rec in arrival(items, delays):
        windows.insert(kept, rec)
        applied.append(rec)
        latest = max(r[0] for r in applied)
        horizon = latest - max(WIDTHS) - LATENESS
        windows.expire(kept, horizon)
        assert [r[0] for r in kept] == sorted(r[0] for r in kept)
        for now in (latest, latest - 3.5, latest + 10.0, latest + 95.0):
            for width in WIDTHS:
                if now - width < horizon:
                    continue  # expired records may be in this window: not kept
                want = direct(applied, now, width)
                assert windows.in_window(kept, now, width) == want
                assert windows.window_count(kept, now, width) == len(want)
                lo, hi = windows.bounds(kept, now, width)
                assert kept[lo:hi] == want
            counts, sums = windows.counts_and_sums(kept, now, WIDTHS, 1)
            if now - max(WIDTHS) >= horizon:
                assert counts == [len(direct(applied, now, w)) for w in WIDTHS]
                for got, w in zip(sums, WIDTHS, strict=True):
                    want_sum = sum(r[1] for r in direct(applied, now, w))
                    assert math.isclose(got, want_sum, rel_tol=1e-9, abs_tol=1e-9)


def reference_zscore(orders: list[list[Any]], now: float) -> float | None:
    """The z-score of the latest order as the feature defines it, by filtering copies."""
    current = [o for o in orders if o[0] <= now]
    if len(current) < 4:
        return None
    latest = current[-1]
    if latest[0] <= now - 90 * DAY:
        return None
    baseline = [o[1] for o in current[:-1] if o[0] > latest[0] - 90 * DAY]
    if len(baseline) < 3:
        return None
    mean, std = exact_mean_std(baseline)
    if not std:
        return None
    return float((latest[1] - mean) / std)


def exact_mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample deviation from the exactly rounded mean and variance, by fractions."""
    exact = [Fraction(v) for v in values]
    mean = sum(exact, Fraction(0)) / len(exact)
    variance = sum(((v - mean) ** 2 for v in exact), Fraction(0)) / (len(exact) - 1)
    return float(mean), math.sqrt(float(variance))


@settings(max_examples=150, deadline=None)
@given(records)
def test_latest_order_zscore_matches_the_definition(items: list[tuple[float, float]]) -> None:
    orders: list[list[Any]] = []
    for t, amount in items:
        windows.insert(orders, [t * DAY, amount, "o"])
        for now in (orders[-1][0], t * DAY, t * DAY + 45 * DAY, t * DAY + 100 * DAY):
            totals = RunningTotals(o[1] for o in orders)
            assert _latest_zscore(orders, now, totals) == reference_zscore(orders, now)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=150),
            st.floats(min_value=-1e5, max_value=1e5, allow_nan=False),
        ),
        max_size=40,
    ),
    st.floats(min_value=-1e4, max_value=1e4, allow_nan=False),
    st.integers(min_value=0, max_value=200),
)
def test_exposures_in_one_walk_are_the_exposures_one_by_one(
    deltas: list[tuple[int, float]], base: float, today: int
) -> None:
    state = CustomerState("c", invoiced=True, ledger_base=base)
    for day, delta in sorted(deltas, key=lambda d: d[0]):
        if state.ledger and state.ledger[-1][0] == day:
            state.ledger[-1][1] += delta
        else:
            state.ledger.append([day, delta])
    now = today * DAY + 0.5 * DAY
    times = (now - 90 * DAY, now - 30 * DAY, now)
    assert exposures_at(state, times) == [exposure_at(state, t) for t in times]
    # exposure_at itself: the ledger's base plus every change up to that day, in order.
    for t in times:
        total = base
        for day, delta in state.ledger:
            if day <= int(t // DAY):
                total += delta
        assert exposure_at(state, t) == total


def loop_counts_and_sums(
    recs: list[list[Any]], now: float, widths: tuple[float, ...]
) -> tuple[list[int], list[float]]:
    """Counts and sums record by record, newest first, as ages are compared."""
    counts, sums = [0] * len(widths), [0.0] * len(widths)
    for r in reversed(recs):
        if r[0] <= now - max(widths):
            break
        if r[0] > now:
            continue
        for i, width in enumerate(widths):
            if now - r[0] < width:
                counts[i] += 1
                sums[i] += r[1]
    return counts, sums


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=1.6e9, max_value=1.6e9 + 200 * DAY) | st.floats(-DAY, DAY),
            st.floats(min_value=-1e6, max_value=1e6),
        ),
        max_size=40,
    ),
    # Also times near the epoch, where ages and window starts round differently.
    st.floats(min_value=1.6e9, max_value=1.6e9 + 300 * DAY) | st.floats(min_value=0, max_value=DAY),
    st.integers(min_value=-3, max_value=3),
)
def test_counts_and_sums_by_bisection_are_the_record_by_record_ones_exactly(
    items: list[tuple[float, float]], now: float, ulps: int
) -> None:
    """Bit for bit, also for records a rounding error away from a window's edge."""
    recs: list[list[Any]] = []
    for t, amount in items:
        windows.insert(recs, [t, amount])
    widths = (0.1, 7 * DAY, 30 * DAY, 90 * DAY)
    # Times a few units in the last place from a width before ``now``: where the
    # record's age and the window's start round differently.
    for _, amount in items[:5]:
        for width in widths:
            t = now - width
            for _ in range(abs(ulps)):
                t = math.nextafter(t, math.copysign(math.inf, ulps))
            windows.insert(recs, [t, amount])
    got = windows.counts_and_sums(recs, now, widths, 1)
    assert got == loop_counts_and_sums(recs, now, widths)


#: Amounts of money, and values that need finer units than any before them.
amounts = (
    st.floats(min_value=-1e6, max_value=1e6)
    | st.floats(min_value=-1e-300, max_value=1e-300)
    | st.integers(min_value=-(10**9), max_value=10**9).map(lambda c: c / 100)
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["append", "insert", "drop"]), amounts, st.integers(0, 40)),
        max_size=60,
    )
)
def test_running_totals_are_the_exactly_rounded_totals_of_every_range(
    changes: list[tuple[str, float, int]],
) -> None:
    """Appends, inserts anywhere and drops from the front; after each, every range's sum,
    mean and deviation are the exactly rounded ones (by fractions), whatever the order
    and scale of the values."""
    totals = RunningTotals()
    values: list[float] = []
    for change, value, at in changes:
        if change == "append":
            totals.append(value)
            values.append(value)
        elif change == "insert":
            at = min(at, len(values))
            totals.insert(at, value)
            values.insert(at, value)
        else:
            at = min(at, len(values))
            totals.drop_front(at)
            del values[:at]
        assert len(totals) == len(values)
        for lo in range(len(values) + 1):
            for hi in range(lo, min(len(values), lo + 6) + 1):
                part = values[lo:hi]
                assert totals.total(lo, hi) == float(sum(map(Fraction, part), Fraction(0)))
                if len(part) >= 2:
                    assert totals.mean_std(lo, hi) == exact_mean_std(part)
                    assert RunningTotals(part).mean_std(0, len(part)) == exact_mean_std(part)


def test_equal_values_deviate_by_nothing() -> None:
    """The deviation of equal amounts is 0, so a repeat order has no z-score; a float sum
    of 0.1 three times is not 0.3, and a two-pass deviation of it is not 0."""
    assert RunningTotals([0.1, 0.1, 0.1]).mean_std(0, 3) == (0.1, 0.0)
    assert RunningTotals([7.35] * 50).mean_std(10, 50) == (7.35, 0.0)
