"""The demo as a user runs it: one command, warnings printed, everything stopped at the end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from kafka import KafkaAdminClient


def test_demo_prints_graded_warnings_and_a_summary(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream_risk.cli",
            "demo",
            "--customers",
            "60",
            "--days",
            "200",
            "--speed",
            "10",
            "--duration",
            "75",
            "--no-colour",
            "--web-port",
            "0",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    levels = {line.split()[0] for line in lines if line.strip()}
    # The simulated portfolio has deteriorating customers: overdue warnings must show.
    assert "HIGH" in levels, proc.stdout[-2000:]
    assert levels <= {"LOW", "MEDIUM", "HIGH", "CRITICAL"}
    assert any(re.search(r"sim-\d{4}\s+overdue_30_days", line) for line in lines)
    summary = re.search(r"demo: (\d+) warnings fired", proc.stderr)
    assert summary and int(summary.group(1)) > 0, proc.stderr[-2000:]
    assert "worker ready" in proc.stderr
    # Progress lines every few seconds; valid simulated traffic never makes a dead letter.
    progress = re.findall(
        r"demo: simulated day \S+: [\d,]+ events processed \(([\d,]+) applied, "
        r"([\d,]+) dead letters\), lag [\d,]+",
        proc.stderr,
    )
    assert progress, proc.stderr[-2000:]
    assert int(progress[-1][0].replace(",", "")) > 0
    assert [dead for _, dead in progress if dead != "0"] == []
    assert re.search(r"warnings fired \(.*\); \d+ resolutions", proc.stderr)

    # Its throwaway topics are gone, so the embedded broker stays quick to restart.
    run_id = re.search(r"demo: topics (\S+)\.\*", proc.stderr)
    dropped = re.search(r"deleted the run's (\d+) topics", proc.stderr)
    assert run_id and dropped and int(dropped.group(1)) > 10, proc.stderr[-2000:]
    bootstrap = os.environ.get("STREAM_RISK_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + 30
        while left := [t for t in admin.list_topics() if t.startswith(run_id.group(1))]:
            assert time.monotonic() < deadline, f"topics left after the demo: {left}"
            time.sleep(0.5)
    finally:
        admin.close()
