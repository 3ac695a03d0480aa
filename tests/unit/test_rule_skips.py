"""Evaluating only what changed answers as evaluating every rule.

An evaluation with the customer's previous one (:class:`Evaluated`) looks again only
at rules whose inputs moved among the constants they are compared with, and leaves
alone lifecycles that cannot move; an evaluation with plain features evaluates every
rule and runs every lifecycle. Both must publish the same and leave the same state.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from stream_risk.core import Context, CustomerState
from stream_risk.core.alerting import evaluate
from stream_risk.core.outputs import Outputs
from stream_risk.core.previous import Evaluated, PreviousEvaluation
from stream_risk.core.ruleset import RuleSet, load_files, position

DAY = 86_400.0
START = 1_750_000_000.0

#: Every way a rule's result or lifecycle can move: ``for``, cooldowns, escalation,
#: a critical rule inhibiting its group, a digest group, segment and tier filters,
#: a name read by value (arithmetic), label comparisons and the tier read as a value.
RULES = """
groups:
  - name: overdue
    cooldown: 3d
    rules:
      - name: late
        expr: days_past_due >= 30
        level: medium
        for: 2d
        escalate:
          - {level: high, expr: days_past_due >= 60 || times_60dpd_6m >= 3}
      - name: very_late
        expr: days_past_due >= 90 && overdue_balance > 0
        level: critical
      - name: scaled
        expr: 2.0 * days_past_due >= 70.0 + credit_utilisation
        level: high
        cooldown: 1d
  - name: habits
    rules:
      - name: using_more
        expr: credit_utilisation >= 0.7
        level: low
        labels: {group: watch}
      - name: paying_later
        expr: avg_days_late_90d > 10 && avg_days_late_90d != 20
        level: low
        labels: {group: watch}
      - name: retail_only
        expr: credit_utilisation > 0.5 || days_past_due == 45
        level: low
        segments: {industry: [retail]}
        labels: {group: watch}
      - name: high_tier
        expr: overdue_balance >= 1000
        level: medium
        for: 1d
        segments: {tier: [medium, high]}
      - name: rated
        expr: external_rating == 'D' || (tier == 'high' && credit_utilisation < 0.2)
        level: medium
        cooldown: 2d
"""


def _rules(text: str) -> RuleSet:
    rules, errors = load_files({"skips.yaml": text}, "skips")
    assert rules is not None, errors
    return rules


RULESET = _rules(RULES)
#: Without a tier filter the tier is an input like any other, not part of the scope.
UNFILTERED = _rules(RULES.replace("        segments: {tier: [medium, high]}\n", ""))
NUMBERS = [0, 0.1, 0.5, 0.7, 0.71, 1, 3, 10, 10.5, 20, 29.9, 30, 45, 60, 89, 90, 1000, 2000]
value = st.one_of(
    st.none(),
    st.sampled_from(NUMBERS),
    st.sampled_from([True, False, math.inf, "D", "A"]),
    st.floats(min_value=-5, max_value=120, allow_nan=False),
)
NAMES = [name for name in RULESET.variables if name not in ("tier", "raw_tier")]
first_features = st.fixed_dictionaries({name: value for name in NAMES})
#: As in a stream, an evaluation moves a few features, often none.
steps = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 8.0]),  # days since the last one
        st.dictionaries(st.sampled_from(NAMES), value, max_size=3),
        st.sampled_from(["low", "medium", "high"]),  # the score's tier
        st.sampled_from([None, {"industry": "retail"}, {"industry": "energy"}]),
        st.sampled_from([False] * 9 + [True]),  # the memory of the previous one is lost
    ),
    min_size=1,
    max_size=25,
)


def _evaluate(state: CustomerState, features: Any, n: int, now: float, ctx: Context) -> Outputs:
    out = Outputs()
    state.clock = now
    evaluate(state, features, f"e{n}", now, ctx, out)
    return out


@settings(max_examples=300, deadline=None)
@given(first_features, steps, st.sampled_from([RULESET, UNFILTERED]))
# Only the tier moves, and a rule reads it.
@example(
    {**dict.fromkeys(NAMES), "credit_utilisation": 0.1},
    [(1.0, {}, "low", None, False), (1.0, {}, "high", None, False)],
    UNFILTERED,
)
def test_evaluating_what_changed_is_evaluating_everything(
    features: dict[str, Any],
    sequence: list[tuple[float, dict[str, Any], str, dict[str, str] | None, bool]],
    rules: RuleSet,
) -> None:
    ctx = Context(rules=rules)
    skipping, full = CustomerState("c-1"), CustomerState("c-1")
    previous = PreviousEvaluation()
    now = START
    for n, (gap, moves, raw_tier, segment, forget) in enumerate(sequence):
        now += gap * DAY
        features = {**features, **moves, "raw_tier": raw_tier}
        if forget:
            previous = PreviousEvaluation()
        previous.seq += 1
        changed = previous.changed(features)
        previous.remember(features)
        for state in (skipping, full):
            state.segment, state.tier = segment, raw_tier
        a = _evaluate(skipping, Evaluated(features, previous, changed), n, now, ctx)
        b = _evaluate(full, dict(features), n, now, ctx)
        assert a == b, n
        assert all(w["warning_id"] for w in a.warnings), n  # every episode has an id
        assert (skipping.alerts, skipping.watch) == (full.alerts, full.watch), n
        assert (skipping.tier, skipping.tier_hold) == (full.tier, full.tier_hold), n
        # The results kept across evaluations are those of the full context.
        results = previous.rules
        env = rules.environment(features, skipping.tier)
        for i, rule in enumerate(rules.rules):
            held = rule.level_in(env) if rule.applies_to(segment, skipping.tier) else None
            assert results.levels[i] == held, (n, rule.name)


@settings(max_examples=300, deadline=None)
@given(st.lists(value, min_size=2, max_size=6))
@example([19.0, 20.0, 21.0])  # avg_days_late_90d != 20 tells 20 apart from its neighbours
def test_values_at_the_same_position_are_the_same_input_to_every_rule(
    values: list[Any],
) -> None:
    """A feature whose position did not move cannot move any rule that reads it: the
    rules' memo keys on positions, so equal positions must give equal results."""
    for name, cuts in RULESET.inputs.items():
        readers = [RULESET.rules[i] for i in RULESET.readers[name]]
        for x in values:
            for y in values:
                if position(x, cuts) != position(y, cuts):
                    continue
                for tier in ("low", "high"):
                    for rule in readers:
                        levels = [
                            rule.level_in(RULESET.environment({name: v}, tier)) for v in (x, y)
                        ]
                        assert levels[0] == levels[1], (name, x, y, tier, rule.name)


def test_the_index_knows_who_reads_what() -> None:
    readers = {
        name: {RULESET.rules[i].name for i in found} for name, found in RULESET.readers.items()
    }
    assert readers["days_past_due"] == {"late", "very_late", "scaled", "retail_only"}
    assert readers["tier"] == {"rated"}
    # Read by value in ``scaled``: no rule can bucket it.
    assert RULESET.inputs["days_past_due"] is None
    assert RULESET.inputs["credit_utilisation"] is None
    # Compared with numbers only: at-or-above cuts (>=, <, ==, !=), above cuts (>, <=, ==, !=).
    assert RULESET.inputs["avg_days_late_90d"] == ((20.0,), (10.0, 20.0))
    assert RULESET.inputs["times_60dpd_6m"] == ((3.0,), ())
    assert RULESET.inputs["external_rating"] is None  # compared with a label
    assert "tier" not in RULESET.inputs and "raw_tier" not in RULESET.inputs
