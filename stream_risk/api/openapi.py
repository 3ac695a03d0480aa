"""The OpenAPI 3.1 document of the HTTP API (``GET /openapi.json``).

Schemas of bodies come from the pydantic models that validate them and from the
contract's output models, so the document cannot drift from what is checked.

>>> doc = document("0.1.0")
>>> doc["openapi"], sorted(doc["paths"])[:3]
('3.1.0', ['/', '/customers', '/customers/{customer_id}/contact'])
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from stream_risk.api.actions import AckRequest, ContactRequest, PromiseRequest
from stream_risk.api.problems import KINDS, PROBLEM_JSON, type_uri
from stream_risk.api.queries import LEVELS, MAX_LIMIT, SEGMENT_DIMENSIONS, STATUSES
from stream_risk.schemas.events import CollectionEvent
from stream_risk.schemas.outputs import RiskProfile, RiskWarning

_REF = "#/components/schemas/{model}"
_MODELS: list[type[BaseModel]] = [
    AckRequest,
    ContactRequest,
    PromiseRequest,
    CollectionEvent,
    RiskProfile,
    RiskWarning,
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": _ref("Problem")}}}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
    }


def _limit(default: int) -> dict[str, Any]:
    return _query(
        "limit",
        "how many items to return",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": default},
    )


_CUSTOMER = _path("customer_id", "the customer")
_UNAUTHORIZED = _problem("no valid API key (header X-API-Key or Authorization: Bearer)")
_BAD_QUERY = _problem("invalid query parameters")
_NOT_FOUND = _problem("no such customer or warning")
_BAD_BODY = _problem("the body is not valid")
_UNAVAILABLE = _problem("Redis or Kafka is not reachable")
_RATE_LIMITED = _problem("too many requests for this API key (see Retry-After)")
_CROSS_SITE = _problem("a state-changing request from another site's page (keys off)")

_ACTION_RESPONSE = {
    "type": "object",
    "required": ["event", "topic"],
    "properties": {
        "event": _ref("CollectionEvent"),
        "topic": {"type": "string", "description": "the Kafka topic the event was produced to"},
    },
}


def _action(summary: str, body: str, required: bool, params: list[dict[str, Any]]) -> Any:
    return {
        "post": {
            "summary": summary,
            "parameters": params,
            "requestBody": {
                "required": required,
                "content": {"application/json": {"schema": _ref(body)}},
            },
            "responses": {
                "202": _json(_ACTION_RESPONSE, "the collection event was produced to Kafka"),
                "400": _problem("the body is not JSON"),
                "401": _UNAUTHORIZED,
                "403": _CROSS_SITE,
                "404": _NOT_FOUND,
                "415": _problem("the body is not application/json"),
                "422": _BAD_BODY,
                "429": _RATE_LIMITED,
                "503": _UNAVAILABLE,
            },
        }
    }


def _paths() -> dict[str, Any]:
    warning_list = {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": _ref("RiskWarning")},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "pass as `cursor` for the next page; null at the end",
            },
        },
    }
    ranking = {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "customer_id": {"type": "string"},
                        "risk_score": {"type": "number"},
                        "tier": {"type": ["string", "null"]},
                        "updated_at": {"type": ["string", "null"]},
                        "active_warnings": {"type": "array", "items": {"type": "string"}},
                    },
                },
            }
        },
    }
    history = {
        "type": "object",
        "required": ["customer_id", "items"],
        "properties": {
            "customer_id": {"type": "string"},
            "items": {
                "type": "array",
                "description": "snapshots oldest first: `at` (event time), `risk_score`, "
                "`tier`, `active_warnings` (count) and headline features",
                "items": {"type": "object"},
            },
        },
    }
    counts = {"type": "object", "additionalProperties": {"type": "integer"}}
    summary = {
        "type": "object",
        "properties": {
            "customers": {"type": "integer"},
            "tiers": counts,
            "warnings": {
                "type": "object",
                "properties": {
                    "levels": {"type": "object", "additionalProperties": counts},
                    "window": {"type": "integer", "description": "stream entries counted"},
                },
            },
        },
    }
    health = {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"enum": ["ok", "degraded"]},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    authed = {"401": _UNAUTHORIZED, "429": _RATE_LIMITED, "503": _UNAVAILABLE}
    return {
        "/": {
            "get": {
                "summary": "The live dashboard (HTML; public)",
                "security": [],
                "responses": {"200": {"description": "the page", "content": {"text/html": {}}}},
            }
        },
        "/health": {
            "get": {
                "summary": "Liveness of the worker and its Redis connection (public)",
                "security": [],
                "responses": {
                    "200": _json(health, "the worker serves and Redis answers"),
                    "503": _json(health, "Redis does not answer"),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document (public)",
                "security": [],
                "responses": {"200": {"description": "the OpenAPI document"}},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics of this worker",
                "responses": {
                    "200": {"description": "text exposition format", "content": {"text/plain": {}}},
                    "401": _UNAUTHORIZED,
                },
            }
        },
        "/customers": {
            "get": {
                "summary": "The riskiest customers, highest risk score first",
                "parameters": [_limit(20)],
                "responses": {"200": _json(ranking, "the ranking"), "400": _BAD_QUERY, **authed},
            }
        },
        "/customers/{customer_id}/risk": {
            "get": {
                "summary": "A customer's risk profile: score, tier, features, active warnings",
                "parameters": [_CUSTOMER],
                "responses": {
                    "200": _json(_ref("RiskProfile"), "the profile"),
                    "404": _NOT_FOUND,
                    **authed,
                },
            }
        },
        "/customers/{customer_id}/history": {
            "get": {
                "summary": "A customer's recent score and feature snapshots (for charts)",
                "parameters": [_CUSTOMER, _limit(200)],
                "responses": {
                    "200": _json(history, "the snapshots"),
                    "400": _BAD_QUERY,
                    "404": _NOT_FOUND,
                    **authed,
                },
            }
        },
        "/warnings": {
            "get": {
                "summary": "Warnings and resolutions, newest first, filtered and paginated",
                "parameters": [
                    _query(
                        "level",
                        "level(s), repeatable or comma separated",
                        {"type": "string", "examples": [",".join(LEVELS[2:])]},
                    ),
                    _query(
                        "status", "firing or resolved", {"type": "string", "enum": list(STATUSES)}
                    ),
                    _query("customer_id", "one customer's warnings", {"type": "string"}),
                    _query(
                        "segment",
                        "dimension:value, dimension one of "
                        + ", ".join(SEGMENT_DIMENSIONS)
                        + "; repeatable, all must match",
                        {"type": "string", "examples": ["industry:retail"]},
                    ),
                    _query(
                        "since",
                        "published at or after (RFC 3339 with offset)",
                        {"type": "string", "format": "date-time"},
                    ),
                    _query(
                        "until",
                        "published at or before (RFC 3339 with offset)",
                        {"type": "string", "format": "date-time"},
                    ),
                    _query("cursor", "next_cursor of the previous page", {"type": "string"}),
                    _limit(50),
                ],
                "responses": {"200": _json(warning_list, "one page"), "400": _BAD_QUERY, **authed},
            }
        },
        "/summary": {
            "get": {
                "summary": "Customers by tier; warnings by level among the latest 1000",
                "responses": {"200": _json(summary, "the counts"), **authed},
            }
        },
        "/events": {
            "get": {
                "summary": "Server-sent events: every warning and resolution as it is published",
                "responses": {
                    "200": {
                        "description": "`event: warning`, `data:` the warning JSON",
                        "content": {"text/event-stream": {}},
                    },
                    **authed,
                },
            }
        },
        "/warnings/{warning_id}/ack": _action(
            "Acknowledge a warning: produces a collection event (action acknowledged)",
            "AckRequest",
            False,
            [_path("warning_id", "the warning")],
        ),
        "/customers/{customer_id}/contact": _action(
            "Record a contact with the customer (action contacted)",
            "ContactRequest",
            False,
            [_CUSTOMER],
        ),
        "/customers/{customer_id}/promise-to-pay": _action(
            "Record a promise to pay (action promise_to_pay), amount converted to base currency",
            "PromiseRequest",
            True,
            [_CUSTOMER],
        ),
    }


def document(version: str) -> dict[str, Any]:
    """The whole OpenAPI document."""
    _, defs = models_json_schema([(m, "validation") for m in _MODELS], ref_template=_REF)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Problem"] = {
        "type": "object",
        "description": "RFC 9457 problem details",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "enum": [type_uri(k) for k in KINDS]},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "stream-risk",
            "version": version,
            "description": "Customer credit-risk profiles, early warnings and collections "
            "actions, served by each stream-risk worker.",
        },
        "security": [{"apiKey": []}, {"bearer": []}],
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
            "schemas": schemas,
        },
        "paths": _paths(),
    }
