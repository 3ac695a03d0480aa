"""An evaluation that reuses what the customer's previous one computed answers as a full one."""

from __future__ import annotations

import io
import re
from typing import Any

import orjson
from golden import FIXTURES, golden_rules
from hypothesis import given, settings
from hypothesis import strategies as st
from risk_factory import event_lists, gap_lists, steps_and_wake_ups, strategy_context

from stream_risk.core import Context, CustomerState
from stream_risk.core import features as feats
from stream_risk.core.previous import EvaluationMemory, PreviousEvaluation
from stream_risk.core.step import _order
from stream_risk.replay import replay

DAY = 86_400.0


class Forgetful(EvaluationMemory):
    """A memory that never remembers: every evaluation is a full one."""

    def of(self, customer_id: str) -> PreviousEvaluation:
        return PreviousEvaluation()


def _outputs(memory: EvaluationMemory, stream: str, currency: str) -> dict[str, Any]:
    warnings, profiles, tiers, actions = (io.BytesIO() for _ in range(4))
    # Without the segment detector: it is re-scored only when its inputs change (by
    # design), so its scores, unlike everything else, depend on the memory.
    ctx = Context(base_currency=currency, rules=golden_rules(), population=None)
    ctx.memory = memory
    report = replay(
        [FIXTURES / stream],
        warnings,
        profiles,
        ctx,
        lambda bad: None,
        progress=False,
        tier_changes_out=tiers,
        credit_actions_out=actions,
    )
    out: dict[str, Any] = {
        name: [orjson.loads(line) for line in buffer.getvalue().splitlines()]
        for name, buffer in (
            ("warnings", warnings),
            ("profiles", profiles),
            ("tiers", tiers),
            ("actions", actions),
        )
    }
    for records in out.values():
        for record in records:
            record.pop("detected_at", None)
    out["applied"] = report.applied
    out["reuse"] = report.reuse
    return out


def test_remembering_changes_no_output() -> None:
    for stream, currency in (("golden-sim.jsonl.gz", "EUR"), ("golden-uci.jsonl.gz", "TWD")):
        remembered = _outputs(EvaluationMemory(), stream, currency)
        full = _outputs(Forgetful(), stream, currency)
        assert remembered["warnings"], stream  # the stream does warn
        reuse = remembered.pop("reuse")
        full.pop("reuse")
        assert remembered == full, stream
        # Most rule checks and scores were kept (the share is printed by replay).
        rules, score = (int(re.search(r"\((\d+)% kept", line)[1]) for line in reuse[:2])  # type: ignore[index]
        assert rules > 50 and score > 20, reuse


def test_an_evicted_customer_is_evaluated_in_full() -> None:
    memory = EvaluationMemory(capacity=2)
    for customer in ("a", "b", "c"):
        memory.of(customer).seq = 5
    assert len(memory) == 2
    assert memory.of("a").seq == 0


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=200, allow_nan=False),  # days after start
            st.sampled_from(["placed", "placed", "placed", "cancelled"]),
            st.integers(min_value=0, max_value=12),  # order number
            st.floats(min_value=1, max_value=1000, allow_nan=False),
        ),
        min_size=1,
        max_size=40,
    ),
    gap_lists(3),
)
def test_a_reused_orders_group_is_the_group_computed_afresh(
    events: list[tuple[float, str, int, float]], gaps: list[float]
) -> None:
    """Evaluated after every order and at later times, reuse never changes a value."""
    state = CustomerState("c")
    kept: dict[str, Any] = {}
    start = 1_700_000_000.0
    now = start
    groups = frozenset({"orders"})
    for days, status, number, amount in sorted(events):
        now = max(now, start + days * DAY)
        _order(state, f"o-{number}", amount, status, now, 7 * DAY)
        for gap in [0.0, *gaps]:
            now += gap * 30 * DAY
            assert feats.compute(state, now, groups, kept) == feats.compute(state, now, groups)


@settings(max_examples=200, deadline=None)
@given(
    event_lists(max_size=40),
    gap_lists(120),
)
def test_reused_groups_are_the_groups_computed_afresh_for_any_events(
    events: list[dict[str, Any]], gaps: list[float]
) -> None:
    """Whatever the events (invoices re-sent, payments bounced or reversed, statements,
    in or out of order) and however far the clock moves without them, every group kept
    from the customer's earlier computations gives what its state gives (promises are
    in the feature reference's scripts)."""
    kept: dict[str, Any] = {}
    for state in steps_and_wake_ups(events, gaps, strategy_context()):
        assert state.clock is not None
        now = state.clock
        assert feats.compute(state, now, None, kept) == feats.compute(state, now)
