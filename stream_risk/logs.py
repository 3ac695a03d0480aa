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
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
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


#: Loggers of the Kafka clients and Faust, whose reconnect loops repeat a line per attempt.
CLIENT_LOGGERS = ("aiokafka", "kafka", "faust", "mode")

_NUMBERS = re.compile(r"\d+")


@dataclass
class _Window:
    start: float
    passed: int = 1
    suppressed: int = 0


class RepeatFilter(logging.Filter):
    """At most ``burst`` records of one kind per ``interval`` seconds from the client loggers.

    A kind is the logger, the level and the message template with its numbers
    blanked (so that a host, port or node id does not make every line new). The
    first record let through after a quiet spell says how many were dropped.
    Critical records and other loggers always pass; ``max_kinds`` bounds the
    memory when messages are built with their values in them.

    >>> clock = iter([0.0, 0.1, 0.2, 0.3, 11.0]).__next__
    >>> gate = RepeatFilter(interval=10.0, burst=2, clock=clock)
    >>> def line(n: int) -> logging.LogRecord:
    ...     return logging.LogRecord("aiokafka.conn", logging.ERROR, "conn.py", 1,
    ...                              "Unable connect to node with id %d", (n,), None)
    >>> records = [line(1) for _ in range(5)]
    >>> [gate.filter(r) for r in records]
    [True, True, False, False, True]
    >>> records[4].getMessage()
    'Unable connect to node with id 1 (2 similar lines suppressed in 11 s)'
    """

    def __init__(
        self,
        interval: float = 10.0,
        burst: int = 3,
        prefixes: tuple[str, ...] = CLIENT_LOGGERS,
        clock: Callable[[], float] = time.monotonic,
        max_kinds: int = 1024,
    ) -> None:
        super().__init__()
        self.interval = interval
        self.burst = burst
        self.prefixes = prefixes
        self.clock = clock
        self.max_kinds = max_kinds
        self.suppressed_total = 0
        self._windows: dict[tuple[str, int, str], _Window] = {}

    def _from_clients(self, name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in self.prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        # One filter may sit on several handlers: one decision per record, kept on it.
        decided: bool | None = getattr(record, "_repeat_filter_kept", None)
        if decided is None:
            decided = self._decide(record)
            record._repeat_filter_kept = decided
        return decided

    def _decide(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.CRITICAL or not self._from_clients(record.name):
            return True
        kind = (record.name, record.levelno, _NUMBERS.sub("#", str(record.msg))[:200])
        now = self.clock()
        window = self._windows.get(kind)
        if window is None or now - window.start >= self.interval:
            if window is not None and window.suppressed:
                record.msg = (
                    f"{record.getMessage()} ({window.suppressed} similar lines suppressed "
                    f"in {now - window.start:.0f} s)"
                )
                record.args = None
            self._windows.pop(kind, None)
            if len(self._windows) >= self.max_kinds:
                # Oldest first (insertion order): a kind seen again starts a new window.
                del self._windows[next(iter(self._windows))]
            self._windows[kind] = _Window(start=now)
            return True
        if window.passed < self.burst:
            window.passed += 1
            return True
        window.suppressed += 1
        self.suppressed_total += 1
        return False


def limit_repeats(logger: logging.Logger, gate: RepeatFilter | None = None) -> RepeatFilter:
    """Put one :class:`RepeatFilter` on every handler of ``logger`` (the root, usually).

    On the handlers, not on the loggers: a logger's filter does not see records
    of its children (``aiokafka.conn`` under ``aiokafka``).
    """
    gate = gate or RepeatFilter()
    for handler in logger.handlers:
        if gate not in handler.filters:
            handler.addFilter(gate)
    return gate
