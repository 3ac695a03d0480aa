"""Run ``stream-risk worker`` as a child process (for the demo and the benchmark)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

#: What the Faust worker logs once its partitions are assigned and tables recovered.
READY_MARKER = "Worker]: Ready"


class WorkerDidNotStart(RuntimeError):
    """The worker exited or never became ready; the message carries its log tail."""


def start_worker(
    env: dict[str, str], log_path: Path, timeout: float = 120.0, own_session: bool = False
) -> subprocess.Popen[bytes]:
    """Start a worker with ``env``, logging to ``log_path``; return once it is ready.

    ``own_session`` keeps a terminal's Ctrl-C away from the worker, so that the
    parent can stop it in order.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream_risk.cli", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=own_session,
        )
    deadline = time.monotonic() + timeout
    try:
        while READY_MARKER not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise WorkerDidNotStart(log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.1)
    except BaseException:
        # Not ready (or Ctrl-C while waiting): leave no worker behind.
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        raise
    return proc


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 30.0) -> None:
    """Stop a child process in order (SIGTERM), killing it after ``timeout`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
