"""The HTTP API and the dashboard: an aiohttp application served inside the worker.

Routes (the OpenAPI document at ``/openapi.json`` describes each):

* public: ``/`` (dashboard), ``/static/*``, ``/health``, ``/openapi.json``;
* data, with an API key: ``/customers``, ``/customers/{id}/risk``,
  ``/customers/{id}/history``, ``/warnings``, ``/summary``, ``/events`` (SSE),
  ``/metrics``;
* actions, with an API key, each producing one ``collection`` event to Kafka:
  ``POST /warnings/{id}/ack``, ``POST /customers/{id}/contact``,
  ``POST /customers/{id}/promise-to-pay``.

Errors are RFC 9457 problem details. Every response carries the security
headers of :mod:`stream_risk.api.guard`; requests with a key are rate limited
per key (429 when the bucket is empty); with keys off, state-changing requests
from another site's page are refused (403). Every request is logged by
``stream_risk.api.access`` with the name of the key it used, and every action
event carries that name as ``api_key_id``. :class:`ApiServer` starts and stops
the application on a host and port; the worker runs it as a service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError

from stream_risk import __version__
from stream_risk.api import actions, auth, guard
from stream_risk.api.live import LiveHub
from stream_risk.api.openapi import document
from stream_risk.api.problems import PROBLEM_JSON, Problem, field_errors, from_status
from stream_risk.api.queries import parse_page_limit, parse_warning_query
from stream_risk.api.store import RiskStore
from stream_risk.config import Settings
from stream_risk.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from stream_risk.metrics import WorkerMetrics

log = logging.getLogger(__name__)
#: One line per request: method, path, status, key name, client, milliseconds.
access_log = logging.getLogger("stream_risk.api.access")
#: The key name recorded when authentication is off.
ANONYMOUS = "anonymous"

STATIC = Path(__file__).resolve().parent / "static"
#: Routes anyone may call; every other route needs an API key (unless auth is off).
PUBLIC_ROUTES = frozenset({"dashboard", "static", "health", "openapi"})
#: Seconds between keep-alive comments on an idle event stream.
KEEPALIVE = 15.0
#: Seconds to wait for Kafka to acknowledge a produced collection event.
PRODUCE_TIMEOUT = 15.0

#: ``produce(topic, key, value)``: send one message and wait for the broker's ack.
Produce = Callable[[str, bytes, bytes], Awaitable[Any]]
M = TypeVar("M", bound=BaseModel)


def _now() -> datetime:
    return datetime.now(UTC)


def _event_id() -> str:
    return f"api-{uuid.uuid4()}"


@dataclass
class ApiDeps:
    """What the API needs from the worker."""

    settings: Settings
    metrics: WorkerMetrics
    produce: Produce
    clock: Callable[[], datetime] = _now
    #: The latest event time this worker has processed (``None`` before any event).
    stream_time: Callable[[], datetime | None] = lambda: None
    new_event_id: Callable[[], str] = _event_id
    monotonic: Callable[[], float] = time.monotonic
    store: RiskStore = field(init=False)
    hub: LiveHub = field(init=False)
    keys: list[auth.ApiKey] = field(init=False)
    buckets: guard.TokenBuckets | None = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.keys = auth.parse_keys(s.api_keys)
        self.buckets = (
            guard.TokenBuckets(s.api_rate_per_second, s.api_rate_burst)
            if s.api_rate_per_second > 0
            else None
        )
        self.store = RiskStore(s.redis_url, s.redis_prefix)
        self.hub = LiveHub(s.redis_url, self.store.keys.channel, self.store.remember)


DEPS = web.AppKey("deps", ApiDeps)
#: The name of the API key a request used (set by the auth middleware).
KEY_ID = web.RequestKey("api_key_id", str)


def problem_response(problem: Problem, instance: str) -> web.Response:
    return web.Response(
        status=problem.status,
        body=orjson.dumps(problem.body(instance)),
        content_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def _route_label(request: web.Request) -> str:
    info = request.match_info
    if info.http_exception is not None:
        return "unmatched"
    return info.route.resource.canonical if info.route.resource is not None else "unmatched"


@web.middleware
async def _problems(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    deps = request.app[DEPS]
    started = deps.monotonic()
    try:
        response = await handler(request)
    except Problem as exc:
        response = problem_response(exc, request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        problem = from_status(exc.status)
        allow = exc.headers.get("Allow")
        if allow:
            problem.headers["Allow"] = allow
        response = problem_response(problem, request.path)
    except (RedisError, OSError) as exc:
        # The cause goes to the log only: exception text can name hosts and users.
        log.warning("API %s %s: Redis unavailable: %s", request.method, request.path, exc)
        response = problem_response(
            Problem(503, "unavailable", "Redis is not available; the worker log has details"),
            request.path,
        )
    except Exception:
        log.exception("API %s %s failed", request.method, request.path)
        response = problem_response(
            Problem(500, "internal", "an internal error occurred; the worker log has details"),
            request.path,
        )
    deps.metrics.http_requests.labels(_route_label(request), str(response.status)).inc()
    access_log.info(
        "%s %s %d key=%s client=%s %.1fms",
        request.method,
        request.path,
        response.status,
        request.get(KEY_ID, "-"),
        request.remote or "-",
        (deps.monotonic() - started) * 1000,
    )
    return response


@web.middleware
async def _authenticate(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    info = request.match_info
    deps = request.app[DEPS]
    if info.http_exception is not None or info.route.name in PUBLIC_ROUTES:
        return await handler(request)
    if deps.settings.api_auth:
        request[KEY_ID] = who = auth.check(request.headers, deps.keys)
    else:
        request[KEY_ID] = ANONYMOUS
        who = f"client:{request.remote}"
        refused = guard.cross_site(request.method, request.headers, request.host)
        if refused is not None:
            raise Problem(
                403,
                "cross-site",
                f"state-changing requests must come from this site's own pages ({refused})",
            )
    if deps.buckets is not None:
        wait = deps.buckets.take(who, deps.monotonic())
        if wait > 0:
            raise Problem(
                429,
                "rate-limited",
                f"too many requests for {request[KEY_ID]}: at most "
                f"{deps.settings.api_rate_per_second:g}/s (bursts of "
                f"{deps.settings.api_rate_burst}); retry in {wait:.1f}s",
                headers={"Retry-After": str(max(1, int(wait + 0.999)))},
            )
    return await handler(request)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    # On every response, streams and files included (set before the headers go out).
    for name, value in guard.SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def _params(request: web.Request) -> dict[str, list[str]]:
    """The query string with every value of a repeated parameter."""
    return {name: request.query.getall(name) for name in request.query}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


def _redis_enabled(deps: ApiDeps) -> None:
    if not deps.settings.redis_enabled:
        raise Problem(
            503, "unavailable", "this worker does not publish to Redis (STREAM_RISK_REDIS_ENABLED)"
        )


async def _body(request: web.Request, model: type[M], required: bool) -> M:
    raw = await request.read() if request.body_exists else b""
    if not raw.strip():
        if required:
            raise Problem(422, "invalid-body", "a JSON body is required")
        return model()
    if request.content_type != "application/json":
        raise Problem(
            415,
            "unsupported-media-type",
            f"send the body as application/json, not {request.content_type}",
        )
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "invalid-request", f"the body is not JSON: {exc}") from None
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = field_errors(exc.errors())  # type: ignore[arg-type]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise Problem(422, "invalid-body", detail, errors=errors) from None


async def dashboard(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


async def health(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    checks: dict[str, str] = {}
    if deps.settings.redis_enabled:
        try:
            await asyncio.wait_for(deps.store.ping(), 3.0)
            checks["redis"] = "ok"
        except (RedisError, OSError, TimeoutError) as exc:
            # Never the exception text: /health is public.
            log.warning("health: Redis unavailable: %r", exc)
            checks["redis"] = "unavailable"
    else:
        checks["redis"] = "disabled"
    ok = not checks["redis"].startswith("unavailable")
    return _json({"status": "ok" if ok else "degraded", "checks": checks}, 200 if ok else 503)


async def openapi(request: web.Request) -> web.Response:
    return _json(document(__version__))


async def metrics(request: web.Request) -> web.Response:
    body = request.app[DEPS].metrics.render()
    return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})


async def customers(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    _redis_enabled(deps)
    limit = parse_page_limit(_params(request), 20)
    return _json({"items": await deps.store.riskiest(limit)})


async def risk(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    _redis_enabled(deps)
    customer_id = request.match_info["customer_id"]
    profile = await deps.store.profile(customer_id)
    if profile is None:
        raise Problem(404, "not-found", f"no risk profile for customer {customer_id!r}")
    return _json(profile)


async def history(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    _redis_enabled(deps)
    customer_id = request.match_info["customer_id"]
    limit = parse_page_limit(_params(request), 200)
    items = await deps.store.history(customer_id, limit)
    if not items and await deps.store.profile(customer_id) is None:
        raise Problem(404, "not-found", f"no risk profile for customer {customer_id!r}")
    return _json({"customer_id": customer_id, "items": items})


async def warnings(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    _redis_enabled(deps)
    query = parse_warning_query(_params(request))
    items, cursor = await deps.store.warnings(query)
    return _json({"items": items, "next_cursor": cursor})


async def summary(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    _redis_enabled(deps)
    return _json(await deps.store.summary())


async def events(request: web.Request) -> web.StreamResponse:
    deps = request.app[DEPS]
    _redis_enabled(deps)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
        await response.write(b"retry: 3000\n: connected\n\n")
        async with deps.hub.client() as queue:
            while True:
                try:
                    frame = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    frame = b": keep-alive\n\n"
                if LiveHub.is_close(frame):
                    break
                await response.write(frame)
    return response


async def _customer_time(deps: ApiDeps, customer_id: str) -> datetime | None:
    """The customer's latest event time (profile ``updated_at``), or ``None`` if unknown."""
    profile = await deps.store.profile(customer_id)
    if profile is None or not profile.get("updated_at"):
        return None
    return datetime.fromisoformat(profile["updated_at"])


