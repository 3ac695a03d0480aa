"""Signed rule sets through a real worker and Kafka: with a signing secret the worker
applies what ``stream-risk rules publish`` signed and rejects what anyone else wrote."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from stream_risk import rules_topic
from stream_risk.message_auth import SIGNATURE_HEADER

from .conftest import Env, wait_for

SECRET = "integration-signing-secret"
RULES = """
groups:
  - name: overdue
    rules:
      - name: {name}
        expr: days_past_due >= 30
        level: critical
"""


def test_only_signed_rule_sets_apply(env: Env, tmp_path: Path) -> None:
    worker = env.worker(STREAM_RISK_SIGNING_SECRET=SECRET)
    worker.start()
    topic = env.topic("rules")
    files = {"overdue.yaml": RULES.format(name="forged_rule")}
    # Written straight to the topic: unsigned, then signed with another key.
    env.producer.send(topic, key=b"v7", value=rules_topic.encode(7, files))
    env.producer.send(
        topic,
        key=b"v8",
        value=rules_topic.encode(8, files),
        headers=[(SIGNATURE_HEADER, b"sha256=" + b"0" * 64)],
    )
    env.flush()
    wait_for(lambda: worker.log().count("rejected a record") >= 2, what="both rejected")
    log = worker.log()
    assert "key b'v7' (unsigned)" in log and "key b'v8' (bad signature)" in log

    # The publisher with the secret: signed, and the forged versions do not count.
    good = tmp_path / "good"
    good.mkdir()
    (good / "overdue.yaml").write_text(RULES.format(name="signed_rule"))
    published = subprocess.run(
        [sys.executable, "-m", "stream_risk.cli", "rules", "publish", str(good)],
        env={**env.settings_env, "STREAM_RISK_SIGNING_SECRET": SECRET},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert published.returncode == 0, published.stderr
    assert "published version 1" in published.stdout
    wait_for(lambda: "rule set 1 active" in worker.log(), what="the signed rule set")
    assert "rule set 7 active" not in worker.log() and "rule set 8 active" not in worker.log()
    assert worker.proc is not None and worker.proc.poll() is None
