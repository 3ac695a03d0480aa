"""Stored version-2 states of real customers, and what the version-2 engine did next.

``PYTHONPATH=<a checkout of the version-2 engine> python tests/unit/migration.py``
rewrites ``fixtures/state-v2-journal.json``: customers of the golden simulated stream,
each stopped after a receivables event (so the late-arrival journal and its base copy
of the book are stored), with the encoded state, the events that followed (one of them
arriving late, within the allowed lateness) and the final profile and warnings the
version-2 engine produced from there. ``test_state_codec.py`` decodes the stored
states with the current codec, continues them and compares. The file was written by
the engine at commit 9b1ce68.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson

from stream_risk.core import Context, CustomerState, advance, step
from stream_risk.core.ruleset import RuleSet, load_dir
from stream_risk.core.state import STATE_VERSION, encode
from stream_risk.core.step import profile_of
from stream_risk.schemas.events import input_event_adapter

FIXTURES = Path(__file__).parent / "fixtures"
STREAM = FIXTURES / "golden" / "golden-sim.jsonl.gz"
FIXTURE = FIXTURES / "state-v2-journal.json"
#: The default pack as it was at 9b1ce68: the comparison is of engines, not packs.
RULES = FIXTURES / "migration-rules"
CUSTOMERS = ("sim-0001", "sim-0002", "sim-0006", "sim-0007")
#: Share of a customer's events applied before its state is stored.
STOP_AT = 0.6
DAY = 86_400.0


def _parse(raw: dict[str, Any]) -> Any:
    return input_event_adapter.validate_json(orjson.dumps(raw))


def customer_events(customer_id: str) -> list[dict[str, Any]]:
    with gzip.open(STREAM) as lines:
        events = [orjson.loads(line) for line in lines]
    mine = [e for e in events if e["customer_id"] == customer_id]
    mine.sort(key=lambda e: _parse(e).occurred_at)
    return mine


def stop_index(events: list[dict[str, Any]]) -> int:
    """The first receivables event after ``STOP_AT`` of the events: stop right after it."""
    i = int(len(events) * STOP_AT)
    while events[i]["type"] not in ("invoice", "payment"):
        i += 1
    return i + 1


def late_order(rest: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rest`` with its first payment held back behind the next event (when that is
    within a day): it then arrives out of order, inside the allowed lateness."""
    for i, event in enumerate(rest[:-1]):
        nxt = rest[i + 1]
        t0 = _parse(event).occurred_at.timestamp()
        t1 = _parse(nxt).occurred_at.timestamp()
        if event["type"] == "payment" and t1 - t0 < DAY:
            return [*rest[:i], nxt, event, *rest[i + 2 :]]
    return rest


def continue_from(
    state: CustomerState, rest: list[dict[str, Any]], ctx: Context
) -> tuple[dict[str, Any], list[list[Any]]]:
    """Apply ``rest``, then advance 60 days: the final profile and every warning."""
    warnings: list[list[Any]] = []
    last = 0.0
    for raw in rest:
        event = _parse(raw)
        last = max(last, event.occurred_at.timestamp())
        _, out = step(state, event, ctx)
        warnings += [[w["rule"], w["level"], w["status"], w["occurred_at"]] for w in out.warnings]
    _, out = advance(state, last + 60 * DAY, ctx)
    warnings += [[w["rule"], w["level"], w["status"], w["occurred_at"]] for w in out.warnings]
    profile = profile_of(state)
    return {k: profile[k] for k in ("risk_score", "tier", "features")}, warnings


def migration_rules() -> RuleSet:
    rules, errors = load_dir(RULES)
    if rules is None:
        raise AssertionError(f"the pinned rule pack does not load: {errors}")
    return rules


def write() -> None:
    assert STATE_VERSION == 2, "the fixture is written by the version-2 engine"
    cases = {}
    for customer_id in CUSTOMERS:
        events = customer_events(customer_id)
        stop = stop_index(events)
        ctx = Context(rules=migration_rules())
        state = CustomerState(customer_id)
        for raw in events[:stop]:
            step(state, _parse(raw), ctx)
        stored = encode(state)
        rest = late_order(events[stop:])
        profile, warnings = continue_from(state, rest, ctx)
        cases[customer_id] = {
            "state": stored.decode(),
            "rest": rest,
            "profile": profile,
            "warnings": warnings,
        }
    FIXTURE.write_bytes(orjson.dumps(cases, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {FIXTURE}")


if __name__ == "__main__":
    write()
