"""API-key authentication: ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``.

Keys come from the configuration (``STREAM_RISK_API_KEYS``). Comparison runs in
constant time against every key, so timing does not reveal how much of a key
was right.

>>> check({"X-API-Key": "s3cret"}, ["s3cret"])
>>> check({"Authorization": "Bearer s3cret"}, ["other", "s3cret"])
>>> check({}, ["s3cret"])
Traceback (most recent call last):
...
stream_risk.api.problems.Problem: this endpoint needs an API key: send it as 'X-API-Key: KEY' \
or 'Authorization: Bearer KEY'
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence

from stream_risk.api.problems import Problem

#: Sent with every 401, as HTTP asks.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="stream-risk"'}


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


def check(headers: Mapping[str, str], keys: Sequence[str]) -> None:
    """Raise a 401 :class:`Problem` unless ``headers`` carry one of ``keys``."""
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
    matched = False
    for candidate in keys:
        matched |= hmac.compare_digest(given, candidate.encode())
    if not matched:
        raise Problem(401, "unauthorized", "the API key is not valid", headers=CHALLENGE)
