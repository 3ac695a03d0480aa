"""Features: a customer's rolling statistics at an event time, by name.

Names are API: rules, warning reasons and profiles use them, and
``stream-risk features`` prints the catalogue. Each group below is one small
function that fills its features from the state; :data:`REGISTRY` holds every
feature's name, unit, group and description. Every window is
``(now - width, now]`` on event time, so a record leaves it exactly ``width``
after it happened, whether or not anything else arrives.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stream_risk.core import windows
from stream_risk.core.receivables import Book
from stream_risk.core.running_totals import RunningTotals
from stream_risk.core.state import (
    ORD_AMOUNT,
    ORD_TS,
    PROMISE_AMOUNT,
    PROMISE_DUE,
    PROMISE_MADE,
    STMT_BALANCE,
    STMT_DPD,
    STMT_STATUS,
    STMT_TS,
    CustomerState,
    order_totals,
)
from stream_risk.core.units import DAY as DAY

MONTH = 30 * DAY
#: Longest window any feature looks back over (order frequency: 30 + 90 days).
ORDER_HISTORY = 120 * DAY
#: Orders kept: the z-score looks at an order up to 90 days old and the 90 days before it.
ORDER_RETENTION = 180 * DAY
HISTORY = 366 * DAY
LEDGER_DAYS = 100
#: Promises to pay count as broken for this long after they fell due.
PROMISE_WINDOW = 90 * DAY

Features = dict[str, Any]
GroupFn = Callable[[CustomerState, float, Features], None]


@dataclass(frozen=True, slots=True)
class Feature:
    """One named statistic: what it measures and in which unit."""

    name: str
    unit: str
    group: str
    description: str


REGISTRY: dict[str, Feature] = {}
_GROUPS: list[tuple[str, GroupFn]] = []
#: The features each group fills, by group.
_FEATURES_OF: dict[str, tuple[str, ...]] = {}


def group(name: str, *features: tuple[str, str, str]) -> Callable[[GroupFn], GroupFn]:
    """Register a group function and the ``(name, unit, description)`` features it fills."""

    def register(fn: GroupFn) -> GroupFn:
        for feature, unit, description in features:
            if feature in REGISTRY:
                raise ValueError(f"feature {feature!r} registered twice")
            REGISTRY[feature] = Feature(feature, unit, name, description)
        _FEATURES_OF[name] = tuple(feature for feature, _, _ in features)
        _GROUPS.append((name, fn))
        return fn

    return register


def compute(
    state: CustomerState,
    now: float,
    groups: frozenset[str] | None = None,
    kept: dict[str, Any] | None = None,
) -> Features:
    """The features of ``state`` as of event time ``now``: all, or those of ``groups``.

    ``kept`` is where a reusable group (:data:`REUSABLE`) keeps what it computed:
    while what it reads is the same and event time has not reached the next
    change, it is reused and only its clock-driven features are recomputed.
    """
    out: Features = {}
    for name, fn in _GROUPS:
        if groups is not None and name not in groups:
            continue
        reuse = REUSABLE.get(name) if kept is not None else None
        if reuse is None or kept is None:
            fn(state, now, out)
            continue
        reads = reuse.reads(state)
        previous = kept.get(name)
        if previous is not None and previous[1] <= now < previous[2] and previous[0] == reads:
            out.update(previous[3])
            if reuse.clock is not None:
                reuse.clock(state, now, out)
            continue
        start = len(out)
        fn(state, now, out)  # a group may read what an earlier one wrote
        # Kept in the order the group wrote them: a reused group gives the same dict.
        written = list(itertools.islice(reversed(out.items()), len(out) - start))
        values = dict(reversed(written))
        if len(values) != len(_FEATURES_OF[name]):  # it rewrote an earlier group's value
            values = {feature: out[feature] for feature in _FEATURES_OF[name]}
        kept[name] = (reads, now, reuse.until(state, now), values)
    return out


#: Groups whose functions read features of another group.
REQUIRES: dict[str, frozenset[str]] = {"aging": frozenset({"exposure"})}


def groups_of(names: Iterable[str]) -> frozenset[str]:
    """The groups that compute ``names``; raises ``KeyError`` for an unknown feature."""
    groups = {REGISTRY[n].group for n in names}
    for name in list(groups):
        groups |= REQUIRES.get(name, frozenset())
    return frozenset(groups)


# ------------------------------------------------------------------ helpers


def _latest_statement(state: CustomerState, now: float) -> list[Any] | None:
    for stmt in reversed(state.statements):
        if stmt[STMT_TS] <= now:
            latest: list[Any] = stmt
            return latest
    return None


def exposure_at(state: CustomerState, t: float) -> float | None:
    """Net receivable at event time ``t``: invoiced minus paid, or the statement balance."""
    return exposures_at(state, (t,))[0]


def exposures_at(state: CustomerState, times: tuple[float, ...]) -> list[float | None]:
    """:func:`exposure_at` for each of ``times`` (ascending), from the ledger's daily totals."""
    if not state.invoiced:
        out: list[float | None] = []
        for t in times:
            stmt = _latest_statement(state, t)
            out.append(None if stmt is None else float(stmt[STMT_BALANCE]))
        return out
    ledger = state.ledger
    totals = state.ledger_totals
    if totals is None:
        # Day by day from the oldest, as the receivable accrued; kept until the
        # ledger changes.
        totals = list(itertools.accumulate(map(_change, ledger), initial=state.ledger_base))
        state.ledger_totals = totals
    values: list[float | None] = []
    i = 0
    for t in times:
        i = bisect.bisect_right(ledger, int(t // DAY), i, key=_day)
        values.append(totals[i])
    return values


_day, _change = operator.itemgetter(0), operator.itemgetter(1)


def _growth(now_value: float | None, then_value: float | None) -> float | None:
    # Below half a cent the receivable was paid down: growth from nothing is undefined.
    if now_value is None or then_value is None or then_value < 0.005:
        return None
    return now_value / then_value - 1.0


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


# ------------------------------------------------------------------ groups


@group(
    "exposure",
    (
        "open_balance",
        "base currency",
        "open receivables: open invoices, else the latest statement balance",
    ),
    (
        "overdue_balance",
        "base currency",
        "open amounts past their due date (or the statement balance when it reports days past due)",
    ),
    ("credit_limit", "base currency", "credit limit of the latest customer assessment"),
    ("credit_utilisation", "ratio", "open_balance / credit_limit"),
    ("limit_headroom", "base currency", "credit_limit - open_balance"),
    ("exposure_growth_30d", "ratio", "net receivable now / 30 days ago - 1"),
    ("exposure_growth_90d", "ratio", "net receivable now / 90 days ago - 1"),
    (
        "receivables_source",
        "label",
        "source of open_balance and aging: invoices, or statements when the customer has no invoices",
    ),
)
def exposure(state: CustomerState, now: float, out: Features) -> None:
    stmt = _latest_statement(state, now)
    if state.invoiced:
        ages = invoice_ages(state, now)
        open_balance = ages.open_balance
        overdue = ages.overdue
    elif stmt is not None:
        open_balance = max(float(stmt[STMT_BALANCE]), 0.0)
        overdue = open_balance if stmt[STMT_DPD] > 0 else 0.0
    else:
        open_balance = overdue = 0.0
    limit = state.credit_limit
    # A statement account's arrears are the whole account's; an invoice's are one
    # document's: rules may tell the two apart.
    out["receivables_source"] = (
        "invoices" if state.invoiced else "statements" if stmt is not None else None
    )
    out["open_balance"] = open_balance
    out["overdue_balance"] = overdue
    out["credit_limit"] = limit
    out["credit_utilisation"] = open_balance / limit if limit else None
    out["limit_headroom"] = limit - open_balance if limit is not None else None
    then_90, then_30, current = exposures_at(state, (now - 90 * DAY, now - 30 * DAY, now))
    out["exposure_growth_30d"] = _growth(current, then_30)
    out["exposure_growth_90d"] = _growth(current, then_90)


@group(
    "aging",
    (
        "days_past_due",
        "days",
        "days past due of the oldest open item: the larger of invoices and the latest statement",
    ),
    ("invoice_days_past_due", "days", "days since the due date of the oldest overdue open invoice"),
    ("statement_days_past_due", "days", "days past due reported by the latest statement"),
    ("aging_current", "base currency", "open amount not yet past due"),
    ("aging_1_30", "base currency", "open amount 1-30 days past due"),
    ("aging_31_60", "base currency", "open amount 31-60 days past due"),
    ("aging_61_90", "base currency", "open amount 61-90 days past due"),
    ("aging_90_plus", "base currency", "open amount more than 90 days past due"),
    ("overdue_invoice_count", "count", "open invoices past their due date"),
    ("invoices_30dpd", "count", "open invoices 30 or more days past their due date"),
    (
        "avg_days_late_90d",
        "days",
        "amount-weighted days late of invoices settled in the last 90 days",
    ),
    ("dso", "days", "days sales outstanding: open_balance / order_amount_90d x 90"),
)
def aging(state: CustomerState, now: float, out: Features) -> None:
    ages = invoice_ages(state, now)
    buckets = list(ages.buckets)
    oldest = ages.oldest_due
    # The oldest open invoice is the most days past due, once it is past due.
    invoice_dpd = int((now - oldest) // DAY) if oldest is not None and oldest < now else 0
    overdue_count = ages.overdue_count
    stmt = _latest_statement(state, now)
    statement_dpd = int(stmt[STMT_DPD]) if stmt is not None else 0
    if not state.invoiced and stmt is not None:
        buckets[_bucket(statement_dpd)] += max(float(stmt[STMT_BALANCE]), 0.0)
    out["days_past_due"] = max(invoice_dpd, statement_dpd)
    out["invoice_days_past_due"] = invoice_dpd
    out["statement_days_past_due"] = statement_dpd
    (
        out["aging_current"],
        out["aging_1_30"],
        out["aging_31_60"],
        out["aging_61_90"],
        out["aging_90_plus"],
    ) = buckets
    out["overdue_invoice_count"] = overdue_count
    out["invoices_30dpd"] = ages.past_30_count
    weight = late = 0.0
    for closed in windows.in_window(state.book["closed"], now, 90 * DAY):
        weight += closed[2]
        late += closed[2] * closed[3]
    out["avg_days_late_90d"] = late / weight if weight > 0 else None
    sales = order_totals(state).total(*windows.bounds(state.orders, now, 90 * DAY))
    out["dso"] = out["open_balance"] / sales * 90 if sales > 0 and "open_balance" in out else None


def _bucket(days: int) -> int:
    if days <= 0:
        return 0
    if days <= 30:
        return 1
    if days <= 60:
        return 2
    if days <= 90:
        return 3
    return 4


#: :func:`_bucket` of 0 to 90 days past due, looked up per open invoice (more is the
#: last bucket).
_BUCKET_OF_DAYS = tuple(map(_bucket, range(91)))


DELINQUENCY_LEVELS = (30, 60, 90)


@group(
    "repayment",
    ("payment_count_30d", "count", "settled payments in the last 30 days (bounced ones removed)"),
    ("payment_count_90d", "count", "settled payments in the last 90 days"),
    ("payment_amount_30d", "base currency", "amount paid in the last 30 days"),
    ("payment_amount_90d", "base currency", "amount paid in the last 90 days"),
    (
        "paid_to_due_ratio_90d",
        "ratio",
        "amount paid / amount that fell due (invoices due, statement balances) in the last 90 days",
    ),
    (
        "partial_payment_share_90d",
        "ratio",
        "share of payments in the last 90 days that paid an invoice already due only in part",
    ),
    ("bounced_payments_90d", "count", "payments bounced or reversed in the last 90 days"),
    ("days_since_last_payment", "days", "days since the latest settled payment"),
)
def repayment(state: CustomerState, now: float, out: Features) -> None:
    paid = state.book["paid"]
    counts, sums = windows.counts_and_sums(paid, now, (30 * DAY, 90 * DAY), 1)
    out["payment_count_30d"], out["payment_count_90d"] = counts
    out["payment_amount_30d"], out["payment_amount_90d"] = sums
    due = invoice_ages(state, now).fell_due
    for stmt in windows.in_window(state.statements, now, 90 * DAY):
        due += max(float(stmt[STMT_BALANCE]), 0.0)
    out["paid_to_due_ratio_90d"] = _ratio(out["payment_amount_90d"], due)
    out["partial_payment_share_90d"] = _partial_share(state, now)
    out["bounced_payments_90d"] = windows.window_count(state.book["bounced"], now, 90 * DAY)
    _days_since_last_payment(state, now, out)


@group(
    "delinquency",
    (
        "times_30dpd_6m",
        "count",
        "invoices and statements that reached 30+ days past due in the last 6 months",
    ),
    ("times_60dpd_6m", "count", "... 60+ days past due in the last 6 months"),
    ("times_90dpd_6m", "count", "... 90+ days past due in the last 6 months"),
    ("times_30dpd_12m", "count", "... 30+ days past due in the last 12 months"),
    ("times_60dpd_12m", "count", "... 60+ days past due in the last 12 months"),
    ("times_90dpd_12m", "count", "... 90+ days past due in the last 12 months"),
    (
        "days_late_trend",
        "days per 30 days",
        "least-squares slope of days late (settled invoices, statements) over the last 180 days",
    ),
    ("broken_promises_90d", "count", "promises to pay due in the last 90 days that were not kept"),
    ("open_promises", "count", "promises to pay not yet due"),
)
def delinquency(state: CustomerState, now: float, out: Features) -> None:
    paid = state.book["paid"]
    _delinquency_counts(state, now, out)
    observations = _days_late_observations(state, now)
    recent = [o for o in observations if o[0] > now - 180 * DAY]
    out["days_late_trend"] = windows.slope_per(recent, MONTH) if len(recent) >= 3 else None
    broken = 0
    pending = 0
    for made, promised_at, amount in state.promises:
        if promised_at > now:
            pending += 1
        elif promised_at > now - PROMISE_WINDOW:
            lo = bisect.bisect_left(paid, made, key=windows.time_of)
            hi = bisect.bisect_right(paid, promised_at, lo, key=windows.time_of)
            kept = sum(paid[i][1] for i in range(lo, hi))
            broken += kept < amount - 0.005
    out["broken_promises_90d"] = broken
    out["open_promises"] = pending


def _partial_share(state: CustomerState, now: float) -> float | None:
    payments = list(windows.in_window(state.book["paid"], now, 90 * DAY))
    if not payments:
        return None
    if state.invoiced:
        return float(sum(p[2] for p in payments)) / len(payments)
    partial = 0
    for p in payments:
        before = None
        for stmt in state.statements:
            if stmt[STMT_TS] >= p[0]:
                break
            before = stmt
        if before is not None and before[STMT_BALANCE] > 0 and p[1] < before[STMT_BALANCE] - 0.005:
            partial += 1
    return partial / len(payments)


def _delinquency_counts(state: CustomerState, now: float, out: Features) -> None:
    # (time the level was reached, days late reached) from statements; the invoices'
    # counts are kept with their ages.
    reached: list[tuple[float, float]] = [
        (s[STMT_TS], s[STMT_DPD]) for s in state.statements if s[STMT_DPD] >= 30
    ]
    counts = [list(count) for count in invoice_ages(state, now).delinquent]
    _count_reached(reached, now, counts)
    for months, window in ((6, 0), (12, 1)):
        for level, count in zip(DELINQUENCY_LEVELS, counts, strict=True):
            out[f"times_{level}dpd_{months}m"] = count[window]


def _count_reached(reached: list[tuple[float, float]], now: float, counts: list[list[int]]) -> None:
    """Add to ``counts`` (per level: in the last 6 months, in the last 12) the ``reached``
    levels: ``(time, days late)`` of statements, ``(-due date, days late)`` of invoices."""
    for at, days in reached:
        for level, count in zip(DELINQUENCY_LEVELS, counts, strict=True):
            if days < level:
                break
            # Invoices reach a level ``level`` days after their due date (stored negated).
            t = -at + level * DAY if at < 0 else at
            if t > now:
                continue
            age = now - t
            if age < 182 * DAY:
                count[0] += 1
            if age < 365 * DAY:
                count[1] += 1


#: Days-late observations (settled invoices, statements) are read over this long.
LATE_HISTORY = 365 * DAY


def _days_late_observations(state: CustomerState, now: float) -> list[tuple[float, float]]:
    # Both lists are in event-time order: the year is found by bisection (the closed
    # invoices' observations are made once, while they are the same invoices).
    closed = closed_ages(state.book)
    times = closed.times
    hi = len(times)
    if hi and times[-1] > now:
        hi = bisect.bisect_right(times, now)
    obs = closed.observations[bisect.bisect_right(times, now - LATE_HISTORY, 0, hi) : hi]
    obs += [
        (float(s[STMT_TS]), float(s[STMT_DPD]))
        for s in windows.in_window(state.statements, now, LATE_HISTORY)
    ]
    obs.sort()
    return obs[-24:]


@group(
    "orders",
    ("order_count_7d", "count", "orders placed in the last 7 days (cancellations removed)"),
    ("order_count_30d", "count", "orders placed in the last 30 days"),
    ("order_count_90d", "count", "orders placed in the last 90 days"),
    ("order_amount_7d", "base currency", "amount ordered in the last 7 days"),
    ("order_amount_30d", "base currency", "amount ordered in the last 30 days"),
    ("order_amount_90d", "base currency", "amount ordered in the last 90 days"),
    ("order_amount_mean_90d", "base currency", "mean order amount over the last 90 days"),
    (
        "order_amount_std_90d",
        "base currency",
        "standard deviation (n-1) of order amounts over the last 90 days",
    ),
    (
        "order_amount_zscore_90d",
        "z",
        "latest order of the last 90 days against the customer's other orders of the 90 days before it",
    ),
    (
        "order_frequency_change",
        "ratio",
        "orders in the last 30 days / monthly average of the 90 days before - 1",
    ),
    ("days_since_last_order", "days", "days since the latest placed order (silence)"),
    (
        "cancellation_share_90d",
        "ratio",
        "cancelled / (placed + cancelled) orders in the last 90 days",
    ),
)
def orders(state: CustomerState, now: float, out: Features) -> None:
    recs = state.orders
    totals = order_totals(state)
    ranges = windows.age_bounds(recs, now, (7 * DAY, 30 * DAY, 90 * DAY))
    out["order_count_7d"], out["order_count_30d"], out["order_count_90d"] = (
        hi - lo for lo, hi in ranges
    )
    out["order_amount_7d"], out["order_amount_30d"], out["order_amount_90d"] = (
        totals.total(lo, hi) for lo, hi in ranges
    )
    mean, std = totals.mean_std(*windows.bounds(recs, now, 90 * DAY))
    out["order_amount_mean_90d"] = mean
    out["order_amount_std_90d"] = std
    out["order_amount_zscore_90d"] = _latest_zscore(recs, now, totals)
    earlier = windows.window_count(recs, now - 30 * DAY, 90 * DAY)
    out["order_frequency_change"] = (
        out["order_count_30d"] / (earlier / 3.0) - 1.0 if earlier else None
    )
    _days_since_last_order(state, now, out)
    cancelled = windows.window_count(state.cancelled, now, 90 * DAY)
    total = out["order_count_90d"] + cancelled
    out["cancellation_share_90d"] = cancelled / total if total else None


def _days_since_last_order(state: CustomerState, now: float, out: Features) -> None:
    last = state.last_order_at
    for o in reversed(state.orders):
        if o[ORD_TS] <= now:
            last = o[ORD_TS]
            break
    out["days_since_last_order"] = (now - last) / DAY if last is not None else None


#: Window widths after which an order changes the orders group: it leaves the 7, 30
#: and 90 day windows, enters the 90 days before the last 30 (at 30) and leaves them.
_ORDER_AGES = (7 * DAY, 30 * DAY, 90 * DAY, 120 * DAY)


def _orders_read(state: CustomerState) -> tuple[Any, ...]:
    # Orders change only by events and by expiry from the front, and records are
    # never changed in place: the count and the first and last records identify them.
    recs, cancelled = state.orders, state.cancelled
    return (
        len(recs),
        recs[0] if recs else None,
        recs[-1] if recs else None,
        len(cancelled),
        cancelled[-1] if cancelled else None,
    )


def _orders_until(state: CustomerState, now: float) -> float:
    """Until when (event time) the orders group's values at ``now`` hold."""
    recs, cancelled = state.orders, state.cancelled
    if (recs and recs[-1][ORD_TS] > now) or (cancelled and cancelled[-1][0] > now):
        return now  # records ahead of ``now``: nothing to reuse
    return min(_next_change(recs, now, _ORDER_AGES), _next_change(cancelled, now, (90 * DAY,)))


def _latest_zscore(recs: list[list[Any]], now: float, totals: RunningTotals) -> float | None:
    current = windows.until(recs, now)
    if current < 4:
        return None
    latest = recs[current - 1]
    if latest[ORD_TS] <= now - 90 * DAY:
        return None  # no order in the last 90 days: nothing new to compare
    first = bisect.bisect_right(
        recs, latest[ORD_TS] - 90 * DAY, 0, current - 1, key=windows.time_of
    )
    if current - 1 - first < 3:
        return None
    mean, std = totals.mean_std(first, current - 1)
    if mean is None or not std:
        return None
    return float((latest[ORD_AMOUNT] - mean) / std)


@group(
    "profile",
    ("segment_industry", "label", "industry of the customer's segment"),
    ("segment_size", "label", "size class of the customer's segment"),
    ("segment_region", "label", "region of the customer's segment"),
    ("rating", "label or score", "external credit rating or score"),
    ("current_ratio", "ratio", "current assets / current liabilities, from the latest financials"),
    ("debt_ratio", "ratio", "total debt / total assets, from the latest financials"),
    ("payment_terms_days", "days", "agreed payment terms"),
    ("months_on_book", "months", "months since the customer's first event"),
)
def profile(state: CustomerState, now: float, out: Features) -> None:
    segment = state.segment or {}
    out["segment_industry"] = segment.get("industry")
    out["segment_size"] = segment.get("size")
    out["segment_region"] = segment.get("region")
    out["rating"] = state.rating
    financials = state.financials or {}
    for name in ("current_ratio", "debt_ratio"):
        value = financials.get(name)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        out[name] = float(value) if number and math.isfinite(value) else None  # type: ignore[arg-type]
    out["payment_terms_days"] = state.payment_terms_days
    out["months_on_book"] = (
        (now - state.first_seen) / MONTH if state.first_seen is not None else None
    )


@group(
    "statements",
    ("statement_balance", "base currency", "balance of the latest statement"),
    (
        "balance_trend",
        "base currency per 30 days",
        "least-squares slope of the last 6 statement balances",
    ),
    (
        "utilisation_trend",
        "ratio per 30 days",
        "least-squares slope of the last 6 statement balances / credit_limit",
    ),
    ("revolving_streak", "statements", "consecutive latest statements with status revolving"),
    ("delinquent_streak", "statements", "consecutive latest statements with status delinquent"),
)
def statements(state: CustomerState, now: float, out: Features) -> None:
    recent = [s for s in state.statements if s[STMT_TS] <= now][-6:]
    out["statement_balance"] = float(recent[-1][STMT_BALANCE]) if recent else None
    points = [(float(s[STMT_TS]), float(s[STMT_BALANCE])) for s in recent]
    out["balance_trend"] = windows.slope_per(points, MONTH) if len(points) >= 2 else None
    limit = state.credit_limit
    trend = out["balance_trend"]
    out["utilisation_trend"] = trend / limit if trend is not None and limit else None
    for status in ("revolving", "delinquent"):
        streak = 0
        for s in reversed(state.statements):
            if s[STMT_TS] > now:
                continue
            if s[STMT_STATUS] != status:
                break
            streak += 1
        out[f"{status}_streak"] = streak


# ------------------------------------------------------------------ reuse


def _next_change(
    records: list[Any],
    now: float,
    offsets: tuple[float, ...],
    time_of: Callable[[Any], float] | None = windows.time_of,
) -> float:
    """The first time after ``now`` at which one of ``records`` (ascending in time) is
    ``offset`` old, for any of ``offsets``: when a record enters (0) or leaves a
    window. ``time_of`` None: ``records`` are the times themselves."""
    until = math.inf
    for offset in offsets:
        k = bisect.bisect_right(records, now - offset, key=time_of)
        if k < len(records):
            t = records[k] if time_of is None else time_of(records[k])
            until = min(until, t + offset)
    return until


def _invoices_until(
    ages: InvoiceAges, now: float, offsets: tuple[float, ...], all_invoices: bool
) -> float:
    """Until when what the invoices give a group holds, when the open invoices (or
    ``all_invoices``) move it only at ``offsets`` after their due date: a margin
    before the first such age after ``now``, and the closed invoices' validity."""
    dues = ages.due_times if all_invoices else ages.open_due_times
    # Ages are compared in ways that round differently from ``due + offset``, and an
    # age just reached may still be crossed (falling due is ``due < now``): the search
    # starts a margin before ``now``, and the values hold until a margin before.
    until = _next_change(dues, now - _AGING_MARGIN, offsets, None) - _AGING_MARGIN
    # The closed invoices were aged at ``now`` or, with none of their ages in between,
    # before: theirs hold until the margin before their first age after ``now``.
    return until if ages.closed is None else min(until, ages.closed.valid_until)


#: Ages after its due date at which an open invoice moves a delinquency count.
_LEVEL_SECONDS = tuple(
    sorted({(level + months) * DAY for level in DELINQUENCY_LEVELS for months in (0, 182, 365)})
)


def _book_ages(state: CustomerState) -> InvoiceAges:
    """The state's :class:`InvoiceAges`, built when the book changed, not aged: one
    object while the book is the same.

    What groups read of the book (invoices, payments, bounces, closed invoices) and
    of the ledger is this object: every event that changes either (an invoice, a
    payment, a bounce) drops it, and so does expiry that forgets closed invoices.
    Expiry forgets only payments, bounces and ledger days no window reaches.
    """
    ages: InvoiceAges | None = state.invoice_ages
    if ages is None:
        ages = _index(state.book)
        state.invoice_ages = ages
    return ages


def _repayment_read(state: CustomerState) -> tuple[Any, ...]:
    return _book_ages(state), tuple(state.statements)


def _repayment_until(state: CustomerState, now: float) -> float:
    """Payments and bounces enter and leave their windows, statements their 90 days,
    invoices fall due and leave the 90 days (their ages' validity)."""
    book = state.book
    return min(
        _next_change(book["paid"], now, (0.0, 30 * DAY, 90 * DAY)),
        _next_change(book["bounced"], now, (0.0, 90 * DAY)),
        _next_change(state.statements, now, (0.0, 90 * DAY)),
        _invoices_until(invoice_ages(state, now), now, _FELL_DUE_SECONDS, all_invoices=True),
    )


def _days_since_last_payment(state: CustomerState, now: float, out: Features) -> None:
    last = _clock_feature_start(state, "days_since_last_payment", now)
    out["days_since_last_payment"] = (now - last) / DAY if last is not None else None


def _delinquency_read(state: CustomerState) -> tuple[Any, ...]:
    return _book_ages(state), tuple(state.statements), tuple(state.promises)


#: Ages at which a statement or a settled invoice moves the delinquency group: it
#: enters, leaves the 180 days of the trend, the 6- and 12-month counts, the year
#: of observations.
_DELINQUENCY_AGES = (0.0, 180 * DAY, 182 * DAY, LATE_HISTORY)


def _delinquency_until(state: CustomerState, now: float) -> float:
    """Statements and settled invoices age through the counts and the trend, open
    invoices reach levels (their ages' validity), promises fall due and expire."""
    ages = invoice_ages(state, now)
    until = min(
        _next_change(state.statements, now, _DELINQUENCY_AGES),
        _invoices_until(ages, now, _LEVEL_SECONDS, all_invoices=False),
    )
    if ages.closed is not None:
        until = min(until, _next_change(ages.closed.times, now, _DELINQUENCY_AGES, None))
    for promise in state.promises:
        for t in (promise[PROMISE_DUE], promise[PROMISE_DUE] + PROMISE_WINDOW):
            if now < t < until:
                until = t
    return until


def _statements_read(state: CustomerState) -> tuple[Any, ...]:
    return tuple(state.statements), state.credit_limit


def _statements_until(state: CustomerState, now: float) -> float:
    """Statements count once they are issued: only one ahead of ``now`` moves them."""
    return _next_change(state.statements, now, (0.0,))


def _exposure_read(state: CustomerState) -> tuple[Any, ...]:
    return _book_ages(state), tuple(state.statements), state.credit_limit


def _exposure_until(state: CustomerState, now: float) -> float:
    """Invoices fall due, and the receivable of 30 and 90 days ago moves on to the
    next statement or ledger day."""
    ages = invoice_ages(state, now)
    until = min(
        _invoices_until(ages, now, (0.0,), all_invoices=True),
        _next_change(state.statements, now, (0.0, 30 * DAY, 90 * DAY)),
    )
    ledger = state.ledger
    if state.invoiced and ledger:
        for offset in (0.0, 30 * DAY, 90 * DAY):
            # The first ledger day after the one of ``now - offset`` is reached then.
            k = bisect.bisect_right(ledger, int((now - offset) // DAY), key=_day)
            if k < len(ledger):
                until = min(until, ledger[k][0] * DAY + offset - _AGING_MARGIN)
    return until


def _aging_read(state: CustomerState) -> tuple[Any, ...]:
    # The open balance it reads comes from the exposure group, from the same inputs.
    return _book_ages(state), tuple(state.statements), _orders_read(state)


def _aging_until(state: CustomerState, now: float) -> float:
    """Open invoices cross an age (days past due itself is recomputed: :func:`_past_due`),
    settled invoices and orders enter and leave their 90 days."""
    return min(
        _invoices_until(invoice_ages(state, now), now, _CROSSING_SECONDS, all_invoices=False),
        _next_change(state.statements, now, (0.0,)),
        _next_change(state.book["closed"], now, (0.0, 90 * DAY)),
        _next_change(state.orders, now, (0.0, 90 * DAY)),
    )


def _past_due(state: CustomerState, now: float, out: Features) -> None:
    """The days past due of the oldest open invoice, which grow with the clock alone."""
    oldest = _book_ages(state).oldest_due
    invoice_dpd = int((now - oldest) // DAY) if oldest is not None and oldest < now else 0
    out["days_past_due"] = max(invoice_dpd, out["statement_days_past_due"])
    out["invoice_days_past_due"] = invoice_dpd


@dataclass(frozen=True, slots=True)
class Reuse:
    """How a group's values are reused (see :func:`compute`)."""

    #: What the group reads, compared by value (records are never changed in place,
    #: so a tuple of them compares element by element, mostly by identity); the
    #: book and the ledger by their invoice ages (:func:`_book_ages`).
    reads: Callable[[CustomerState], Any]
    #: Until when (event time) the values computed at ``now`` hold while it reads the same.
    until: Callable[[CustomerState, float], float]
    #: Recomputes the features that move with the clock alone, if any.
    clock: GroupFn | None = None


#: Groups whose values may be reused between computations of one customer.
REUSABLE: dict[str, Reuse] = {
    "exposure": Reuse(_exposure_read, _exposure_until),
    "aging": Reuse(_aging_read, _aging_until, _past_due),
    "orders": Reuse(_orders_read, _orders_until, _days_since_last_order),
    "repayment": Reuse(_repayment_read, _repayment_until, _days_since_last_payment),
    "delinquency": Reuse(_delinquency_read, _delinquency_until),
    "statements": Reuse(_statements_read, _statements_until),
}


# ------------------------------------------------------------------ timers


#: How long a detector's score on an order or a payment stays visible to rules.
DETECTOR_MEMORY = 30 * DAY
#: How long a detected shift in days late stays flagged.
SHIFT_MEMORY = 90 * DAY


@group(
    "detectors",
    (
        "order_amount_zscore",
        "robust z",
        "latest order amount against the customer's own recent orders (median and MAD), 30 days",
    ),
    (
        "order_frequency_zscore",
        "robust z",
        "latest gap between orders against the customer's usual gaps, as frequency: "
        "positive when orders come faster than usual, 30 days",
    ),
    (
        "days_late_drift",
        "flag",
        "1 when PageHinkley detected an upward shift in days late in the last 90 days",
    ),
    (
        "behaviour_anomaly",
        "score 0..1",
        "HalfSpaceTrees anomaly score of the behaviour vector against the customer's segment",
    ),
)
def detectors(state: CustomerState, now: float, out: Features) -> None:
    # Scores are computed when their event is applied (score before learn) and
    # kept as [event time, score] in the state; this group only reads them.
    d = state.detectors
    out["order_amount_zscore"] = _recent(d.get("amount_z"), now, DETECTOR_MEMORY)
    out["order_frequency_zscore"] = _recent(d.get("frequency_z"), now, DETECTOR_MEMORY)
    if "late" in d:
        flag = _recent(d.get("late_shift"), now, SHIFT_MEMORY)
        out["days_late_drift"] = 0.0 if flag is None else flag
    else:
        out["days_late_drift"] = None
    peer = d.get("peer")
    out["behaviour_anomaly"] = None if peer is None else peer[1]


def _recent(mark: list[Any] | None, now: float, memory: float) -> float | None:
    if mark is None or mark[1] is None or not (now - memory < mark[0] <= now):
        return None
    return float(mark[1])


#: Days after its due date at which an open invoice that is not the oldest overdue
#: one changes a feature: it falls due (``overdue_*``, ``aging_1_30``), enters the
#: next aging bucket, reaches a delinquency level, and that level leaves the 6- and
#: 12-month counts.
INVOICE_CROSSINGS: tuple[int, ...] = tuple(
    sorted(
        {0, 1, 31, 61, 91}
        | set(DELINQUENCY_LEVELS)
        | {level + 182 for level in DELINQUENCY_LEVELS}
        | {level + 365 for level in DELINQUENCY_LEVELS}
    )
)
#: Days overdue after which the oldest invoice's daily tick stops: days past due
#: keeps growing, but no threshold of the rules or the score is that far out.
DAILY_TICKS_UNTIL = 366


_CROSSING_SECONDS = tuple(offset * DAY for offset in INVOICE_CROSSINGS)


def _invoice_crossing(due: float, now: float) -> float | None:
    """The first time after ``now`` at which an open invoice due at ``due`` moves a
    bucket, the overdue sums or a delinquency count."""
    if due > now:
        return due  # the first crossing: it falls due
    offsets = _CROSSING_SECONDS
    k = bisect.bisect_right(offsets, now - due)
    # ``now - due`` may round: settle on the first offset whose time is after ``now``.
    while k > 0 and due + offsets[k - 1] > now:
        k -= 1
    while k < len(offsets) and due + offsets[k] <= now:
        k += 1
    return due + offsets[k] if k < len(offsets) else None


@dataclass(slots=True, eq=False)  # one per book: a changed book gets a new one
class InvoiceAges:
    """What the invoices of the book give the features at an event time.

    Built when the book has changed, aged once per evaluation time. While the
    book lists many invoices and by due date (as it does unless terms or due
    dates changed), they are indexed by it: the invoices more than 90 days past
    due are summed once, in the book's order, and an evaluation bisects the
    index and adds up only the invoices of the last 90 days and those not yet
    due. Every sum adds in the book's order, as a loop over the book does.
    """

    #: Open amounts of the open invoices; the earliest due date of those with
    #: something open (``None``: none).
    open_balance: float
    oldest_due: float | None
    #: Due dates, open amounts and amounts in the book's order, when that is by due
    #: date and the index pays (else ``None``); ``prefix[i]``: the open amounts of
    #: the first ``i``, added in order.
    dues: list[float] | None = None
    opens: list[float] = field(default_factory=list)
    amounts: list[float] = field(default_factory=list)
    prefix: list[float] = field(default_factory=list)
    #: Due dates of the invoices with something open, and how many of the first
    #: ``i`` invoices have something open.
    open_dues: list[float] = field(default_factory=list)
    open_before: list[int] = field(default_factory=list)
    #: Due dates of all the invoices and of those with something open, ascending
    #: (the index's own lists when indexed): when an invoice next moves the sums.
    due_times: list[float] = field(default_factory=list)
    open_due_times: list[float] = field(default_factory=list)
    #: What the closed invoices of the book give (the book's closed invoices do not
    #: change while these sums are kept).
    closed: ClosedAges | None = None
    #: The event time the sums below are of.
    aged_at: float = -math.inf
    #: Open amounts past their due date; open amounts per aging bucket; open invoices past due.
    overdue: float = 0.0
    buckets: tuple[float, ...] = ()
    overdue_count: int = 0
    #: Open invoices 30 or more days past due.
    past_30_count: int = 0
    #: Amounts of invoices (open or closed) that fell due in the last 90 days.
    fell_due: float = 0.0
    #: Per delinquency level: invoices that reached it in the last 6 and 12 months.
    delinquent: tuple[tuple[int, int], ...] = ()
    #: The first time after ``aged_at`` at which an invoice with something open
    #: crosses an age of :data:`INVOICE_CROSSINGS` (``None``: never).
    next_crossing: float | None = None
    #: Before this event time no invoice, open or closed, reaches an age that moves
    #: the sums above: they hold from ``aged_at`` on (see :func:`_valid_until`).
    valid_until: float = -math.inf


@dataclass(slots=True)
class ClosedAges:
    """What the closed invoices of a book give the features at an event time.

    Built when the closed invoices change (a payment closes one, a bounce reopens
    one, expiry forgets old ones), not when only the open ones do, and kept beside
    the book (:attr:`stream_risk.core.receivables.Book.closed_ages`); aged only when
    event time reaches an age at which a closed invoice moves a sum.
    """

    #: The closed records it was built from, in the book's (closing) order. A record
    #: is written once and never changed in place: an equal list is the same invoices.
    records: list[list[Any]]
    #: Closing times, and ``(closing time, days late)`` observations, in that order.
    times: list[float]
    observations: list[tuple[float, float]]
    #: ``(-due date, days late)`` of those 30 or more days late (see :func:`_count_reached`).
    reached: list[tuple[float, float]]
    #: The event times at which a closed invoice moves the sums, ascending.
    turns: list[float]
    #: The event time the sums below are of, and until when they hold.
    aged_at: float = -math.inf
    valid_until: float = -math.inf
    #: Amounts of the closed invoices that fell due in the last 90 days, in the
    #: book's order (added after the open ones, one by one, as a loop adds them).
    fell_due: list[float] = field(default_factory=list)
    #: Per delinquency level: closed invoices that reached it in the last 6 and 12 months.
    delinquent: tuple[tuple[int, int], ...] = ()


#: Below this many invoices a loop over the book is cheaper than the index.
INDEXED_FROM = 32


def invoice_ages(state: CustomerState, now: float) -> InvoiceAges:
    """The invoices' contributions to the features at ``now``, kept in ``state``."""
    ages = _book_ages(state)
    if now != ages.aged_at and not ages.aged_at < now < ages.valid_until:
        if ages.dues is None:
            _age(ages, state.book, now)
        else:
            _age_indexed(ages, state.book, now)
        ages.valid_until = _valid_until(ages, now)
    return ages


def closed_ages(book: dict[str, Any]) -> ClosedAges:
    """What the closed invoices of ``book`` give, kept beside a :class:`Book` while
    they are the same (compared record by record: records are never changed in place)."""
    records = book["closed"]
    kept: ClosedAges | None = getattr(book, "closed_ages", None)
    if kept is not None and kept.records == records:
        return kept
    built = ClosedAges(
        list(records),
        [c[0] for c in records],
        [(float(c[0]), float(c[3])) for c in records],
        [(-c[1], c[3]) for c in records if c[3] >= 30],
        sorted(
            closed[1] + offset
            for closed in records
            for offset in _CLOSED_SECONDS[bisect.bisect_right(DELINQUENCY_LEVELS, closed[3])]
        ),
    )
    if isinstance(book, Book):
        book.closed_ages = built
    return built


def _age_closed(closed: ClosedAges, now: float) -> ClosedAges:
    """``closed`` aged at ``now``: kept from an earlier time while no closed invoice has
    reached an age that moves its sums since."""
    if now == closed.aged_at or closed.aged_at < now < closed.valid_until:
        return closed
    horizon = now - 90 * DAY
    closed.fell_due = [c[2] for c in closed.records if horizon < c[1] <= now]
    counts = [[0, 0] for _ in DELINQUENCY_LEVELS]
    _count_reached(closed.reached, now, counts)
    closed.delinquent = tuple((c[0], c[1]) for c in counts)
    closed.aged_at = now
    turns = closed.turns
    k = bisect.bisect_right(turns, now - _AGING_MARGIN)
    closed.valid_until = (turns[k] if k < len(turns) else math.inf) - _AGING_MARGIN
    return closed


#: Ages are compared in ways that round differently from ``due + offset``, by far
#: less than this: sums are reused only this far from any age that moves them.
_AGING_MARGIN = 1.0
#: Ages after its due date at which any invoice moves ``fell_due`` (enters and leaves
#: the 90 days).
_FELL_DUE_SECONDS = (0.0, 90 * DAY)
#: Ages after its due date at which a closed invoice moves the sums, by how many
#: delinquency levels it reached: ``fell_due``, and each level reached, entering
#: the 6- and 12-month counts and leaving them.
_CLOSED_SECONDS = tuple(
    tuple(
        sorted(
            set(_FELL_DUE_SECONDS)
            | {
                (level + months) * DAY
                for level in DELINQUENCY_LEVELS[:n]
                for months in (0, 182, 365)
            }
        )
    )
    for n in range(len(DELINQUENCY_LEVELS) + 1)
)


def _valid_until(ages: InvoiceAges, now: float) -> float:
    """Until when the sums aged at ``now`` hold: the margin before the first age after
    ``now`` at which an invoice moves them. Every comparison the sums make changes
    only once as time goes on, at one of these ages."""
    return min(
        _invoices_until(ages, now, _FELL_DUE_SECONDS, all_invoices=True),
        _invoices_until(ages, now, _CROSSING_SECONDS, all_invoices=False),
    )


def _index(book: Any) -> InvoiceAges:
    ages = _indexed(book["inv"])
    ages.closed = closed_ages(book)
    return ages


def _indexed(invoices: dict[str, list[Any]]) -> InvoiceAges:
    if len(invoices) < INDEXED_FROM:
        return _unindexed(invoices)
    open_balance = 0.0
    oldest_due: float | None = None
    dues: list[float] = []
    opens: list[float] = []
    amounts: list[float] = []
    prefix = [0.0]
    open_dues: list[float] = []
    open_before = [0]
    in_order = True
    for amount, original, due, _ in invoices.values():
        open_balance += amount
        if dues and due < dues[-1]:
            in_order = False
        dues.append(due)
        opens.append(amount)
        amounts.append(original)
        prefix.append(open_balance)
        if amount > 0:
            open_dues.append(due)
            if oldest_due is None or due < oldest_due:
                oldest_due = due
        open_before.append(len(open_dues))
    if not in_order:
        return _unindexed(invoices)
    return InvoiceAges(
        open_balance,
        oldest_due,
        dues,
        opens,
        amounts,
        prefix,
        open_dues,
        open_before,
        due_times=dues,
        open_due_times=open_dues,
    )


def _unindexed(invoices: dict[str, list[Any]]) -> InvoiceAges:
    open_balance = 0.0
    oldest_due: float | None = None
    dues: list[float] = []
    open_dues: list[float] = []
    for amount, _, due, _ in invoices.values():
        open_balance += amount
        dues.append(due)
        if amount > 0:
            open_dues.append(due)
            if oldest_due is None or due < oldest_due:
                oldest_due = due
    dues.sort()
    open_dues.sort()
    return InvoiceAges(open_balance, oldest_due, due_times=dues, open_due_times=open_dues)


def _age(ages: InvoiceAges, book: Any, now: float) -> None:
    """The age-dependent sums of :class:`InvoiceAges` at ``now``, in one loop over the book."""
    overdue = 0.0
    buckets = [0.0, 0.0, 0.0, 0.0, 0.0]
    overdue_count = 0
    past_30_count = 0
    fell_due = 0.0
    horizon = now - 90 * DAY
    reached: list[tuple[float, float]] = []
    next_crossing: float | None = None
    for amount, original, due, _ in book["inv"].values():
        if due < now:
            overdue += amount
        if amount > 0:
            if due < now:
                days = int((now - due) // DAY)
                overdue_count += 1
                buckets[_BUCKET_OF_DAYS[days] if days <= 90 else 4] += amount
            else:
                buckets[0] += amount
            if now - due >= 30 * DAY:
                reached.append((-due, (now - due) / DAY))
                past_30_count += 1
            tick = _invoice_crossing(due, now)
            if tick is not None and (next_crossing is None or tick < next_crossing):
                next_crossing = tick
        if horizon < due <= now:
            fell_due += original
    ages.fell_due, ages.delinquent = _with_closed(ages, book, now, fell_due, reached)
    ages.aged_at = now
    ages.overdue = overdue
    ages.buckets = tuple(buckets)
    ages.overdue_count = overdue_count
    ages.past_30_count = past_30_count
    ages.next_crossing = next_crossing


def _with_closed(
    ages: InvoiceAges,
    book: Any,
    now: float,
    fell_due: float,
    reached: list[tuple[float, float]],
) -> tuple[float, tuple[tuple[int, int], ...]]:
    """``fell_due`` of the open invoices with the closed ones added, in the book's order,
    and the delinquency counts of the closed invoices and of ``reached`` (open ones)."""
    closed = ages.closed
    if closed is None:
        closed = ages.closed = closed_ages(book)
    _age_closed(closed, now)
    counts = [[c[0], c[1]] for c in closed.delinquent]
    _count_reached(reached, now, counts)
    fell_due = functools.reduce(operator.add, closed.fell_due, fell_due)
    return fell_due, tuple((c[0], c[1]) for c in counts)


def _age_indexed(ages: InvoiceAges, book: Any, now: float) -> None:
    """:func:`_age` over the due-date index: the old invoices are bisected, not visited."""
    dues = ages.dues
    assert dues is not None
    opens = ages.opens
    overdue_n = bisect.bisect_left(dues, now)  # due < now
    # Each aging bucket is a run of the index (invoices with nothing open add 0.0):
    # the first ``bounds[k]`` are at least 1, 31, 61, 91 days past due.
    bounds = [overdue_n]
    for days in (1, 31, 61, 91):
        holds = functools.partial(_days_past_due, now, days)
        bounds.append(_leading(dues, bounds[-1], now - days * DAY, holds))
    buckets = [_added(opens, bounds[1], len(dues))]
    buckets += [_added(opens, lo, hi) for hi, lo in itertools.pairwise(bounds[1:])]
    buckets.append(ages.prefix[bounds[4]])
    fell_due = _added(
        ages.amounts, bisect.bisect_right(dues, now - 90 * DAY), bisect.bisect_right(dues, now)
    )
    fell_due, delinquent = _with_closed(ages, book, now, fell_due, [])
    counts = [[c[0], c[1]] for c in delinquent]
    open_dues = ages.open_dues
    past_30_count = 0
    for i, level in enumerate(DELINQUENCY_LEVELS):
        # Open invoices that reached ``level`` by ``now`` are a prefix of the index ...
        holds = functools.partial(_reached, now, i)
        reached_n = _leading(open_dues, len(open_dues), now - level * DAY, holds)
        if level == 30:
            past_30_count = reached_n
        for window, width in enumerate((182 * DAY, 365 * DAY)):
            # ... and those that reached it ``width`` or more ago a shorter one.
            holds = functools.partial(_reached_before, now, level, width)
            before_n = _leading(open_dues, reached_n, now - width - level * DAY, holds)
            counts[i][window] += reached_n - before_n
    next_crossing: float | None = None
    for offset in _CROSSING_SECONDS:
        # The first open invoice whose crossing at ``offset`` is still to come.
        k = _leading(
            open_dues, len(open_dues), now - offset, functools.partial(_crossed, now, offset)
        )
        if k < len(open_dues):
            tick = open_dues[k] + offset
            if next_crossing is None or tick < next_crossing:
                next_crossing = tick
    ages.aged_at = now
    ages.overdue = ages.prefix[overdue_n]
    ages.buckets = tuple(buckets)
    ages.overdue_count = ages.open_before[overdue_n]
    ages.past_30_count = past_30_count
    ages.fell_due = fell_due
    ages.delinquent = tuple((c[0], c[1]) for c in counts)
    ages.next_crossing = next_crossing


def _added(values: list[float], lo: int, hi: int) -> float:
    """``values[lo:hi]`` added left to right from 0.0, as a loop adds them."""
    return float(functools.reduce(operator.add, values[lo:hi], 0.0))


def _leading(dues: list[float], hi: int, near: float, holds: Callable[[float], bool]) -> int:
    """How many of ``dues[:hi]`` (ascending) ``holds``, which holds for the oldest
    ones up to some due date close to ``near``: bisected on ``near``, then settled
    with ``holds`` itself, whatever the rounding of ``near``."""
    k = bisect.bisect_right(dues, near, 0, hi)
    while k > 0 and not holds(dues[k - 1]):
        k -= 1
    while k < hi and holds(dues[k]):
        k += 1
    return k


# What :func:`_leading` counts: true for the oldest invoices, false from some on.


def _crossed(now: float, offset: float, due: float) -> bool:
    return due + offset <= now


def _days_past_due(now: float, days: int, due: float) -> bool:
    return bool((now - due) // DAY >= days)


def _reached(now: float, index: int, due: float) -> bool:
    """Whether an open invoice due at ``due`` has reached the delinquency level
    ``DELINQUENCY_LEVELS[index]`` at ``now``, as :func:`_count_reached` counts it."""
    if not now - due >= 30 * DAY:
        return False
    days = (now - due) / DAY
    for level in DELINQUENCY_LEVELS[: index + 1]:
        if days < level:
            return False
    return not due + DELINQUENCY_LEVELS[index] * DAY > now


def _reached_before(now: float, level: int, width: float, due: float) -> bool:
    """Whether delinquency ``level``, reached by an invoice due at ``due``, is ``width``
    or more old at ``now``."""
    return not now - (due + level * DAY) < width


#: The windows of records a wake-up watches: per kind of record, the feature group
#: its windows feed and each width with the features that width alone moves (``None``:
#: others of the group too, so it is watched whenever the group is read).
_EXPIRIES: dict[str, tuple[str, tuple[tuple[float, frozenset[str] | None], ...]]] = {
    "orders": (
        "orders",
        (
            (7 * DAY, frozenset({"order_count_7d", "order_amount_7d"})),
            (
                30 * DAY,
                frozenset({"order_count_30d", "order_amount_30d", "order_frequency_change"}),
            ),
            (90 * DAY, None),
        ),
    ),
    "paid": (
        "repayment",
        (
            (30 * DAY, frozenset({"payment_count_30d", "payment_amount_30d"})),
            (90 * DAY, None),
        ),
    ),
    "bounced": ("repayment", ((90 * DAY, None),)),
    # Promises are watched at their due time (a width of zero), for the delinquency group.
    "promises": ("delinquency", ((0.0, None),)),
}

#: Per kind of record, the window widths whose expiries wake a customer.
ExpiryWatch = Mapping[str, tuple[float, ...]]


def expiry_watch(groups: frozenset[str] | None, read: frozenset[str] | None) -> ExpiryWatch:
    """The windows :func:`next_check` watches when ``groups`` are computed and the
    features ``read`` are all anything judges a customer on (``None``: every one).

    A width whose features nobody reads is left out: its expiries would change only
    the profile, which shows the features as of the customer's clock anyway.

    >>> expiry_watch(frozenset({"orders"}), frozenset({"order_count_30d"}))
    {'orders': (2592000.0, 7776000.0)}
    """
    watch: dict[str, tuple[float, ...]] = {}
    for kind, (group_name, widths) in _EXPIRIES.items():
        if groups is not None and group_name not in groups:
            continue
        watched = tuple(w for w, only in widths if read is None or only is None or only & read)
        if watched:
            watch[kind] = watched
    return watch


_EVERY_EXPIRY = expiry_watch(None, None)


def next_check(state: CustomerState, now: float, watch: ExpiryWatch | None = None) -> float | None:
    """The next event time at which a feature changes without a new event.

    Days past due comes from the oldest overdue open invoice: it ticks over one
    day at a time from that invoice's due date (exact: rules on days past due
    fire on the day). Every other open invoice changes a feature only at a few
    fixed ages (:data:`INVOICE_CROSSINGS`), so a customer with many overdue
    invoices is still woken at most about once a day, not once per invoice.
    Windowed records expire and promises fall due; those checks are coarsened to
    at most one a day, so a busy customer does not cost an evaluation per
    expiring order. Only the windows ``watch`` names (:func:`expiry_watch`: those of
    the features the rules, the score and the detectors read) schedule a check;
    ``None`` watches every window.
    """
    ages = invoice_ages(state, now)
    best = ages.next_crossing
    oldest_due = ages.oldest_due if ages.oldest_due is not None and ages.oldest_due <= now else None
    if oldest_due is not None:
        days = (now - oldest_due) // DAY + 1
        if days <= DAILY_TICKS_UNTIL + 1:
            tick = oldest_due + days * DAY
            if best is None or tick < best:
                best = tick
    if watch is None:
        watch = _EVERY_EXPIRY
    coarse: float | None = None
    for kind, records in (
        ("orders", state.orders),
        ("paid", state.book["paid"]),
        ("bounced", state.book["bounced"]),
    ):
        widths = watch.get(kind)
        if widths is None:
            continue
        leaves = _next_change(records, now, widths)
        if leaves < math.inf and (coarse is None or leaves < coarse):
            coarse = leaves
    for promise in state.promises if "promises" in watch else ():
        if promise[PROMISE_DUE] > now and (coarse is None or promise[PROMISE_DUE] < coarse):
            coarse = promise[PROMISE_DUE]
    if coarse is not None:
        coarse = max(coarse, now + DAY)
        if best is None or coarse < best:
            best = coarse
    return best


def next_threshold(
    state: CustomerState, now: float, thresholds: dict[str, tuple[tuple[str, float], ...]]
) -> float | None:
    """The next time a feature that grows with the clock alone crosses a threshold.

    ``thresholds`` maps ``days_since_last_order``, ``days_since_last_payment`` or
    ``months_on_book`` to the ``(operator, value)`` comparisons the rules make on
    it; the customer is woken exactly when such a comparison starts to hold.
    """
    best: float | None = None
    for name, comparisons in thresholds.items():
        start = _clock_feature_start(state, name, now)
        if start is None:
            continue
        unit = MONTH if name == "months_on_book" else DAY
        for op, value in comparisons:
            if op not in (">=", ">") or not math.isfinite(value):
                continue  # only a rising comparison starts to hold as time goes on
            t = start + value * unit
            # The first representable time at which the feature, computed as the
            # group computes it, satisfies the comparison.
            while (t - start) / unit < value or (op == ">" and (t - start) / unit == value):
                t = math.nextafter(t, math.inf)
            if t > now and (best is None or t < best):
                best = t
    return best


#: Features that grow with the clock alone, measured from a time kept in the state.
CLOCK_FEATURES = ("days_since_last_order", "days_since_last_payment", "months_on_book")


def _clock_feature_start(state: CustomerState, name: str, now: float) -> float | None:
    if name == "months_on_book":
        return state.first_seen
    if name == "days_since_last_order":
        last = state.last_order_at
        for o in reversed(state.orders):
            if o[ORD_TS] <= now:
                return float(o[ORD_TS])
        return last
    if name == "days_since_last_payment":
        # Payments that can still bounce stay in ``paid`` when older than ``last_paid``.
        last_paid: float | None = state.book.get("last_paid")
        for p in reversed(state.book["paid"]):
            if p[0] <= now:
                return float(p[0]) if last_paid is None else max(float(p[0]), last_paid)
        return last_paid
    return None


__all__ = [
    "PROMISE_AMOUNT",
    "PROMISE_MADE",
    "REGISTRY",
    "Feature",
    "compute",
    "next_check",
    "next_threshold",
]
