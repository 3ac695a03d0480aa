"""Fast restart: a RocksDB-store worker killed mid-stream reads only the changelog tail."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from stream_risk.tools.bench import committed_lag, records_written
from stream_risk.tools.simulate import generate

from .conftest import BOOTSTRAP, Env, wait_for
from .replaying import assert_as_replay, replay_of
from .topics import create_topics, read_all

#: The worker's log line after recovery (stream_risk.agents.state_store).
RECOVERED = re.compile(r"customer states recovered: (\d+) changelog records read")
#: Features that depend on the customer's own events only (the segment-behaviour
#: detector, fed by all of a worker's customers, is snapshotted once a minute and may
#: differ after a kill -9).


def _recovered(worker_log: str, start: int) -> int:
    """Changelog records the worker's ``start``-th start read to recover (its log lines)."""
    section = worker_log.split(f"===== start {start} =====")[1].split("===== start ")[0]
    counts = [int(n) for n in RECOVERED.findall(section)]
    assert counts, f"start {start} logged no recovery"
    return sum(counts)


def test_a_killed_rocksdb_worker_recovers_only_the_tail_and_gives_what_replay_gives(
    env: Env,
) -> None:
    events = [e for e in generate(customers=60, days=240, seed=7) if e]
    _, expected_profiles = replay_of(env, events)
    create_topics(env)
    inputs = [env.topic(t) for t in {e["type"] for e in events}]
    group = env.settings_env["STREAM_RISK_APP_ID"]
    changelog = f"{group}-customer-state-changelog"
    data = Path(env.settings_env["STREAM_RISK_DATA_DIR"])
    snapshot = env.tmp / "data-after-first-part"
    worker = env.worker(
        STREAM_RISK_STORE="rocksdb", STREAM_RISK_GROUP_INSTANCE_ID=f"{env.prefix}-w1"
    )
    worker.start()

    # Most of the history first, applied and committed; a copy of the disk as it is then.
    split = len(events) * 2 // 3
    for event in events[:split]:
        env.send(event)
    env.flush()
    wait_for(lambda: committed_lag(BOOTSTRAP, group, inputs) == 0, 300, "the first part applied")
    worker.kill9()
    first_part = records_written(BOOTSTRAP, changelog)
    shutil.copytree(data, snapshot)
    worker.start()
    profiles_before = len(read_all(env, "profiles"))

    # The rest in bulk; kill -9 once the worker is part of the way through it.
    for event in events[split:]:
        env.send(event)
    env.flush()
    wait_for(lambda: len(read_all(env, "profiles")) > profiles_before + 50, 120, "new profiles")
    worker.kill9()
    assert committed_lag(BOOTSTRAP, group, inputs) > 0, "killed after it had finished"
    written = records_written(BOOTSTRAP, changelog)
    # Restarted on the disk of the first part: the tail to read is the second part's.
    shutil.rmtree(data)
    shutil.copytree(snapshot, data)
    worker.start()

    assert_as_replay(env, expected_profiles, timeout=300)

    # Each start read exactly the changelog records its disk lacked, never the whole log.
    log = worker.log()
    assert _recovered(log, 1) == 0
    assert _recovered(log, 2) == 0
    assert 0 < _recovered(log, 3) == written - first_part < written
    assert worker.proc is not None and worker.proc.poll() is None
