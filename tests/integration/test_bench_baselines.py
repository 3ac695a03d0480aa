"""The baselines of ``stream-risk bench`` on a real broker: they finish, and the job is right.

A ratio against a baseline means something only if the baseline does the work:
the Quix Streams job's warnings are checked against the count and sum computed
here, and both baselines must commit every input record.
"""

from __future__ import annotations

from pathlib import Path

from stream_risk.config import Settings
from stream_risk.kafka_admin import ensure_topics
from stream_risk.tools.bench import _drop_changelogs, run_baseline
from stream_risk.tools.bench_engines import THRESHOLD

from .conftest import BOOTSTRAP, Env

CUSTOMERS = ("c0", "c1", "c2")
ORDERS = 20
AMOUNT = 6_000.0


def test_baselines_commit_everything_and_the_quix_job_warns_as_computed(
    env: Env, tmp_path: Path
) -> None:
    settings = Settings(
        topic_prefix=env.prefix,
        app_id=f"{env.prefix}-app",
        partitions=2,
        kafka_bootstrap=BOOTSTRAP,
    )
    ensure_topics(settings)
    topics = settings.input_topics()
    expected = set()
    for n in range(ORDERS):
        for cid in CUSTOMERS:
            day = f"2024-01-{n + 1:02d}T00:00:00Z"
            order = {"type": "order", "customer_id": cid, "amount": AMOUNT, "occurred_at": day}
            env.send(order)
            env.send({"type": "statement", "customer_id": cid, "occurred_at": day})
            if (n + 1) * AMOUNT > THRESHOLD:
                expected.add((cid, n + 1, (n + 1) * AMOUNT))
    env.flush()
    inputs = list(topics.values())
    output = settings.topic("bench-warnings")
    try:
        for engine in ("faust-decode", "quix-job"):
            seconds = run_baseline(
                engine,
                BOOTSTRAP,
                f"{env.prefix}-{engine}",
                inputs,
                topics["order"],
                output,
                tmp_path / f"{engine}.log",
                timeout=120,
            )
            log = (tmp_path / f"{engine}.log").read_text(errors="replace")
            assert seconds is not None, log[-3000:]
        records = env.consume("bench-warnings", lambda r: len(r) >= len(expected))
    finally:
        _drop_changelogs(BOOTSTRAP, env.prefix)
    got = {(r["value"]["customer_id"], r["value"]["orders"], r["value"]["sum"]) for r in records}
    assert len(records) == len(expected) == len(CUSTOMERS) * (ORDERS - 8)
    assert got == expected
