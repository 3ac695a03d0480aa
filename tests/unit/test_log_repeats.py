"""A reconnect loop's repeated lines are bounded per kind and interval, with a count."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest

from stream_risk.logs import RepeatFilter, limit_repeats


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out = io.StringIO()
    root.handlers[:] = [logging.StreamHandler(out), logging.StreamHandler(io.StringIO())]
    root.setLevel(logging.INFO)
    yield root, out
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_three_minute_outage_logs_a_bounded_number_of_lines(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    root, out = captured
    now = [0.0]
    gate = limit_repeats(root, RepeatFilter(interval=10.0, burst=3, clock=lambda: now[0]))
    conn = logging.getLogger("aiokafka.conn")
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    ours = logging.getLogger("stream_risk.sinks.redis")
    # 140,000 attempts over 180 s, as a tight reconnect loop made them.
    for n in range(140_000):
        now[0] = n * 180 / 140_000
        conn.error("Unable connect to node with id %d: %s", 1, "Connect call failed")
        if n % 1000 == 0:
            coordinator.error("Error sending JoinGroupRequest_v%d to node %d", 5, 1)
            ours.warning("Redis unavailable (%s)", "refused")
    lines = out.getvalue().splitlines()
    connects = [line for line in lines if line.startswith("Unable connect")]
    # Three per 10 s window: 18 windows.
    assert 50 <= len(connects) <= 57
    suppressed = [int(m) for m in re.findall(r"\((\d+) similar lines suppressed", out.getvalue())]
    assert suppressed and all(n > 0 for n in suppressed)
    joins = [line for line in lines if line.startswith("Error sending JoinGroupRequest")]
    assert len(joins) <= 57
    # Our own lines are never held back.
    assert sum(line.startswith("Redis unavailable") for line in lines) == 140
    # Every record that was left out is counted once, though the filter sits on two handlers.
    assert gate.suppressed_total == 140_000 + 140 - len(connects) - len(joins)


def test_critical_records_always_pass(captured: tuple[logging.Logger, io.StringIO]) -> None:
    root, out = captured
    limit_repeats(root, RepeatFilter(interval=60.0, burst=1, clock=lambda: 0.0))
    for _ in range(5):
        logging.getLogger("faust.worker").critical("the worker stops")
    assert out.getvalue().count("the worker stops") == 5


def test_messages_with_values_inside_share_a_kind_and_memory_stays_bounded() -> None:
    gate = RepeatFilter(interval=10.0, burst=1, clock=lambda: 0.0, max_kinds=8)
    kept = 0
    for n in range(1000):
        record = logging.LogRecord(
            "faust.transport", logging.WARNING, "c.py", 1, f"seek failed at offset {n}", None, None
        )
        kept += gate.filter(record)
    assert kept == 1
    for n in range(100):
        record = logging.LogRecord(
            "faust.transport", logging.WARNING, "c.py", 1, f"kind {chr(65 + n % 26)}", None, None
        )
        gate.filter(record)
    assert len(gate._windows) <= 8
