"""The feature catalogue: REGISTRY, ``compute`` and ``stream-risk features`` agree.

Feature names are API (rules, warning reasons, profiles): every registered feature is
computed, nothing unregistered is, each has a unit and a description, and the CLI lists
them all.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from risk_factory import (
    collection,
    customer,
    invoice,
    order,
    outcome,
    payment,
    run,
    statement,
    ts,
)

from stream_risk import cli
from stream_risk.core import Context, CustomerState, profile_of
from stream_risk.core.features import REGISTRY, compute, groups_of
from stream_risk.core.ruleset import SCORE_VARIABLES, default_rules, variable_kind
from stream_risk.core.scoring import SCORE_FEATURES

NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _states() -> list[CustomerState]:
    rich, _ = run(
        [
            customer(0, 1000.0, segment={"industry": "retail"}, rating="A"),
            order(1, "o1", 100.0),
            order(2, "o2", 50.0),
            order(3, "o2", 50.0, "cancelled"),
            invoice(1, "i1", 100.0, 10),
            payment(5, "p1", 30.0),
            payment(6, "p1", 30.0, "bounced"),
            statement(7, 300.0, 30, "delinquent"),
            collection(
                8, "promise_to_pay", promised_at="2024-01-20T00:00:00+00:00", promised_amount=5.0
            ),
            outcome(9, "current"),
        ]
    )
    return [CustomerState("empty"), rich]


@pytest.mark.parametrize("which", [0, 1], ids=["empty", "rich"])
def test_compute_returns_exactly_the_registered_features(which: int) -> None:
    state = _states()[which]
    now = state.clock if state.clock is not None else ts(0)
    assert set(compute(state, now)) == set(REGISTRY)
    assert set(profile_of(state)["features"]) == set(REGISTRY)


@pytest.mark.parametrize("group", sorted({f.group for f in REGISTRY.values()}))
def test_each_group_computes_exactly_its_features(group: str) -> None:
    for state in _states():
        now = state.clock if state.clock is not None else ts(0)
        got = compute(state, now, frozenset({group}))
        assert set(got) == {n for n, f in REGISTRY.items() if f.group == group}, group


def test_the_groups_of_a_feature_compute_its_value() -> None:
    """``groups_of(names)`` are "the groups that compute names": a step that evaluates only
    those (what a rule on the feature asks for) must see the same value as a profile."""
    _, rich = _states()
    now = rich.clock
    assert now is not None
    full = compute(rich, now)
    assert full["dso"] is not None and full["open_balance"] > 0
    differ = {
        name: (compute(rich, now, groups_of([name]))[name], full[name])
        for name in REGISTRY
        if compute(rich, now, groups_of([name]))[name] != full[name]
    }
    assert differ == {}


def test_groups_of_names_the_groups_and_rejects_unknown_features() -> None:
    # aging reads open_balance, so its groups include exposure.
    assert groups_of(["order_count_30d", "days_past_due"]) == {"orders", "aging", "exposure"}
    with pytest.raises(KeyError):
        groups_of(["bounced_payments"])  # the version-1 name


def test_every_feature_is_documented() -> None:
    assert len(REGISTRY) >= 61
    for name, feature in REGISTRY.items():
        assert feature.name == name
        assert NAME.match(name), name
        assert feature.unit.strip(), name
        assert feature.description.strip(), name
        assert feature.group.strip(), name
    descriptions = [f.description for f in REGISTRY.values()]
    assert len(set(descriptions)) == len(descriptions)


def test_rules_and_score_read_registered_features() -> None:
    read = {v for v in default_rules().variables if variable_kind(v) is not None}
    assert read and all(v in REGISTRY or v in SCORE_VARIABLES for v in read)
    needed = {v for v in read if v in REGISTRY} | set(SCORE_FEATURES)
    assert needed <= set(REGISTRY)
    assert "bounced_payments_90d" in SCORE_FEATURES
    # a step computes (at least) the groups that the rules and the score read
    assert groups_of(needed) <= Context().feature_groups


def _features_cli(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    capsys.readouterr()
    rc = cli.main(["features", *args])
    out = capsys.readouterr().out
    assert rc == 0
    return [line for line in out.splitlines() if line.strip()]


def test_cli_features_lists_every_feature_with_unit_and_description(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = _features_cli(capsys)
    assert len(lines) == len(REGISTRY)
    listed = {}
    for line in lines:
        name = line.split()[0]
        listed[name] = line
    assert set(listed) == set(REGISTRY)
    for name, feature in REGISTRY.items():
        line = listed[name]
        rest = line[len(name) :]
        assert feature.unit in rest, (name, line)
        assert feature.description in rest, (name, line)
        assert rest.index(feature.unit) < rest.index(feature.description), line


def test_cli_features_json(capsys: pytest.CaptureFixture[str]) -> None:
    rows: list[dict[str, Any]] = [json.loads(line) for line in _features_cli(capsys, "--json")]
    assert {r["name"] for r in rows} == set(REGISTRY)
    for r in rows:
        f = REGISTRY[r["name"]]
        assert (r["unit"], r["description"]) == (f.unit, f.description)
