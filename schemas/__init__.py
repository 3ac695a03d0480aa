"""The wire contract of stream-risk (EVENTS.md): pydantic models and JSON Schema files."""

from stream_risk.schemas.events import (
    EVENT_TYPES,
    CollectionEvent,
    CustomerEvent,
    InputEvent,
    InvoiceEvent,
    OrderEvent,
    OutcomeEvent,
    PaymentEvent,
    Segment,
    StatementEvent,
    input_event_adapter,
)
from stream_risk.schemas.outputs import (
    LEVEL_COLOURS,
    LEVEL_ORDER,
    Action,
    DeadLetter,
    Level,
    Reason,
    RiskProfile,
    RiskWarning,
    Tier,
)

__all__ = [
    "EVENT_TYPES",
    "LEVEL_COLOURS",
    "LEVEL_ORDER",
    "Action",
    "CollectionEvent",
    "CustomerEvent",
    "DeadLetter",
    "InputEvent",
    "InvoiceEvent",
    "Level",
    "OrderEvent",
    "OutcomeEvent",
    "PaymentEvent",
    "Reason",
    "RiskProfile",
    "RiskWarning",
    "Segment",
    "StatementEvent",
    "Tier",
    "input_event_adapter",
]
