"""``stream-risk chaos`` in its fast mode: kill -9, a broker stop, a Redis outage, poison.

Real workers and a notifier on the real broker and Redis (the test command's,
stopped and started by docker/services.sh), graded by replay of the same input
and by what a webhook receiver got.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_risk.tools.chaos import FAST, format_row, run_chaos

from .conftest import BOOTSTRAP, REDIS_URL

SERVICES = Path(__file__).resolve().parents[2] / "docker" / "services.sh"
#: Notifications ``notify run`` sends at once (its ``--concurrency`` default).
NOTIFIER_CONCURRENCY = 8


# Four phases of real worker starts, kills and outages on a shared machine: beyond
# the suite's default per-test limit.
@pytest.mark.timeout(1500)
def test_faults_lose_nothing_count_nothing_twice_and_stop_no_worker(
    services: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAM_RISK_KAFKA_BOOTSTRAP", BOOTSTRAP)
    monkeypatch.setenv("STREAM_RISK_REDIS_URL", REDIS_URL)
    figures = run_chaos(FAST, seed=7, services_script=SERVICES, workdir=tmp_path, say=print)
    table = "\n".join(map(format_row, figures))
    assert [f.fault.split()[0] for f in figures] == ["kill", "broker", "redis", "poison"], table
    assert figures[0].fault == f"kill -9 x{FAST.kills}"
    for f in figures:
        assert f.twice == 0, table
        # Redis appends a (warning, status, level) once, whatever the redeliveries.
        assert f.dup_redis == 0, table
        assert f.alive and f.exits == 0, table
        assert f.warnings > 0 or f is figures[0], table
    poison = figures[-1]
    assert poison.poison_sent >= 10 + FAST.generated_poison // 2, table
    assert poison.poison_unaccounted == 0, table
    assert poison.dead_letters >= 10, table
    # Nothing lost: every order and payment counted, balances as replay's, no valid event
    # dead-lettered, every warning replay raises on the topic, the notifier drained.
    for f in figures:
        assert f.caught_up, table
        assert f.lost == 0 and f.off == 0, table
        assert not f.valid_dead, f"{table}\nvalid events dead-lettered: {dict(f.valid_dead)}"
        assert f.notifier_drained, table
    assert poison.missing == 0, table
    # Notifications are at least once: only those in flight when the notifier was
    # killed (once per kill phase, at most its 8 concurrent sends) may come twice.
    assert poison.notified > 0, table
    assert poison.notified_twice <= NOTIFIER_CONCURRENCY * FAST.kill_phases, table