async def _action_time(deps: ApiDeps, customer_id: str) -> datetime:
    customer_time = await _customer_time(deps, customer_id)
    if customer_time is None:
        raise Problem(404, "not-found", f"no risk profile for customer {customer_id!r}")
    return actions.event_time(
        deps.settings.api_event_time, deps.clock(), deps.stream_time(), customer_time
    )


async def _produce(request: web.Request, deps: ApiDeps, event: dict[str, Any]) -> web.Response:
    # Who acted: the name of the API key (``anonymous`` with keys off).
    event["api_key_id"] = request.get(KEY_ID, ANONYMOUS)
    topic = deps.settings.topic("collection")
    try:
        await asyncio.wait_for(
            deps.produce(topic, event["customer_id"].encode(), orjson.dumps(event)),
            PRODUCE_TIMEOUT,
        )
    except Exception as exc:
        log.warning("could not produce a collection event to %s: %r", topic, exc)
        raise Problem(
            503,
            "unavailable",
            "Kafka did not accept the collection event; the worker log has details",
        ) from None
    deps.metrics.collection_actions.labels(event["action"]).inc()
    log.info(
        "collection action %s for customer %s (event %s, key %s)",
        event["action"],
        event["customer_id"],
        event["event_id"],
        event["api_key_id"],
    )
    return _json({"event": event, "topic": topic}, status=202)


async def acknowledge(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    _redis_enabled(deps)
    warning_id = request.match_info["warning_id"]
    body = await _body(request, actions.AckRequest, required=False)
    customer_id = await deps.store.customer_of(warning_id)
    if customer_id is None:
        raise Problem(404, "not-found", f"no warning {warning_id!r} in the warnings stream")
    now = await _action_time(deps, customer_id)
    event = actions.acknowledgement(customer_id, warning_id, body, now, deps.new_event_id())
    return await _produce(request, deps, event)


async def _customer_action(
    request: web.Request, model: type[M], required: bool
) -> tuple[ApiDeps, str, M, datetime]:
    """What every customer action starts with: the customer, the valid body, the event time."""
    deps = request.app[DEPS]
    _redis_enabled(deps)
    customer_id = request.match_info["customer_id"]
    body = await _body(request, model, required)
    return deps, customer_id, body, await _action_time(deps, customer_id)


async def contact(request: web.Request) -> web.Response:
    deps, customer_id, body, now = await _customer_action(request, actions.ContactRequest, False)
    event = actions.contact(customer_id, body, now, deps.new_event_id())
    return await _produce(request, deps, event)


async def promise_to_pay(request: web.Request) -> web.Response:
    deps, customer_id, body, now = await _customer_action(request, actions.PromiseRequest, True)
    settings = deps.settings
    event = actions.promise_to_pay(
        customer_id,
        body,
        now,
        deps.new_event_id(),
        settings.base_currency,
        dict(settings.fx_rates),
    )
    return await _produce(request, deps, event)


async def _start_background(app: web.Application) -> None:
    deps = app[DEPS]
    if deps.settings.redis_enabled:
        await deps.store.setup()
        await deps.hub.start()


async def _stop_streams(app: web.Application) -> None:
    # Before the server waits for open requests: end every event stream.
    await app[DEPS].hub.stop()


async def _close_store(app: web.Application) -> None:
    await app[DEPS].store.close()


def create_app(deps: ApiDeps) -> web.Application:
    """The aiohttp application with every route, the auth and the problem middlewares."""
    app = web.Application(middlewares=[_problems, _authenticate])
    app[DEPS] = deps
    app.on_response_prepare.append(_security_headers)
    r = app.router
    r.add_get("/", dashboard, name="dashboard")
    r.add_static("/static", STATIC, name="static")
    r.add_get("/health", health, name="health")
    r.add_get("/openapi.json", openapi, name="openapi")
    r.add_get("/metrics", metrics, name="metrics")
    r.add_get("/customers", customers, name="customers")
    r.add_get("/customers/{customer_id}/risk", risk, name="risk")
    r.add_get("/customers/{customer_id}/history", history, name="history")
    r.add_post("/customers/{customer_id}/contact", contact, name="contact")
    r.add_post("/customers/{customer_id}/promise-to-pay", promise_to_pay, name="promise")
    r.add_get("/warnings", warnings, name="warnings")
    r.add_post("/warnings/{warning_id}/ack", acknowledge, name="ack")
    r.add_get("/summary", summary, name="summary")
    r.add_get("/events", events, name="events")
    app.on_startup.append(_start_background)
    app.on_shutdown.append(_stop_streams)
    app.on_cleanup.append(_close_store)
    return app


class WebPortUnavailable(RuntimeError):
    """The configured host and port cannot be bound."""


class ApiServer:
    """Serves :func:`create_app` on ``host``:``port`` (port 0: any free port)."""

    def __init__(self, deps: ApiDeps, host: str, port: int) -> None:
        self.deps = deps
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def start(self) -> None:
        settings = self.deps.settings
        if settings.api_auth and not settings.api_keys:
            log.warning(
                "the HTTP API requires an API key but none is configured: set "
                "STREAM_RISK_API_KEYS (data endpoints and actions answer 401 until then)"
            )
        elif not settings.api_auth:
            log.warning("API authentication is OFF (STREAM_RISK_API_AUTH=false): demo use only")
        runner = web.AppRunner(create_app(self.deps), access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise WebPortUnavailable(
                f"cannot serve the HTTP API on {self.host}:{self.port}: {exc.strerror or exc}; "
                "give each worker on a host its own STREAM_RISK_WEB_PORT, or set "
                "STREAM_RISK_WEB_ENABLED=false"
            ) from exc
        self._runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple):
                self.port = int(address[1])
                break
        log.info("HTTP API and dashboard on %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
