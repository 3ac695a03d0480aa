"""The aiohttp application in process: routes, keys, problem details, actions.

Redis is replaced by an in-memory store with the same methods, and Kafka by a
list that records what would be produced; the real services are exercised by
tests/integration/test_api.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.exceptions import ConnectionError as RedisConnectionError

from stream_risk.api.live import LiveHub
from stream_risk.api.openapi import document
from stream_risk.api.queries import WarningQuery
from stream_risk.api.server import ApiDeps, create_app
from stream_risk.config import Settings
from stream_risk.metrics import WorkerMetrics

KEY = "unit-key"
PROFILE = {
    "customer_id": "c-1",
    "risk_score": 0.4,
    "tier": "medium",
    "features": {"days_past_due": 31},
    "active_warnings": ["w-1"],
    "updated_at": "2026-03-05T00:00:00+00:00",
}


class MemoryStore:
    """The reads of :class:`stream_risk.api.store.RiskStore`, from dictionaries."""

    def __init__(self) -> None:
        self.profiles = {"c-1": PROFILE}
        self.owners = {"w-1": "c-1"}
        self.queries: list[WarningQuery] = []
        self.down = False

    async def setup(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def ping(self) -> bool:
        return True

    def _check(self) -> None:
        if self.down:
            raise RedisConnectionError("Connection refused")

    async def profile(self, customer_id: str) -> dict[str, Any] | None:
        self._check()
        return self.profiles.get(customer_id)

    async def customer_of(self, warning_id: str) -> str | None:
        self._check()
        return self.owners.get(warning_id)

    async def warnings(self, q: WarningQuery) -> tuple[list[dict[str, Any]], str | None]:
        self._check()
        self.queries.append(q)
        return [], None

    async def history(self, customer_id: str, limit: int) -> list[dict[str, Any]]:
        return []

    async def riskiest(self, limit: int) -> list[dict[str, Any]]:
        return []

    async def summary(self) -> dict[str, Any]:
        return {"customers": 1}


class QuietHub:
    """The live hub without a Redis subscription; frames are pushed by the test."""

    def __init__(self) -> None:
        self.hub = LiveHub("redis://unused", "unused", lambda w: None)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        await self.hub.stop()

    def client(self) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[bytes]]:
        return self.hub.client()


Produced = list[tuple[str, bytes, bytes]]
Scenario = Callable[[TestClient[Any, Any], ApiDeps, Produced], Awaitable[None]]


def run(
    scenario: Scenario,
    fail_produce: bool = False,
    stream_time: datetime | None = None,
    **settings: Any,
) -> None:
    """Serve the app on a loopback port and run ``scenario`` against it."""
    produced: Produced = []

    async def produce(topic: str, key: bytes, value: bytes) -> None:
        if fail_produce:
            raise RuntimeError("KafkaTimeoutError")
        produced.append((topic, key, value))

    config = {"api_keys": [KEY], "topic_prefix": "unit", "fx_rates": {"USD": 0.9}, **settings}
    deps = ApiDeps(
        Settings(**config),
        WorkerMetrics(),
        produce,
        clock=lambda: datetime(2026, 3, 10, tzinfo=UTC),
        new_event_id=lambda: "api-fixed",
        stream_time=lambda: stream_time,
    )
    deps.store = MemoryStore()  # type: ignore[assignment]
    deps.hub = QuietHub()  # type: ignore[assignment]

    async def main() -> None:
        async with TestClient(TestServer(create_app(deps))) as client:
            await scenario(client, deps, produced)

    asyncio.run(main())


async def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body = await response.json(content_type=None)
    assert body["status"] == status
    assert set(body) >= {"type", "title", "status", "detail"}
    return dict(body)


H = {"X-API-Key": KEY}
PROTECTED = [
    ("GET", "/customers"),
    ("GET", "/customers/c-1/risk"),
    ("GET", "/customers/c-1/history"),
    ("GET", "/warnings"),
    ("GET", "/summary"),
    ("GET", "/events"),
    ("GET", "/metrics"),
    ("POST", "/warnings/w-1/ack"),
    ("POST", "/customers/c-1/contact"),
    ("POST", "/customers/c-1/promise-to-pay"),
]


def test_public_routes_answer_without_a_key() -> None:
    async def scenario(client: TestClient[Any, Any], deps: ApiDeps, produced: Produced) -> None:
        page = await client.get("/")
        assert page.status == 200 and "text/html" in page.content_type
        script = await client.get("/static/dashboard.js")
        assert script.status == 200 and "javascript" in script.content_type
        health = await client.get("/health")
        assert health.status == 200
        assert await health.json() == {"status": "ok", "checks": {"redis": "ok"}}
        doc = await client.get("/openapi.json")
        assert (await doc.json())["openapi"] == "3.1.0"

    run(scenario)


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_data_and_actions_need_a_valid_key(method: str, path: str) -> None:
    async def scenario(client: TestClient[Any, Any], deps: ApiDeps, produced: Produced) -> None:
        missing = await problem(await client.request(method, path), 401)
        assert missing["type"] == "urn:stream-risk:problem:unauthorized"
        assert missing["instance"] == path
        wrong = await client.request(method, path, headers={"Authorization": "Bearer nope"})
        assert (await problem(wrong, 401))["detail"] == "the API key is not valid"
        assert wrong.headers["WWW-Authenticate"] == 'Bearer realm="stream-risk"'
        assert produced == []

    run(scenario)


def test_without_configured_keys_nothing_is_open() -> None:
    async def scenario(client: TestClient[Any, Any], deps: ApiDeps, produced: Produced) -> None:
        body = await problem(await client.get("/warnings", headers=H), 401)
        assert "STREAM_RISK_API_KEYS" in body["detail"]

    run(scenario, api_keys=[])


def test_auth_off_only_when_configured_so() -> None:
    async def scenario(client: TestClient[Any, Any], deps: ApiDeps, produced: Produced) -> None:
        assert (await client.get("/warnings")).status == 200

    run(scenario, api_auth=False)


def test_framework_errors_are_problem_details() -> None:
    async def scenario(client: TestClient[Any, Any], deps: ApiDeps, produced: Produced) -> None:
        await problem(await client.get("/nowhere", headers=H), 404)
        wrong_method = await client.delete("/warnings", headers=H)
        await problem(wrong_method, 405)
        assert "GET" in wrong_method.headers["Allow"]
        await problem(await client.get("/customers/nobody/risk", headers=H), 404)
        body = await problem(await client.get("/warnings?level=severe", headers=H), 400)
        assert body["errors"][0]["field"] == "level"

    run(scenario)


def test_warning_filters_reach_the_store() -> None:
    async def scenario(client: TestClient[Any, Any], deps: ApiDeps, produced: Produced) -> None:
        url = "/warnings?level=high&level=critical&segment=industry:retail&limit=5"
        response = await client.get(url, headers=H)
        assert await response.json() == {"items": [], "next_cursor": None}
        store: Any = deps.store
        (query,) = store.queries
        assert query.levels == {"high", "critical"}
        assert query.segments == (("industry", "retail"),)
        assert query.limit == 5

    run(scenario)


def test_ack_produces_a_collection_event_keyed_by_customer() -> None:
    async def scenario(client: TestClient[Any, Any], deps: ApiDeps, produced: Produced) -> None:
        response = await client.post("/warnings/w-1/ack", headers=H, json={"note": "seen"})
        assert response.status == 202, await response.text()
        body = await response.json()
        ((topic, key, value),) = produced
        assert (topic, key) == ("unit.collection", b"c-1")
        assert json.loads(value) == body["event"]
        assert body["event"]["occurred_at"] == "2026-03-10T00:00:00+00:00"  # the wall clock
        assert body["event"]["event_id"] == "api-fixed"
        metrics = await (await client.get("/metrics", headers=H)).text()
        assert 'stream_risk_collection_actions_total{action="acknowledged"} 1.0' in metrics
        assert (
            'stream_risk_http_requests_total{route="/warnings/{warning_id}/ack",status="202"}'
            in metrics
        )

    run(scenario)


@pytest.mark.parametrize(
    ("stream_time", "expected"),
    [
        (datetime(2026, 3, 7, tzinfo=UTC), "2026-03-07T00:00:00+00:00"),
        (None, PROFILE["updated_at"]),
    ],
)
def test_stream_event_time(stream_time: datetime | None, expected: str) -> None:
    async def scenario(client: TestClient[Any, Any], deps: ApiDeps, produced: Produced) -> None:
        response = await client.post("/customers/c-1/contact", headers=H)
        assert response.status == 202, await response.text()
        assert (await response.json())["event"]["occurred_at"] == expected

    run(scenario, stream_time=stream_time, api_event_time="stream")


def test_bad_action_bodies() -> None:
    async def scenario(client: TestClient[Any, Any], deps: ApiDeps, produced: Produced) -> None:
        path = "/customers/c-1/promise-to-pay"
        await problem(await client.post(path, headers=H), 422)
        as_json = {**H, "Content-Type": "application/json"}
        await problem(await client.post(path, headers=as_json, data=b"{nope"), 400)
        plain = {**H, "Content-Type": "text/plain"}
        await problem(await client.post(path, headers=plain, data=b"amount=1"), 415)
        body = await problem(
            await client.post(path, headers=H, json={"amount": 5, "currency": "EUR"}), 422
        )
        assert body["errors"] == [{"field": "date", "message": "Field required"}]
        await problem(await client.post("/warnings/w-404/ack", headers=H), 404)
        await problem(await client.post("/customers/c-404/contact", headers=H), 404)
        assert produced == []
        good = {"amount": 10, "currency": "USD", "date": "2026-03-31"}
        response = await client.post(path, headers=H, json=good)
        assert response.status == 202
        assert (await response.json())["event"]["promised_amount"] == 9.0

    run(scenario)


def test_kafka_and_redis_failures_are_503() -> None:
    async def scenario(client: TestClient[Any, Any], deps: ApiDeps, produced: Produced) -> None:
        body = await problem(await client.post("/customers/c-1/contact", headers=H), 503)
        assert "Kafka" in body["detail"]
        store: Any = deps.store
        store.down = True
        body = await problem(await client.get("/customers/c-1/risk", headers=H), 503)
        assert "Redis" in body["detail"]

    run(scenario, fail_produce=True)


def test_event_stream_sends_warnings_as_they_arrive() -> None:
    async def scenario(client: TestClient[Any, Any], deps: ApiDeps, produced: Produced) -> None:
        response = await client.get("/events", headers=H)
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        assert await response.content.readuntil(b"\n\n") == b"retry: 3000\n: connected\n\n"
        hub: Any = deps.hub
        while not hub.hub.clients:
            await asyncio.sleep(0.01)
        warning = {"warning_id": "w-1", "customer_id": "c-1", "status": "firing"}
        hub.hub.publish(json.dumps(warning).encode())
        frame = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)
        assert frame.startswith(b"event: warning\nid: w-1:firing\ndata: {")
        response.close()

    run(scenario)


def test_every_route_is_in_the_openapi_document() -> None:
    from openapi_spec_validator import validate

    doc = document("test")
    validate(doc)  # type: ignore[arg-type]

    async def scenario(client: TestClient[Any, Any], deps: ApiDeps, produced: Produced) -> None:
        served: set[tuple[str, str]] = set()
        for route in client.app.router.routes():  # type: ignore[union-attr]
            path = route.resource.canonical if route.resource is not None else ""
            if route.method in {"GET", "POST"} and not path.startswith("/static"):
                served.add((path, route.method.lower()))
        documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
        assert served == documented

    run(scenario)


# --- named keys, access log, rate limit, browser protections -----------------------------------


def test_actions_carry_the_name_of_the_key_and_the_access_log_names_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(client: TestClient[Any, Any], deps: ApiDeps, produced: Produced) -> None:
        for key, path in (("KEY-OPS", "/warnings/w-1/ack"), ("KEY-DESK", "/customers/c-1/contact")):
            response = await client.post(path, headers={"X-API-Key": key})
            assert response.status == 202, await response.text()
        # The old form: a bare key is named after its hash, never shown itself.
        assert (await client.get("/warnings", headers={"X-API-Key": "bare-key"})).status == 200
        events = [json.loads(value) for _, _, value in produced]
        assert [e["api_key_id"] for e in events] == ["ops", "desk"]

    with caplog.at_level("INFO", logger="stream_risk.api.access"):
        run(scenario, api_keys=["ops:KEY-OPS", "desk:KEY-DESK", "bare-key"])
    lines = [r.getMessage() for r in caplog.records if r.name == "stream_risk.api.access"]
    assert lines[0].startswith("POST /warnings/w-1/ack 202 key=ops ")
    assert lines[1].startswith("POST /customers/c-1/contact 202 key=desk ")
    assert lines[2].startswith("GET /warnings 200 key=key-")
    assert not any("KEY-OPS" in line or "bare-key" in line for line in lines)


def test_two_keys_with_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="'ops' is used twice"):
        run(lambda *a: asyncio.sleep(0), api_keys=["ops:a", "ops:b"])


def test_each_key_has_its_own_token_bucket() -> None:
    clock = {"now": 100.0}

    async def scenario(client: TestClient[Any, Any], deps: ApiDeps, produced: Produced) -> None:
        deps.monotonic = lambda: clock["now"]
        ops, desk = {"X-API-Key": "A"}, {"X-API-Key": "B"}
        assert [(await client.get("/summary", headers=ops)).status for _ in range(3)] == [
            200,
            200,
            200,
        ]
        limited = await problem(await client.get("/summary", headers=ops), 429)
        assert limited["type"] == "urn:stream-risk:problem:rate-limited"
        assert "ops" in limited["detail"]
        again = await client.post("/customers/c-1/contact", headers=ops)
        assert again.status == 429 and again.headers["Retry-After"] == "1"
        assert produced == []  # a limited action produces nothing
        assert (await client.get("/summary", headers=desk)).status == 200  # another key
        assert (await client.get("/health")).status == 200  # public routes are not limited
        clock["now"] += 0.5  # half a token per second: one more after 0.5 s
        assert (await client.get("/summary", headers=ops)).status == 200
        assert (await client.get("/summary", headers=ops)).status == 429

    run(scenario, api_keys=["ops:A", "desk:B"], api_rate_per_second=2.0, api_rate_burst=3)


@pytest.mark.parametrize("path", ["/", "/static/dashboard.js", "/health", "/warnings", "/nowhere"])
def test_every_response_carries_the_security_headers(path: str) -> None:
    async def scenario(client: TestClient[Any, Any], deps: ApiDeps, produced: Produced) -> None:
        response = await client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"

    run(scenario)


def test_the_event_stream_carries_the_security_headers() -> None:
    async def scenario(client: TestClient[Any, Any], deps: ApiDeps, produced: Produced) -> None:
        response = await client.get("/events", headers=H)
        assert response.status == 200
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        response.close()

    run(scenario)


def test_health_never_shows_the_exception_text() -> None:
    async def scenario(client: TestClient[Any, Any], deps: ApiDeps, produced: Produced) -> None:
        async def refuse() -> bool:
            raise RedisConnectionError("Error 111 connecting to redis-internal.corp:6379 as admin")

        deps.store.ping = refuse  # type: ignore[method-assign]
        response = await client.get("/health")
        assert response.status == 503
        assert await response.json() == {"status": "degraded", "checks": {"redis": "unavailable"}}
        store: Any = deps.store
        store.down = True
        body = await problem(await client.get("/customers/c-1/risk", headers=H), 503)
        assert "Connection refused" not in body["detail"]

    run(scenario)


def test_with_keys_off_cross_site_posts_are_refused() -> None:
    async def scenario(client: TestClient[Any, Any], deps: ApiDeps, produced: Produced) -> None:
        evil = {"Origin": "https://evil.example", "Content-Type": "application/json"}
        body = await problem(await client.post("/warnings/w-1/ack", headers=evil), 403)
        assert body["type"] == "urn:stream-risk:problem:cross-site"
        fetch = {"Sec-Fetch-Site": "cross-site"}
        await problem(await client.post("/customers/c-1/contact", headers=fetch), 403)
        assert produced == []
        # Reading is allowed from anywhere; posting from the dashboard's own origin is too.
        assert (await client.get("/warnings", headers=evil)).status == 200
        own = {"Origin": f"http://{client.host}:{client.port}", "Sec-Fetch-Site": "same-origin"}
        response = await client.post("/warnings/w-1/ack", headers=own)
        assert response.status == 202, await response.text()
        assert json.loads(produced[0][2])["api_key_id"] == "anonymous"
        # A client that is no browser (no Origin, no Sec-Fetch-Site) is not a cross-site page.
        assert (await client.post("/customers/c-1/contact")).status == 202

    run(scenario, api_auth=False)
