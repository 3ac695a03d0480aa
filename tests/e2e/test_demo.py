"""The demo as a user runs it: one command, warnings printed, everything stopped at the end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


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
