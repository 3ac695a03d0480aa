"""The pure core: every decision, over a per-customer state, with no I/O and no clock.

``step(state, event, ctx)`` applies one input event; ``advance(state, now, ctx)``
moves a customer's clock forward on event time (overdue checks). The Faust
agents and ``stream-risk replay`` both drive these two functions.
"""

from stream_risk.core.context import BadEvent, Context
from stream_risk.core.outputs import Outputs
from stream_risk.core.state import CustomerState
from stream_risk.core.step import ClockMarks, advance, profile_of, step

__all__ = [
    "BadEvent",
    "ClockMarks",
    "Context",
    "CustomerState",
    "Outputs",
    "advance",
    "profile_of",
    "step",
]
