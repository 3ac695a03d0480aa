"""Units of event time: epoch seconds as floats, one definition for the whole engine.

>>> DAY / HOUR, WEEK / DAY
(24.0, 7.0)
"""

from __future__ import annotations

SECOND = 1.0
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY
