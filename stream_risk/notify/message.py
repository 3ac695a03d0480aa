"""What a notification says, and how a webhook body is signed: pure functions.

A webhook receives the JSON of :func:`webhook_body` with three headers:

* ``X-Stream-Risk-Timestamp``: Unix seconds when the request was signed;
* ``X-Stream-Risk-Signature``: ``sha256=`` and the hex HMAC-SHA256, keyed
  with the channel's secret, of ``"<timestamp>.<body>"``;
* ``Idempotency-Key``: the same for every attempt at one notification, so a
  receiver can drop a repeat (a request whose answer was lost is sent again).

A receiver checks them with :func:`verify`:

>>> body = b'{"kind":"firing"}'
>>> header = sign(b"s3cret", 1700000000, body)
>>> header[:7], verify(b"s3cret", "1700000000", body, header, now=1700000100)
('sha256=', True)
>>> verify(b"other", "1700000000", body, header, now=1700000100)
False
>>> verify(b"s3cret", "1700000000", body, header, now=1700009999)  # too old: a replay
False
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream_risk.notify.decide import Kind

SIGNATURE_HEADER = "X-Stream-Risk-Signature"
TIMESTAMP_HEADER = "X-Stream-Risk-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def idempotency_key(warning_id: str, status: str, level: str, channel: str) -> str:
    """The identity of one notification: one warning event on one channel.

    >>> idempotency_key("w-1", "firing", "high", "hook")
    'w-1:firing:high:hook'
    """
    return f"{warning_id}:{status}:{level}:{channel}"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header value: ``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``."""
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    now: float,
    tolerance_seconds: float = 300.0,
) -> bool:
    """True when ``signature`` signs ``body`` at ``timestamp`` and the timestamp is recent."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


@dataclass(frozen=True)
class Notification:
    """One warning event, rendered for one channel."""

    channel: str
    kind: Kind
    warning: Mapping[str, Any]
    segment: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def key(self) -> str:
        w = self.warning
        return idempotency_key(w["warning_id"], w["status"], w["level"], self.channel)

    @property
    def title(self) -> str:
        return title(self.kind, self.warning)

    @property
    def text(self) -> str:
        return text(self.kind, self.warning, self.segment)

    def webhook_body(self) -> bytes:
        return webhook_body(self)


def title(kind: Kind, warning: Mapping[str, Any]) -> str:
    """A one-line subject.

    >>> title("escalated", {"level": "critical", "customer_id": "acme", "rule": "overdue_90_days"})
    'Escalated to CRITICAL: acme, overdue_90_days'
    """
    level = str(warning["level"]).upper()
    head = {
        "firing": f"{level} warning",
        "escalated": f"Escalated to {level}",
        "resolved": "Resolved",
    }[kind]
    return f"{head}: {warning['customer_id']}, {warning.get('rule', '')}"


def _action_text(action: Mapping[str, Any]) -> str:
    extra = ", ".join(f"{k}={v}" for k, v in action.items() if k != "kind")
    name = str(action.get("kind", "")).replace("_", " ")
    return f"{name} ({extra})" if extra else name


def text(kind: Kind, warning: Mapping[str, Any], segment: Mapping[str, str | None]) -> str:
    """The plain-text message: what, why, what to do, who.

    >>> print(text("firing", {"customer_id": "acme", "level": "high", "status": "firing",
    ...     "rule": "overdue_30_days", "warning_id": "w-1", "occurred_at": "2026-03-03T00:00:00Z",
    ...     "risk_score": 0.31, "tier": "medium",
    ...     "reasons": [{"text": "oldest open item is 31 days past due (threshold 30)"}],
    ...     "actions": [{"kind": "contact_customer"}, {"kind": "shorten_terms", "days": 15}]},
    ...     {"industry": "retail", "region": "DACH"}))
    HIGH warning: acme, overdue_30_days
    Since 2026-03-03T00:00:00Z (event time); risk score 0.31, tier medium.
    Why: oldest open item is 31 days past due (threshold 30)
    Recommended: contact customer; shorten terms (days=15)
    Segment: industry retail, region DACH
    Warning w-1 (firing)
    """
    lines = [title(kind, warning)]
    when = "Resolved at" if kind == "resolved" else "Since"
    lines.append(
        f"{when} {warning.get('occurred_at', '?')} (event time); "
        f"risk score {float(warning.get('risk_score', 0)):.2f}, tier {warning.get('tier', '?')}."
    )
    annotations = warning.get("annotations")
    summary = annotations.get("summary") if isinstance(annotations, Mapping) else None
    if summary:
        lines.append(f"Summary: {summary}")
    reasons = [str(r.get("text", "")) for r in warning.get("reasons") or [] if r.get("text")]
    if reasons:
        lines.append(("Was: " if kind == "resolved" else "Why: ") + "; ".join(reasons))
    actions = [_action_text(a) for a in warning.get("actions") or []]
    if actions and kind != "resolved":
        lines.append("Recommended: " + "; ".join(actions))
    seg = ", ".join(f"{k} {v}" for k, v in segment.items() if v)
    if seg:
        lines.append(f"Segment: {seg}")
    lines.append(f"Warning {warning['warning_id']} ({warning['status']})")
    return "\n".join(lines)


def webhook_body(note: Notification) -> bytes:
    """The JSON a webhook receives: the same bytes on every attempt."""
    return orjson.dumps(
        {
            "kind": note.kind,
            "channel": note.channel,
            "idempotency_key": note.key,
            "title": note.title,
            "text": note.text,
            "segment": dict(note.segment),
            "warning": dict(note.warning),
        }
    )
