"""A wake-up evaluates a customer only where something observable changes.

An overdue customer is woken at every daily tick of days past due (the score reads
it continuously, up to 180 days). A wake-up at which what the rules, the tier and
the credit policy see is what the previous evaluation saw (the position of each
value among the constants it is compared with) is not evaluated. The outputs must
be those of evaluating at every wake-up.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from risk_factory import customer, invoice, parse, payment, ts

from stream_risk.core import Context, CustomerState, advance, step
from stream_risk.core import features as feats
from stream_risk.core.scoring import risk_score, tier_of
from stream_risk.core.state import encode

step_module = importlib.import_module("stream_risk.core.step")

Run = tuple[list[float], list[tuple[Any, ...]], list[tuple[Any, ...]], bytes]


def run(events: list[dict[str, Any]], until: float, ctx: Context, every: bool = False) -> Run:
    """Step the events in order, firing the wake-ups due before each and up to ``until``.

    Returns the times of the wake-ups that evaluated, the warnings, the tier changes
    and the encoded final state; with ``every``, every wake-up evaluates.
    """
    state = CustomerState("c1")
    evaluated: list[float] = []
    warnings: list[tuple[Any, ...]] = []
    tiers: list[tuple[Any, ...]] = []
    looks = step_module._unseen

    def look(
        state: CustomerState, now: float, features: Any, ctx: Context, since: Any
    ) -> float | None:
        score = None if every else looks(state, now, features, ctx, since)
        if score is None:
            evaluated.append(now)
        return score

    def collect(out: Any) -> None:
        warnings.extend(
            (w["rule"], w["level"], w["status"], w["occurred_at"]) for w in out.warnings
        )
        tiers.extend((t["before"], t["after"], t["occurred_at"]) for t in out.tier_changes)

    def wake_until(limit: float) -> None:
        while state.next_wakeup is not None and state.next_wakeup <= limit:
            _, out = advance(state, state.next_wakeup, ctx)
            collect(out)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(step_module, "_unseen", look)
        for raw in events:
            event = parse(raw)
            wake_until(event.occurred_at.timestamp())
            _, out = step(state, event, ctx)
            collect(out)
        wake_until(until)
    return evaluated, warnings, tiers, encode(state)


def both(events: list[dict[str, Any]], until: float) -> tuple[Run, Run]:
    return (
        run(events, until, Context(population=None)),
        run(events, until, Context(population=None), every=True),
    )


def _tier_from(utilisation: float) -> int:
    """The first days past due at which the scorecard's tier moves (nothing else changing)."""
    tiers = [
        tier_of(risk_score({"days_past_due": d, "credit_utilisation": utilisation}))
        for d in range(181)
    ]
    return next(d for d in range(1, 181) if tiers[d] != tiers[d - 1])


@pytest.mark.parametrize("amount", [900.0, 100.0])
def test_an_overdue_invoice_evaluates_its_customer_at_the_crossings_only(amount: float) -> None:
    """Due on day 10; nothing else happens. The days past due at which an evaluation
    sees a change: the credit policy's tolerance of 5 days is passed (6), the overdue
    warnings' 30, 60 and 90 days, and the day the score's tier moves. Where values the
    rules read move among their constants but no rule's level changes, the wake-up is
    looked at only: the invoice falls due (day 1), ``invoice_days_past_due >= 15`` (15)
    in rules whose other conditions do not hold."""
    events = [customer(0, 1000.0), invoice(1, "i1", amount, 10)]
    (evaluated, warnings, tiers, state), (every, every_warnings, every_tiers, every_state) = both(
        events, ts(120)
    )
    assert warnings == every_warnings and tiers == every_tiers
    assert state == every_state
    assert every_warnings and every_tiers  # the stream does say something
    days = {round((t - ts(10)) / feats.DAY) for t in evaluated if t > ts(10)}
    crossings = {6, 30, 60, 90, _tier_from(amount / 1000.0)}
    assert crossings <= days
    assert not {1, 15} & days
    # The daily ticks of the other days are looked at only.
    assert len(days - crossings) <= 6
    assert len(every) > 100


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["invoice", "payment", "bounced"]),
            st.floats(min_value=1, max_value=150),
            st.integers(min_value=0, max_value=3),
            st.floats(min_value=10, max_value=900),
            st.integers(min_value=0, max_value=40),
        ),
        max_size=8,
    )
)
def test_skipped_evaluations_publish_what_evaluating_every_wake_up_does(
    events: list[Any],
) -> None:
    raw = [customer(0, 1000.0)]
    for n, (kind, day, which, amount, terms) in enumerate(sorted(events, key=lambda e: e[1])):
        if kind == "invoice":
            raw.append(invoice(day, f"i{which}", round(amount, 2), day + terms, eid=f"e{n}"))
        else:
            status = "settled" if kind == "payment" else "bounced"
            raw.append(
                payment(
                    day, f"p{which}", round(amount, 2), status, invoice_id=f"i{which}", eid=f"e{n}"
                )
            )
    (evaluated, warnings, tiers, state), (every, every_warnings, every_tiers, every_state) = both(
        raw, ts(250)
    )
    assert warnings == every_warnings
    assert tiers == every_tiers
    # What a skipped wake-up leaves is what an evaluation leaves.
    assert state == every_state
    assert len(evaluated) <= len(every)
