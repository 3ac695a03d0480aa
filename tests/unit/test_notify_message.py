"""What notifications say, and the webhook signature."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from stream_risk.notify.channels import email_message
from stream_risk.notify.message import Notification, sign, verify
from stream_risk.notify.service import segment_of, subject_of

WARNING = {
    "warning_id": "w-abc",
    "customer_id": "acme",
    "level": "high",
    "status": "firing",
    "rule": "overdue_30_days",
    "occurred_at": "2026-03-03T00:00:00+00:00",
    "detected_at": "2026-03-03T00:00:01+00:00",
    "reasons": [
        {
            "feature": "days_past_due",
            "value": 31,
            "op": ">=",
            "threshold": 30,
            "text": "oldest open item is 31 days past due (threshold 30)",
        }
    ],
    "risk_score": 0.42,
    "tier": "medium",
    "actions": [{"kind": "contact_customer"}, {"kind": "shorten_terms", "days": 15}],
}


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(b"k", 1700000000, body) == f"sha256={expected}"


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "now", "ok"),
    [
        (b"k", "1700000000", b"{}", 1700000000, True),
        (b"k", "1700000000", b"{}", 1700000299, True),
        (b"k", "1700000000", b"{}", 1700000301, False),  # stale: a replay
        (b"k", "1700000000", b"{}", 1699999000, False),  # from the future
        (b"x", "1700000000", b"{}", 1700000000, False),  # another secret
        (b"k", "1700000000", b"{ }", 1700000000, False),  # body changed
        (b"k", "1700000001", b"{}", 1700000000, False),  # timestamp changed
        (b"k", "yesterday", b"{}", 1700000000, False),
    ],
)
def test_verify(secret: bytes, timestamp: str, body: bytes, now: float, ok: bool) -> None:
    header = sign(b"k", 1700000000, b"{}")
    assert verify(secret, timestamp, body, header, now=now) is ok


def test_webhook_body_is_the_same_on_every_attempt() -> None:
    note = Notification("hook", "firing", WARNING, {"region": "DACH"})
    assert note.webhook_body() == note.webhook_body()
    body = json.loads(note.webhook_body())
    assert body["kind"] == "firing"
    assert body["idempotency_key"] == "w-abc:firing:high:hook"
    assert body["warning"] == WARNING
    assert body["segment"] == {"region": "DACH"}
    assert body["title"] == "HIGH warning: acme, overdue_30_days"


@pytest.mark.parametrize(
    ("kind", "head", "has_actions"),
    [
        ("firing", "HIGH warning: acme, overdue_30_days", True),
        ("escalated", "Escalated to HIGH: acme, overdue_30_days", True),
        ("resolved", "Resolved: acme, overdue_30_days", False),
    ],
)
def test_text(kind: str, head: str, has_actions: bool) -> None:
    note = Notification("mail", kind, WARNING)  # type: ignore[arg-type]
    lines = note.text.splitlines()
    assert lines[0] == head
    assert ("Recommended: contact customer; shorten terms (days=15)" in lines) is has_actions
    assert lines[-1] == "Warning w-abc (firing)"


def test_email_threads_by_warning_and_dedupes_by_key() -> None:
    fired = email_message(
        Notification("mail", "firing", WARNING), "r@x.org", ["a@x.org", "b@x.org"]
    )
    resolved_warning = dict(WARNING, status="resolved")
    resolved = email_message(
        Notification("mail", "resolved", resolved_warning), "r@x.org", ["a@x.org"]
    )
    assert fired["To"] == "a@x.org, b@x.org"
    assert fired["Message-ID"] == "<w-abc-firing-high-mail@stream-risk>"
    assert fired["Message-ID"] != resolved["Message-ID"]
    assert fired["References"] == resolved["References"] == "<w-abc@stream-risk>"
    assert fired["Idempotency-Key"] == "w-abc:firing:high:mail"


def test_segment_and_subject_from_warning_or_profile() -> None:
    features = {"segment_industry": "retail", "segment_size": "sme", "segment_region": "DACH"}
    assert segment_of(WARNING, features) == {"industry": "retail", "size": "sme", "region": "DACH"}
    own = dict(WARNING, segment={"industry": "energy"}, labels={"team": "north", "n": 3})
    assert segment_of(own, features) == {"industry": "energy", "size": None, "region": None}
    assert segment_of(WARNING, None) == {"industry": None, "size": None, "region": None}
    subj = subject_of(own, segment_of(own, features))
    assert (subj.level, subj.status, subj.rule) == ("high", "firing", "overdue_30_days")
    assert subj.labels == {"team": "north", "n": "3"}


def test_text_carries_the_rule_summary() -> None:
    warning = dict(WARNING, annotations={"summary": "open balance 1,100 exceeds the limit 1,000"})
    lines = Notification("mail", "firing", warning).text.splitlines()
    assert lines[2] == "Summary: open balance 1,100 exceeds the limit 1,000"
