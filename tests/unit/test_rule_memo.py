"""A rule evaluated once per distinct input holds at the level the full context gives."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_risk.core.ruleset import default_rules, load_files

RULES = default_rules()

#: A few values per name, so that inputs repeat and the memo is hit.
value = st.one_of(
    st.none(),
    st.sampled_from([0, 1, 2, 3, 30, 60, 90, 0.0, 0.25, 0.5, 0.99, 1.0, 1.5, 4.0, -0.995]),
    st.floats(min_value=-10, max_value=200, allow_nan=False),
)


def features_strategy() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({name: value for name in RULES.variables if name != "tier"})


@settings(max_examples=300, deadline=None)
@given(st.lists(features_strategy(), min_size=1, max_size=6), st.sampled_from(["low", "high"]))
def test_memoised_level_is_the_level_in_the_full_context(
    evaluations: list[dict[str, Any]], tier: str
) -> None:
    for features in evaluations * 2:  # the second round is answered from the memo
        env = RULES.environment(features, tier)
        for rule in RULES.rules:
            assert RULES.level_of(rule, features, tier) == rule.level_in(env), rule.name


def test_a_boolean_and_a_number_are_different_inputs() -> None:
    rules, errors = load_files(
        {
            "drift.yaml": "groups:\n  - name: drift\n    rules:\n"
            "      - {name: drift, expr: 'days_late_drift >= 1', level: medium}\n"
        }
    )
    assert rules is not None, errors
    rule = rules.rules[0]
    assert rule.reads == ("days_late_drift",)
    assert rules.level_of(rule, {"days_late_drift": 1.0}, "low") is not None
    # True == 1.0 in Python: a memo keyed on the value alone would answer it from above.
    assert rules.level_of(rule, {"days_late_drift": True}, "low") == rule.level_in(
        rules.environment({"days_late_drift": True}, "low")
    )


#: Rules that use a name in simple comparisons only, and rules that use it otherwise:
#: the memo may bucket the first kind by which comparisons hold, never the second.
MIXED = load_files(
    {
        "mixed.yaml": "groups:\n  - name: mixed\n    rules:\n"
        "      - {name: compared, expr: 'days_past_due >= 30 && credit_utilisation < 0.5',"
        " level: low, escalate: [{level: high, expr: 'days_past_due >= 90'}]}\n"
        "      - {name: scaled, expr: '2.0 * days_past_due >= 60', level: low}\n"
        "      - {name: shifted, expr: 'days_past_due >= 30.0 + credit_utilisation', level: low}\n"
        "      - {name: reversed, expr: '30 <= days_past_due || credit_utilisation > 1',"
        " level: low}\n"
        "      - {name: ternary, expr: 'days_past_due > 5 ? credit_utilisation > 0.9 :"
        " credit_utilisation > 0.5', level: low}\n"
        "      - {name: label, expr: \"tier == 'high' && days_past_due != 0\", level: low}\n"
    }
)[0]


def test_only_names_used_in_plain_comparisons_are_bucketed() -> None:
    assert MIXED is not None

    def thresholds(name: str) -> dict[str, Any]:
        rule = MIXED.by_name[name]
        return dict(zip(rule.reads, rule.thresholds, strict=True))

    assert thresholds("compared") == {
        "days_past_due": ((">=", 30.0), (">=", 90.0)),
        "credit_utilisation": (("<", 0.5),),
    }
    assert thresholds("scaled") == {"days_past_due": None}
    assert thresholds("shifted") == {"days_past_due": None, "credit_utilisation": None}
    assert thresholds("reversed") == {"days_past_due": None, "credit_utilisation": ((">", 1.0),)}
    assert thresholds("label") == {"tier": (("==", "high"),), "days_past_due": (("!=", 0.0),)}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries({"days_past_due": value, "credit_utilisation": value}),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from(["low", "high"]),
)
def test_bucketed_memo_gives_the_level_of_the_full_context(
    evaluations: list[dict[str, Any]], tier: str
) -> None:
    assert MIXED is not None
    for features in evaluations * 2:
        env = MIXED.environment(features, tier)
        for rule in MIXED.rules:
            assert MIXED.level_of(rule, features, tier) == rule.level_in(env), rule.name
