"""Hot reload of rule sets through a real worker, Kafka and the CLI.

A new rule set published while events flow switches the worker (seen on the
warnings topic by ``rules_version`` and by the rules that fire); a malformed one
is rejected by the CLI with all its errors and never published; a malformed
message written straight to the rules topic is ignored by the worker, and the
active rule set keeps running.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from .conftest import Env, wait_for

GOOD = """
groups:
  - name: overdue
    rules:
      - name: late_payer
        expr: days_past_due >= 30
        level: critical
        annotations: {summary: "{{ days_past_due }} days late"}
"""
BAD = """
groups:
  - name: overdue
    rules:
      - name: late_payer
        expr: days_past_due >>= 30
        level: severe
      - name: other
        expr: dayz_past_due >= 1
        level: low
"""


def ev(type_: str, eid: str, day: int, customer: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": type_,
        "event_id": eid,
        "customer_id": customer,
        "occurred_at": f"2026-01-{day:02d}T00:00:00+00:00",
        **fields,
    }


def statement(eid: str, day: int, customer: str, dpd: int) -> dict[str, Any]:
    return ev(
        "statement",
        eid,
        day,
        customer,
        statement_id=eid,
        balance=500.0,
        currency="EUR",
        days_past_due=dpd,
        status="delinquent" if dpd else "revolving",
    )


def rules_cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_risk.cli", "rules", *args],
        env=env.settings_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def firings(records: list[dict[str, Any]]) -> list[tuple[str, str, str, str | None]]:
    return [
        (
            r["value"]["customer_id"],
            r["value"]["rule"],
            r["value"]["status"],
            r["value"].get("rules_version"),
        )
        for r in records
    ]


def test_publish_switches_the_worker_and_bad_rule_sets_never_apply(
    env: Env, tmp_path: Path
) -> None:
    worker = env.worker()
    worker.start()
    env.send(
        ev("customer", "c-a", 1, "a", credit_limit=10_000, currency="EUR", payment_terms_days=30)
    )
    env.send(statement("s-a1", 2, "a", 30))
    env.flush()
    first = env.consume(
        "warnings", lambda rs: ("a", "overdue_30_days", "firing") in [f[:3] for f in firings(rs)]
    )
    default_version = next(f[3] for f in firings(first) if f[1] == "overdue_30_days")
    assert default_version is not None and default_version.startswith("default-")

    good = tmp_path / "good"
    good.mkdir()
    (good / "overdue.yaml").write_text(GOOD)
    published = rules_cli(env, "publish", str(good))
    assert published.returncode == 0, published.stderr
    assert "published version 1" in published.stdout
    wait_for(lambda: "rule set 1 active" in worker.log(), what="the worker to switch")

    # Events keep flowing: the next evaluation of customer a runs under version 1.
    env.send(statement("s-a2", 3, "a", 30))
    env.flush()
    second = env.consume("warnings", lambda rs: ("a", "late_payer", "firing", "1") in firings(rs))
    after = [f for f in firings(second) if f not in firings(first)]
    assert ("a", "overdue_30_days", "resolved", "1") in after  # its rule is gone
    assert ("a", "late_payer", "firing", "1") in after
    late = next(r["value"] for r in second if r["value"]["rule"] == "late_payer")
    assert late["level"] == "critical" and late["annotations"] == {"summary": "30 days late"}

    # A malformed rule set: every error listed, exit 1, nothing published.
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "overdue.yaml").write_text(BAD)
    rejected = rules_cli(env, "publish", str(bad))
    assert rejected.returncode == 1
    lines = [line for line in rejected.stderr.splitlines() if "overdue.yaml:" in line]
    assert len(lines) == 3, rejected.stderr
    assert any(":7:16: overdue/late_payer: level must be one of" in line for line in lines)
    assert any("did you mean 'days_past_due'?" in line for line in lines)
    rules_topic = env.consume("rules", lambda rs: len(rs) >= 1)
    assert [r["value"]["version"] for r in rules_topic] == [1]

    # Someone bypasses the CLI: the worker logs the errors and keeps version 1.
    env.producer.send(
        env.topic("rules"),
        key=b"active",
        value=b'{"version": 2, "files": {"x.yaml": "groups: [{name: g, rules: []}]"}}',
    )
    env.producer.send(env.topic("rules"), key=b"active", value=b"not json")
    env.flush()
    wait_for(lambda: worker.log().count("rules topic:") >= 2, what="the rejection in the log")
    env.send(
        ev("customer", "c-b", 4, "b", credit_limit=10_000, currency="EUR", payment_terms_days=30)
    )
    env.send(statement("s-b1", 5, "b", 45))
    env.flush()
    third = env.consume("warnings", lambda rs: any(f[0] == "b" for f in firings(rs)))
    assert [f for f in firings(third) if f[0] == "b"] == [("b", "late_payer", "firing", "1")]
    assert worker.proc is not None and worker.proc.poll() is None
