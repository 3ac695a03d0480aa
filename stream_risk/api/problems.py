"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error the API answers is a :class:`Problem`: a ``type`` URI naming the
kind of problem, a short ``title`` (the same for every occurrence of the
kind), the HTTP ``status``, a ``detail`` for this occurrence, and, for invalid
input, an ``errors`` extension listing each field at fault.

>>> p = Problem(404, "not-found", "no risk profile for customer 'c-1'")
>>> body = p.body("/customers/c-1/risk")
>>> body["type"], body["title"], body["status"]
('urn:stream-risk:problem:not-found', 'Not found', 404)
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

#: Content type of every error response.
PROBLEM_JSON = "application/problem+json"

#: kind -> title: the problem types this API uses.
KINDS: dict[str, str] = {
    "unauthorized": "Authentication required",
    "invalid-request": "Invalid request",
    "invalid-body": "Invalid request body",
    "unsupported-media-type": "Unsupported media type",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "unavailable": "Service unavailable",
    "rate-limited": "Too many requests",
    "cross-site": "Cross-site request refused",
    "internal": "Internal error",
}


def type_uri(kind: str) -> str:
    """The ``type`` URI of a problem kind."""
    return f"urn:stream-risk:problem:{kind}"


class Problem(Exception):
    """An error answered as problem details; raise it from a handler.

    Parameters
    ----------
    status : int
        HTTP status code.
    kind : str
        One of :data:`KINDS`; it gives the ``type`` URI and the ``title``.
    detail : str
        What went wrong this time, for a person.
    errors : list of dict, optional
        For invalid input: ``{"field": ..., "message": ...}`` per problem.
    headers : dict, optional
        Extra response headers (e.g. ``WWW-Authenticate``).
    """

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown problem kind {kind!r}")
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """The JSON object of the response."""
        out: dict[str, Any] = {
            "type": type_uri(self.kind),
            "title": KINDS[self.kind],
            "status": self.status,
            "detail": self.detail,
        }
        if instance is not None:
            out["instance"] = instance
        if self.errors is not None:
            out["errors"] = self.errors
        return out


def from_status(status: int, detail: str | None = None) -> Problem:
    """A problem for an HTTP status raised by the framework (unknown route, wrong method).

    >>> from_status(405).body()["title"]
    'Method not allowed'
    """
    kinds = {
        400: "invalid-request",
        401: "unauthorized",
        404: "not-found",
        405: "method-not-allowed",
        415: "unsupported-media-type",
        503: "unavailable",
    }
    kind = kinds.get(status, "internal" if status >= 500 else "invalid-request")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return Problem(status, kind, detail or phrase)


def field_errors(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Pydantic's ``ValidationError.errors()`` as ``{"field", "message"}`` items.

    >>> field_errors([{"loc": ("amount",), "msg": "Input should be greater than 0"}])
    [{'field': 'amount', 'message': 'Input should be greater than 0'}]
    """
    return [
        {
            "field": ".".join(str(p) for p in e.get("loc", ())) or "body",
            "message": str(e.get("msg", "invalid")),
        }
        for e in errors
    ]
