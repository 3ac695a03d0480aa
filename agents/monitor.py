"""The monitor driver, as the agents use it: defined in :mod:`stream_risk.driver`.

It lives beside the core, free of Faust, because ``replay`` runs the same loop.
"""

from stream_risk.driver import (
    BatchResult,
    Limits,
    Message,
    MonitorDriver,
    Rejected,
    dead_letter,
)

__all__ = ["BatchResult", "Limits", "Message", "MonitorDriver", "Rejected", "dead_letter"]
