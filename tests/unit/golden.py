"""The golden replay: what the engine publishes for two small fixed streams, compactly.

``python tests/unit/golden.py`` rewrites ``fixtures/golden/expected.json`` with the
outputs of the engine it imports; the expected file was written by the engine before
the incremental core (commit 7a82b3b), and ``test_golden.py`` compares the current
engine with it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson

from stream_risk.core import Context
from stream_risk.core.ruleset import RuleSet, load_dir
from stream_risk.replay import replay

FIXTURES = Path(__file__).parent / "fixtures" / "golden"
#: The default pack as it was when the expected outputs were written: the golden
#: test compares engines, so both evaluate the same rules (the default pack moves on).
RULES = FIXTURES / "rules"
#: (name, event file, base currency)
STREAMS = (("sim", "golden-sim.jsonl.gz", "EUR"), ("uci", "golden-uci.jsonl.gz", "TWD"))


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.6g}")
    return value


def golden_rules() -> RuleSet:
    rules, errors = load_dir(RULES)
    if rules is None:
        raise ValueError("\n".join(map(str, errors)))
    return rules


def outputs(events: Path, base_currency: str) -> dict[str, Any]:
    """Warnings, tier changes and final profiles of one replay, without ids and clocks."""
    warnings, profiles, tiers = io.BytesIO(), io.BytesIO(), io.BytesIO()
    replay(
        [events],
        warnings,
        profiles,
        Context(base_currency=base_currency, rules=golden_rules()),
        lambda bad: None,
        progress=False,
        tier_changes_out=tiers,
    )

    def lines(buffer: io.BytesIO) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in buffer.getvalue().splitlines()]

    return {
        "warnings": sorted(
            [w["customer_id"], w["rule"], w["level"], w["status"], w["occurred_at"]]
            for w in lines(warnings)
        ),
        "tier_changes": sorted(
            [t["customer_id"], t["before"], t["after"], t["occurred_at"]] for t in lines(tiers)
        ),
        "profiles": {
            p["customer_id"]: {
                "tier": p["tier"],
                "risk_score": _rounded(p["risk_score"]),
                "active_warnings": len(p["active_warnings"]),
                "features": {k: _rounded(v) for k, v in sorted(p["features"].items())},
            }
            for p in lines(profiles)
        },
    }


def all_outputs() -> dict[str, Any]:
    return {name: outputs(FIXTURES / file, currency) for name, file, currency in STREAMS}


if __name__ == "__main__":
    (FIXTURES / "expected.json").write_bytes(
        orjson.dumps(all_outputs(), option=orjson.OPT_SORT_KEYS)
    )
