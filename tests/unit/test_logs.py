"""STREAM_RISK_LOG_FORMAT=json: one JSON object per line, through Faust's logging setup."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
from mode.utils.logging import setup_logging

from stream_risk.config import Settings
from stream_risk.logs import JsonFormatter, worker_logging_config


@pytest.fixture
def restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)


def test_settings_read_the_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_RISK_LOG_FORMAT", "json")
    assert Settings().log_format == "json"
    monkeypatch.setenv("STREAM_RISK_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        Settings()


def test_worker_logs_json_lines(monkeypatch: pytest.MonkeyPatch, restore_logging: object) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    config = worker_logging_config("json", "info")
    assert config is not None
    # What faust's Worker does with logging_config when it starts.
    setup_logging(loglevel="info", logging_config=config)
    log = logging.getLogger("stream_risk.test")
    log.debug("below the level")
    log.warning("partition %d is\nbehind", 3)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("batch failed")
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["level"] == "warning"
    assert first["logger"] == "stream_risk.test"
    assert first["message"] == "partition 3 is\nbehind"
    assert first["time"].endswith("Z") and first["time"][10] == "T"
    assert second["level"] == "error"
    assert "RuntimeError: boom" in second["exception"]


def test_text_keeps_faust_output() -> None:
    assert worker_logging_config("text", "info") is None


def test_formatter_survives_arguments_json_cannot_encode() -> None:
    record = logging.LogRecord("x", logging.INFO, "f.py", 1, "%s", (object(),), None)
    assert json.loads(JsonFormatter().format(record))["message"].startswith("<object")
