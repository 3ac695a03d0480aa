"""Per-customer state and its safe, versioned codec.

The state is plain data (numbers, strings, lists, dicts), encoded as JSON with a
format version, so a state table can be read by any later version and nothing
ever unpickles bytes from a topic anyone can write to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

#: Bumped whenever the encoded layout changes; :func:`decode` upgrades older ones.
STATE_VERSION = 1

# Positions inside the compact list records below (kept as lists so the
# encoded state stays small).
INV_OPEN, INV_AMOUNT, INV_DUE, INV_ISSUED = 0, 1, 2, 3
ORD_TS, ORD_AMOUNT, ORD_ID = 0, 1, 2
STMT_TS, STMT_BALANCE, STMT_DPD, STMT_STATUS = 0, 1, 2, 3


@dataclass(slots=True)
class CustomerState:
    """Everything the engine knows about one customer.

    Times are event times in seconds since the epoch (UTC).
    """

    customer_id: str
    credit_limit: float | None = None
    payment_terms_days: int | None = None
    segment: dict[str, Any] | None = None
    rating: str | float | None = None
    financials: dict[str, Any] | None = None
    #: invoice_id -> [open amount, original amount, due_at, issued_at]
    invoices: dict[str, list[Any]] = field(default_factory=dict)
    #: True once the customer has had an invoice: open balance then comes from invoices.
    invoiced: bool = False
    #: Paid amounts not matched to any open invoice yet (applied to later invoices).
    unapplied_credit: float = 0.0
    #: payment_id -> [occurred_at, unapplied part, [[invoice_id, amount, due, issued, original]...]]
    payments: dict[str, list[Any]] = field(default_factory=dict)
    bounced_payments: int = 0
    #: [occurred_at, balance, days_past_due, status] of the latest statement.
    statement: list[Any] | None = None
    #: [occurred_at, amount, order_id] of placed orders inside the longest order window.
    orders: list[list[Any]] = field(default_factory=list)
    #: Digests of recent event ids (insertion ordered) for de-duplication.
    seen: dict[str, None] = field(default_factory=dict)
    #: Input topic -> offset of the last message applied (set by the streaming
    #: driver): a redelivered message at or below it is skipped exactly.
    offsets: dict[str, int] = field(default_factory=dict)
    #: rule name -> [warning_id, level, fired_at] while the rule fires.
    alerts: dict[str, list[Any]] = field(default_factory=dict)
    last_outcome: str | None = None
    #: Latest event time applied, and the latest time the customer was advanced to.
    updated_at: float | None = None
    clock: float | None = None
    #: When the customer needs an overdue check next (event time), if ever.
    next_wakeup: float | None = None
    risk_score: float = 0.0
    tier: str = "low"


_FIELDS = tuple(CustomerState.__slots__)  # type: ignore[attr-defined]
#: Fields whose default is an empty container: left out of the encoding when empty.
_EMPTY_BY_DEFAULT = frozenset({"invoices", "payments", "orders", "seen", "alerts", "offsets"})


def encode(state: CustomerState) -> bytes:
    """Encode ``state`` as versioned JSON bytes."""
    data: dict[str, Any] = {"v": STATE_VERSION}
    for name in _FIELDS:
        value = getattr(state, name)
        if name == "seen":
            value = list(value)
        if value is None or (name in _EMPTY_BY_DEFAULT and not value):
            continue
        data[name] = value
    return orjson.dumps(data)


def decode(raw: bytes | str) -> CustomerState:
    """Decode bytes written by :func:`encode` of this or an earlier version."""
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("customer state must be a JSON object")
    version = data.pop("v", None)
    if version != STATE_VERSION:
        raise ValueError(f"unsupported customer state version {version!r}")
    seen = data.pop("seen", [])
    unknown = set(data) - set(_FIELDS)
    if unknown:
        raise ValueError(f"unknown customer state fields: {sorted(unknown)}")
    try:
        state = CustomerState(**data)
        state.seen = dict.fromkeys(seen)
    except TypeError as exc:
        raise ValueError(f"malformed customer state: {exc}") from None
    return state
