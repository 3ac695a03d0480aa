"""Days past due wakes a customer only where something observable changes.

The engine used to evaluate an overdue customer at every daily tick of days past
due; it now looks at the ticks and evaluates only those where a rule, the tier or
the credit policy sees a change. The outputs must be those of the daily evaluation.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from risk_factory import customer, invoice, parse, ts

from stream_risk.core import Context, CustomerState, advance, step
from stream_risk.core import features as feats

step_module = importlib.import_module("stream_risk.core.step")


def _daily(state: CustomerState, now: float, until: float | None, ctx: Context) -> float | None:
    """Every daily tick of days past due, as the engine woke customers before."""
    tick = feats.next_overdue_day(state, now)
    return tick if tick is not None and (until is None or tick < until) else None


def run(
    events: list[dict[str, Any]], until: float, ctx: Context
) -> tuple[list[float], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Step the events in order, firing the wake-ups due before each and up to ``until``.

    Returns the wake-up times, the warnings and the tier changes.
    """
    state = CustomerState("c1")
    wakes: list[float] = []
    warnings: list[tuple[Any, ...]] = []
    tiers: list[tuple[Any, ...]] = []

    def collect(out: Any) -> None:
        warnings.extend(
            (w["rule"], w["level"], w["status"], w["occurred_at"]) for w in out.warnings
        )
        tiers.extend((t["before"], t["after"], t["occurred_at"]) for t in out.tier_changes)

    def wake_until(limit: float) -> None:
        while state.next_wakeup is not None and state.next_wakeup <= limit:
            wakes.append(state.next_wakeup)
            _, out = advance(state, state.next_wakeup, ctx)
            collect(out)

    for raw in events:
        event = parse(raw)
        wake_until(event.occurred_at.timestamp())
        _, out = step(state, event, ctx)
        collect(out)
    wake_until(until)
    return wakes, warnings, tiers


def both(
    events: list[dict[str, Any]], until: float, monkeypatch: pytest.MonkeyPatch
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    crossing = run(events, until, Context(population=None))
    with monkeypatch.context() as m:
        m.setattr(step_module, "_next_overdue_change", _daily)
        daily = run(events, until, Context(population=None))
    return crossing, daily


@pytest.mark.parametrize(
    ("amount", "crossing_days"),
    [
        # 900 of a 1000 limit: the score starts in the medium tier; the overdue
        # warnings' 30, 60 and 90 days and the score's high tier are the crossings.
        (900.0, {6, 30, 60, 90}),
        # 100 of the limit: the same warnings; the score reaches the medium tier later.
        (100.0, {6, 30, 60, 90}),
    ],
)
def test_an_overdue_invoice_wakes_its_customer_at_the_crossings_only(
    amount: float, crossing_days: set[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [customer(0, 1000.0), invoice(1, "i1", amount, 10)]
    (wakes, warnings, tiers), (daily_wakes, daily_warnings, daily_tiers) = both(
        events, ts(120), monkeypatch
    )
    assert warnings == daily_warnings and tiers == daily_tiers
    overdue_days = {round((w - ts(10)) / feats.DAY) for w in wakes}
    assert crossing_days <= overdue_days
    # Far fewer evaluations than a daily one, each at one of its ticks.
    assert len(wakes) < len(daily_wakes) / 3
    assert set(wakes) <= set(daily_wakes)


@settings(max_examples=15, deadline=None)
@given(
    st.lists(
        st.tuples(
            # Payments start the coarse daily checks of the repayment windows, which
            # daily ticks used to push a day on (the known, explained difference).
            st.sampled_from(["invoice", "re-sent invoice"]),
            st.floats(min_value=1, max_value=150),
            st.integers(min_value=0, max_value=3),
            st.floats(min_value=10, max_value=900),
            st.integers(min_value=0, max_value=40),
        ),
        max_size=8,
    )
)
def test_crossing_wake_ups_publish_what_daily_ones_do(events: list[Any]) -> None:
    raw = [customer(0, 1000.0)]
    for n, (kind, day, which, amount, terms) in enumerate(sorted(events, key=lambda e: e[1])):
        invoice_id = f"i{which}" if kind == "re-sent invoice" else f"i{n}"
        raw.append(invoice(day, invoice_id, round(amount, 2), day + terms, eid=f"e{n}"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        (wakes, warnings, tiers), (daily_wakes, daily_warnings, daily_tiers) = both(
            raw, ts(250), monkeypatch
        )
    assert warnings == daily_warnings
    assert tiers == daily_tiers
    assert len(wakes) <= len(daily_wakes)
