"""Log output of the worker: Faust's coloured text, or one JSON object per line.

``STREAM_RISK_LOG_FORMAT=json`` makes every record a single line that a log
collector (Loki, Elasticsearch, CloudWatch) parses without rules: ``time``
(UTC, ISO 8601), ``level``, ``logger``, ``message``, and ``exception`` when
the record carries a traceback.

>>> record = logging.LogRecord("stream_risk.sinks", logging.WARNING, "redis.py", 1,
...                            "Redis unavailable (%s)", ("refused",), None)
>>> record.created = 0.25
>>> line = JsonFormatter().format(record)
>>> print(line.replace(',"', ',\\n"'))  # one line; broken here to fit
{"time":"1970-01-01T00:00:00.250Z",
"level":"warning",
"logger":"stream_risk.sinks",
"message":"Redis unavailable (refused)"}
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

#: Values of ``STREAM_RISK_LOG_FORMAT``.
LogFormat = Literal["text", "json"]


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, tz=UTC)
        entry: dict[str, Any] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str)


def worker_logging_config(log_format: LogFormat, level: str) -> dict[str, Any] | None:
    """The ``logging_config`` for Faust's worker: ``None`` keeps its own text output.

    Loggers created before the worker starts (every module's ``log``) keep
    working: the configuration does not disable them.

    >>> worker_logging_config("text", "info") is None
    True
    >>> config = worker_logging_config("json", "debug")
    >>> config["root"], config["handlers"]["json"]["stream"]
    ({'level': 'DEBUG', 'handlers': ['json']}, 'ext://sys.stderr')
    """
    if log_format == "text":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["json"]},
    }
