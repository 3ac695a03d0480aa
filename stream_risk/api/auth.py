"""API-key authentication: ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``.

Keys come from the configuration (``STREAM_RISK_API_KEYS``), each named:
``ops:KEY1,desk:KEY2`` gives the keys ``ops`` and ``desk``. A bare ``KEY`` (the
older form) is named ``key-`` and the first 8 hex digits of its SHA-256, so
logs can tell keys apart without showing them. The name of the key a request
used is stamped on every action event it produces and on the access log.
Comparison runs in constant time against every key, so timing does not reveal
how much of a key was right.

>>> keys = parse_keys(["ops:s3cret", "desk:other"])
>>> check({"X-API-Key": "s3cret"}, keys)
'ops'
>>> check({"Authorization": "Bearer other"}, keys)
'desk'
>>> check({}, keys)
Traceback (most recent call last):
...
stream_risk.api.problems.Problem: this endpoint needs an API key: send it as 'X-API-Key: KEY' \
or 'Authorization: Bearer KEY'
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from stream_risk.api.problems import Problem

#: Sent with every 401, as HTTP asks.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="stream-risk"'}
#: What a key's name may look like (the part before the first ``:``).
KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class ApiKey:
    """A named key; the secret never shows in a repr."""

    id: str
    secret: str = field(repr=False)


def parse_key(entry: str) -> ApiKey:
    """``id:KEY`` -> a named key; a bare ``KEY`` gets a name derived from its hash.

    >>> parse_key("ops:abc")
    ApiKey(id='ops')
    >>> parse_key("abc").id
    'key-ba7816bf'
    """
    name, sep, secret = entry.partition(":")
    if sep and KEY_ID.match(name) and secret:
        return ApiKey(name, secret)
    return ApiKey("key-" + hashlib.sha256(entry.encode()).hexdigest()[:8], entry)


def parse_keys(entries: Sequence[str]) -> list[ApiKey]:
    """Every configured key; raises ``ValueError`` when two share a name.

    >>> parse_keys(["ops:a", "ops:b"])
    Traceback (most recent call last):
    ...
    ValueError: API key name 'ops' is used twice in STREAM_RISK_API_KEYS
    """
    keys = [parse_key(e) for e in entries]
    seen: set[str] = set()
    for key in keys:
        if key.id in seen:
            raise ValueError(f"API key name {key.id!r} is used twice in STREAM_RISK_API_KEYS")
        seen.add(key.id)
    return keys


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries, if any (``X-API-Key`` wins over ``Authorization``).

    >>> presented_key({"Authorization": "bearer abc"})
    'abc'
    >>> presented_key({"Authorization": "Basic abc"}) is None
    True
    """
    key = headers.get("X-API-Key")
    if key:
        return key.strip()
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def check(headers: Mapping[str, str], keys: Sequence[ApiKey]) -> str:
    """The name of the key ``headers`` carry; a 401 :class:`Problem` unless it is one of
    ``keys``."""
    key = presented_key(headers)
    if key is None:
        raise Problem(
            401,
            "unauthorized",
            "this endpoint needs an API key: send it as 'X-API-Key: KEY' or "
            "'Authorization: Bearer KEY'",
            headers=CHALLENGE,
        )
    if not keys:
        raise Problem(
            401,
            "unauthorized",
            "no API keys are configured on this worker (set STREAM_RISK_API_KEYS)",
            headers=CHALLENGE,
        )
    given = key.encode()
    # No early exit: every key is compared, in constant time.
    matched: str | None = None
    for candidate in keys:
        if hmac.compare_digest(given, candidate.secret.encode()) and matched is None:
            matched = candidate.id
    if matched is None:
        raise Problem(401, "unauthorized", "the API key is not valid", headers=CHALLENGE)
    return matched
