"""What the API checks besides the key: request rate, cross-site posts, browser headers.

Pure parts, with the clock passed in:

* :class:`TokenBuckets`: a token bucket per API key (per client address when
  keys are off): ``burst`` requests at once, refilled at ``rate`` per second;
* :func:`cross_site`: whether a state-changing request comes from another
  site's page (``Origin``, else ``Sec-Fetch-Site``), checked when keys are off,
  since then the browser's own credentials are all an attacker's page needs;
* :data:`SECURITY_HEADERS`: sent with every response (the dashboard loads only
  its own scripts and styles and may not be framed).

>>> buckets = TokenBuckets(rate=1.0, burst=2)
>>> [buckets.take("ops", now=0.0) for _ in range(3)]
[0.0, 0.0, 1.0]
>>> buckets.take("ops", now=1.0), buckets.take("desk", now=1.0)
(0.0, 0.0)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
#: Methods that change nothing and need no cross-site check.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class TokenBuckets:
    """One token bucket per client; at most ``max_clients`` remembered (least recent go).

    ``take(who, now)`` spends a token and returns 0.0, or returns the seconds
    until the next token when the bucket is empty (spending nothing).
    """

    rate: float
    burst: int
    max_clients: int = 10_000
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict, repr=False)

    def take(self, who: str, now: float) -> float:
        tokens, last = self._buckets.pop(who, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(now - last, 0.0) * self.rate)
        if tokens >= 1.0:
            tokens, wait = tokens - 1.0, 0.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[who] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


def cross_site(method: str, headers: Mapping[str, str], host: str | None) -> str | None:
    """Why a request must be refused as cross-site, or ``None``.

    Browsers send ``Origin`` with every cross-origin POST and ``Sec-Fetch-Site``
    with every request; a client that sends neither (curl, a script) is no
    browser and cannot be tricked into posting.

    >>> cross_site("POST", {"Origin": "http://127.0.0.1:6066"}, "127.0.0.1:6066") is None
    True
    >>> cross_site("POST", {"Origin": "https://evil.example"}, "127.0.0.1:6066")
    'origin https://evil.example is not this site'
    >>> cross_site("POST", {"Sec-Fetch-Site": "cross-site"}, "127.0.0.1:6066")
    'Sec-Fetch-Site is cross-site'
    >>> cross_site("POST", {}, "127.0.0.1:6066") is None, cross_site("GET", {"Origin": "x"}, "h")
    (True, None)
    """
    if method.upper() in SAFE_METHODS:
        return None
    origin = headers.get("Origin")
    if origin is not None:
        if origin == "null" or urlsplit(origin).netloc.lower() != (host or "").lower():
            return f"origin {origin} is not this site"
        return None
    fetch_site = headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {fetch_site}"
    return None
