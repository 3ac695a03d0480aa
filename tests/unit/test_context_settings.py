"""Every driver steps with the context the worker would use for the same environment.

``replay``, ``backtest``, ``rules test`` and ``costs`` exist to predict the worker;
they can only do that when the same ``STREAM_RISK_*`` variables give them the same
currency, rates, lateness, tier thresholds and outcome horizon.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stream_risk import backtest
from stream_risk import replay as replay_module
from stream_risk.agents import build
from stream_risk.cli import main
from stream_risk.cli import rules as rules_cli
from stream_risk.config import load_settings
from stream_risk.core import Context
from stream_risk.core.ruleset import default_rules
from stream_risk.tools import costs

ENVIRONMENT = {
    "STREAM_RISK_BASE_CURRENCY": "TWD",
    "STREAM_RISK_FX_RATES": '{"USD": 31.5}',
    "STREAM_RISK_ALLOWED_LATENESS_DAYS": "3",
    "STREAM_RISK_OUTCOME_HORIZON_DAYS": "5",
    "STREAM_RISK_TIER_THRESHOLDS": (
        '{"default": {"medium": 0.2, "high": 0.6}, "retail": {"medium": 0.1, "high": 0.3}}'
    ),
    "STREAM_RISK_WEB_ENABLED": "false",
    "STREAM_RISK_REDIS_ENABLED": "false",
}


def fingerprint(ctx: Context) -> dict[str, Any]:
    """What a context decides with, apart from mutable model state."""
    return {
        "base_currency": ctx.base_currency,
        "fx_rates": ctx.fx_rates,
        "allowed_lateness": ctx.allowed_lateness,
        "outcome_horizon": ctx.outcome_horizon,
        "snapshot_every": ctx.snapshot_every,
        "tiers": ctx.scorer.tiers,
        "rules": ctx.rules.version,
        "dedup_capacity": ctx.dedup_capacity,
        "population": ctx.population is not None,
    }


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("STREAM_RISK_DATA_DIR", str(tmp_path / "data"))
    events = tmp_path / "events.jsonl"
    events.write_text("")
    return events


def test_the_settings_reach_the_context(environment: Path) -> None:
    ctx = Context.from_settings(load_settings())
    assert fingerprint(ctx) == {
        "base_currency": "TWD",
        "fx_rates": {"USD": 31.5},
        "allowed_lateness": 3 * 86_400.0,
        "outcome_horizon": 5 * 86_400.0,
        "snapshot_every": 5 * 86_400.0,
        "tiers": {
            "default": {"medium": 0.2, "high": 0.6},
            "retail": {"medium": 0.1, "high": 0.3},
        },
        "rules": default_rules().version,
        "dedup_capacity": 128,
        "population": True,
    }


def test_replay_backtest_rules_test_costs_and_worker_share_one_context(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Context] = {}

    def capture(name: str) -> Any:
        def fake(*args: Any, **kwargs: Any) -> Any:
            seen[name] = next(a for a in (*args, *kwargs.values()) if isinstance(a, Context))
            raise _Captured

        return fake

    monkeypatch.setattr(replay_module, "replay", capture("replay"))
    monkeypatch.setattr(backtest, "replay_outcomes", capture("backtest"))
    monkeypatch.setattr(replay_module, "Replayer", capture("rules test"))
    monkeypatch.setattr(costs, "Replayer", capture("costs"))
    for argv in (
        ["replay", str(environment)],
        ["backtest", str(environment)],
        ["costs", str(environment)],
    ):
        with pytest.raises(_Captured):
            main(argv)
    with pytest.raises(_Captured):
        rules_cli._replay(default_rules(), [environment], None)

    worker = build(load_settings()).driver.ctx
    assert set(seen) == {"replay", "backtest", "rules test", "costs"}
    for name, ctx in seen.items():
        assert fingerprint(ctx) == fingerprint(worker), name


def test_command_line_options_override_single_settings(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = Context.from_settings(
        load_settings(), base_currency="EUR", fx_rates={"GBP": 1.2}, allowed_lateness_days=1
    )
    assert ctx.base_currency == "EUR"
    assert ctx.fx_rates == {"USD": 31.5, "GBP": 1.2}
    assert ctx.allowed_lateness == 86_400.0
    assert ctx.scorer.tiers["retail"] == {"medium": 0.1, "high": 0.3}


class _Captured(Exception):
    """Stops a verb once it has built its context."""
