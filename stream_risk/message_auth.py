"""HMAC signatures on the messages that change how workers judge: rule sets and models.

Whoever can write to the rules or models topic can otherwise switch every
worker to their own rules or model. With ``STREAM_RISK_SIGNING_SECRET`` set,
``stream-risk rules publish`` and the trainer add a Kafka header
``stream-risk-signature: sha256=<hex>``, the HMAC-SHA256 of the message key and
value under the shared secret; workers verify it before a message is applied
and reject (and count) unsigned or badly signed ones. Without a secret nothing
is signed or checked, as before.

>>> headers = sign_headers("s3cret", b"v3", b'{"version": 3}')
>>> headers[0][0], headers[0][1][:7]
('stream-risk-signature', b'sha256=')
>>> check("s3cret", b"v3", b'{"version": 3}', headers) is None
True
>>> check("s3cret", b"v3", b'{"version": 4}', headers)
'bad signature'
>>> check("s3cret", b"v3", b'{"version": 3}', [])
'unsigned'
>>> check(None, b"v3", b"anything", []) is None
True
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

SIGNATURE_HEADER = "stream-risk-signature"
Headers = Iterable[tuple[str, bytes]]


def signature(secret: str, key: bytes | None, value: bytes) -> bytes:
    """``sha256=<hex>`` over the key's length, the key and the value (no ambiguity
    between where the key ends and the value starts)."""
    k = key or b""
    mac = hmac.new(secret.encode(), len(k).to_bytes(4, "big") + k + value, hashlib.sha256)
    return b"sha256=" + mac.hexdigest().encode()


def sign_headers(secret: str | None, key: bytes | None, value: bytes) -> list[tuple[str, bytes]]:
    """The headers to send with a message: the signature, or none without a secret."""
    if not secret:
        return []
    return [(SIGNATURE_HEADER, signature(secret, key, value))]


def check(
    secret: str | None, key: bytes | None, value: bytes, headers: Headers | None
) -> str | None:
    """Why a message must be rejected (``unsigned``, ``bad signature``), or ``None``."""
    if not secret:
        return None
    found = [v for k, v in headers or () if k == SIGNATURE_HEADER]
    if not found:
        return "unsigned"
    expected = signature(secret, key, value)
    if not any(hmac.compare_digest(expected, bytes(v)) for v in found):
        return "bad signature"
    return None
