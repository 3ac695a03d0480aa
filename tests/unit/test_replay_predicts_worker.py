"""Replay and the worker run one driver loop: the same events give the same outputs.

The worker's :class:`MonitorDriver` takes Kafka messages in batches; the
:class:`Replayer` takes a file's events one by one. Both go through one guard, so
they apply, reject (with the same reason) and undo exactly the same events.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from risk_factory import order, parse, strip_detected

from stream_risk import driver as driver_module
from stream_risk.config import Settings
from stream_risk.core import Context, profile_of
from stream_risk.core.state import decode
from stream_risk.driver import Limits, Message, MonitorDriver
from stream_risk.replay import BadLine, Replayer, replay
from stream_risk.schemas.events import EVENT_TYPES
from stream_risk.tools.simulate import generate

TOPICS = {f"in.{t}": t for t in EVENT_TYPES}
#: An event whose step fails for a reason that is no bad input (a bug): both undo it.
BROKEN = "broken-event"


def _events() -> list[dict[str, Any]]:
    # Two of the five deteriorate, so that both drivers have warnings to agree on.
    events = list(generate(customers=5, days=200, seed=5, deteriorating_share=0.4))
    first = events[len(events) // 3]
    cid = first["customer_id"]
    # Bad input for the core (no exchange rate) and an internal failure, mid-stream.
    events.append(order(0, "fx", 10.0, cid=cid, eid="no-rate", currency="XXX"))
    events[-1]["occurred_at"] = first["occurred_at"]
    broken = dict(events[len(events) // 2], event_id=BROKEN)
    events.append(broken)
    return sorted(events, key=lambda e: e["occurred_at"])


def _replay(events: list[dict[str, Any]]) -> tuple[Replayer, list[dict[str, Any]], list[str]]:
    warnings: list[dict[str, Any]] = []
    bad: list[BadLine] = []
    replayer = Replayer(Context(), warnings.append)
    for n, raw in enumerate(events):
        replayer.apply(parse(raw), "events", n, bad.append)
    return replayer, warnings, [b.reason for b in bad]


def _worker(
    events: list[dict[str, Any]], batch: int, max_event_bytes: int | None = None
) -> tuple[dict[str, bytes], list[dict[str, Any]], list[str]]:
    table: dict[str, bytes] = {}
    limits = Limits(check_wall_clock=False)
    if max_event_bytes is not None:
        limits = Limits(check_wall_clock=False, max_event_bytes=max_event_bytes)
    driver = MonitorDriver(Context(), TOPICS, table.get, limits=limits)
    messages = [
        Message(f"in.{e['type']}", 0, n, e["customer_id"].encode(), json.dumps(e).encode(), None)
        for n, e in enumerate(events)
    ]
    warnings: list[dict[str, Any]] = []
    reasons: list[str] = []
    for n in range(0, len(messages), batch):
        result = driver.process(messages[n : n + batch])
        table.update((cid, raw) for cid, (_, raw) in result.states.items())
        warnings += [w for _, w in result.warnings]
        reasons += [record["reason"] for _, record in result.dead_letters]
    return table, warnings, reasons


@pytest.fixture
def broken_step(monkeypatch: pytest.MonkeyPatch) -> None:
    real_step = driver_module.step

    def step(state: Any, event: Any, ctx: Context) -> Any:
        if event.event_id == BROKEN:
            raise RuntimeError("boom")
        return real_step(state, event, ctx)

    monkeypatch.setattr(driver_module, "step", step)


@pytest.mark.parametrize("batch", [1, 50])
@pytest.mark.usefixtures("broken_step")
def test_replay_gives_what_the_worker_gives(batch: int) -> None:
    events = _events()
    replayer, replay_warnings, replay_bad = _replay(events)
    table, worker_warnings, worker_bad = _worker(events, batch)

    assert len(replay_warnings) > 5
    assert [strip_detected(w) for w in replay_warnings] == [
        strip_detected(w) for w in worker_warnings
    ]
    assert replay_bad == worker_bad
    assert len(replay_bad) == 2
    assert "no configured exchange rate" in replay_bad[0]
    assert replay_bad[1] == "internal error: RuntimeError: boom"
    assert sorted(replayer.states) == sorted(table)
    for cid, state in replayer.states.items():
        assert profile_of(state) == profile_of(decode(table[cid])), cid
    assert replayer.report.applied == len(events) - 2


def test_a_rejected_event_leaves_no_trace_in_replay() -> None:
    """The guard undoes a failed event in replay too: state and outputs as before it."""
    events = _events()
    clean = [e for e in events if e["event_id"] not in ("no-rate",)]
    with_bad, warnings_bad, bad = _replay(events)
    without, warnings_clean, none = _replay(clean)
    assert none == [] and len(bad) == 1
    assert [strip_detected(w) for w in warnings_bad] == [strip_detected(w) for w in warnings_clean]
    assert {c: profile_of(s) for c, s in with_bad.states.items()} == {
        c: profile_of(s) for c, s in without.states.items()
    }


def test_replay_holds_events_to_the_limits_the_settings_give_the_worker(tmp_path: Path) -> None:
    settings = Settings(max_event_bytes=2_048, clock_checks="record", clock_skew_seconds=60.0)
    limits = Limits.from_settings(settings)
    assert (limits.max_event_bytes, limits.clock_skew, limits.check_wall_clock) == (
        2_048,
        60.0,
        False,
    )
    events = [order(1, "o1", 10.0), order(2, "o2", 20.0, note="x" * 1_900)]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    bad: list[BadLine] = []
    report = replay([path], None, None, Context(), bad.append, progress=False, limits=limits)
    worker_bad = _worker(events, batch=10, max_event_bytes=2_048)[2]
    assert report.applied == 1
    assert [b.reason for b in bad] == worker_bad
    assert worker_bad[0].startswith("message of 2")
    assert worker_bad[0].endswith("exceeds the maximum of 2048 bytes")
