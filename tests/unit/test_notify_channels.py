"""Channel senders against servers on loopback (aiohttp, aiosmtpd), and the retry loop."""

from __future__ import annotations

import asyncio
import re
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from email import message_from_bytes, policy
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from stream_risk.config import Settings
from stream_risk.notify.channels import (
    AppriseSender,
    DeliveryError,
    SmtpSender,
    WebhookSender,
    build_senders,
)
from stream_risk.notify.message import Notification, verify
from stream_risk.notify.routes import (
    AppriseChannel,
    SmtpChannel,
    WebhookChannel,
    load,
    missing_env,
    parse,
)
from stream_risk.notify.service import Notifier, NotifierOptions, Stopping

WARNING = {
    "warning_id": "w-1",
    "customer_id": "acme",
    "level": "critical",
    "status": "firing",
    "rule": "overdue_90_days",
    "occurred_at": "2026-04-01T00:00:00+00:00",
    "risk_score": 0.8,
    "tier": "high",
    "reasons": [{"text": "oldest open item is 90 days past due (threshold 90)"}],
    "actions": [{"kind": "hold_orders"}],
}
NOTE = Notification("hook", "firing", WARNING, {"region": "DACH"})


@asynccontextmanager
async def http_server(
    handler: Callable[[web.Request], Awaitable[web.Response]],
) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def failure(sender: WebhookSender | SmtpSender) -> DeliveryError:
    """The error a sender raises for :data:`NOTE` (fails the test if there is none)."""
    await sender.setup()
    try:
        await sender.send(NOTE)
    except DeliveryError as exc:
        return exc
    finally:
        await sender.close()
    raise AssertionError("the send did not fail")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_webhook_sends_signed_json_with_idempotency_key() -> None:
    seen: list[tuple[dict[str, str], bytes]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    async def scenario() -> None:
        async with http_server(handler) as base:
            channel = WebhookChannel(
                type="webhook",
                allow_http=True,
                url=f"{base}/in",
                secret_env="S",
                headers={"X-Team": "north"},
            )
            sender = WebhookSender(channel, "s3cret", clock=lambda: 1_800_000_000.0)
            await sender.setup()
            try:
                await sender.send(NOTE)
            finally:
                await sender.close()

    asyncio.run(scenario())
    [(headers, body)] = seen
    assert body == NOTE.webhook_body()
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Team"] == "north"
    assert headers["Idempotency-Key"] == "w-1:firing:critical:hook"
    assert headers["X-Stream-Risk-Timestamp"] == "1800000000"
    assert verify(
        b"s3cret",
        headers["X-Stream-Risk-Timestamp"],
        body,
        headers["X-Stream-Risk-Signature"],
        now=1_800_000_010,
    )


@pytest.mark.parametrize(
    ("status", "permanent"), [(500, False), (503, False), (429, False), (404, True), (400, True)]
)
def test_webhook_failures_say_whether_a_retry_can_help(status: int, permanent: bool) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text="nope")

    async def scenario() -> DeliveryError:
        async with http_server(handler) as base:
            return await failure(
                WebhookSender(
                    WebhookChannel(type="webhook", allow_http=True, url=base, secret_env="S"), "s"
                )
            )

    error = asyncio.run(scenario())
    assert error.permanent is permanent
    assert f"HTTP {status}" in str(error) and "nope" in str(error)


def test_webhook_connection_refused_is_a_transient_failure() -> None:
    url = f"http://127.0.0.1:{_free_port()}/in"
    sender = WebhookSender(
        WebhookChannel(type="webhook", allow_http=True, url=url, secret_env="S"), "s"
    )
    error = asyncio.run(failure(sender))
    assert not error.permanent
    assert "127.0.0.1" in str(error)


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


def test_smtp_delivers_to_every_recipient() -> None:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        channel = SmtpChannel.model_validate(
            {
                "type": "smtp",
                "host": "127.0.0.1",
                "port": controller.port,
                "from": "risk@example.com",
                "to": ["a@example.com", "b@example.com"],
            }
        )

        async def scenario() -> None:
            sender = SmtpSender(channel)
            await sender.setup()
            await sender.send(Notification("mail", "escalated", WARNING))

        asyncio.run(scenario())
    finally:
        controller.stop()
    [envelope] = inbox.envelopes
    assert envelope.mail_from == "risk@example.com"
    assert envelope.rcpt_tos == ["a@example.com", "b@example.com"]
    message = message_from_bytes(envelope.content, policy=policy.default)
    assert str(message["Subject"]).strip() == (
        "[stream-risk] Escalated to CRITICAL: acme, overdue_90_days"
    )
    assert "Recommended: hold orders" in message.get_content()


def test_smtp_server_down_is_a_transient_failure() -> None:
    channel = SmtpChannel.model_validate(
        {
            "type": "smtp",
            "host": "127.0.0.1",
            "port": _free_port(),
            "from": "r@x.org",
            "to": ["a@x.org"],
            "timeout_seconds": 2,
        }
    )

    assert not asyncio.run(failure(SmtpSender(channel))).permanent


def test_apprise_posts_through_its_json_service() -> None:
    seen: list[dict[str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.Response(status=200)

    async def scenario() -> None:
        async with http_server(handler) as base:
            url = base.replace("http://", "json://") + "/chat"
            sender = AppriseSender(AppriseChannel(type="apprise", urls_env="U"), url)
            await sender.setup()
            await sender.send(Notification("chat", "firing", WARNING))

    asyncio.run(scenario())
    [body] = seen
    assert body["title"] == "CRITICAL warning: acme, overdue_90_days"
    assert "hold orders" in body["message"]
    assert body["type"] == "failure"  # critical shows as a failure (red)
    # Chat services take no headers: the idempotency key ends the text.
    assert body["message"].endswith("\nIdempotency-Key: w-1:firing:critical:chat")


def test_apprise_without_the_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "apprise", None)
    sender = AppriseSender(AppriseChannel(type="apprise", urls_env="U"), "json://127.0.0.1/x")
    with pytest.raises(ImportError, match=r"pip install 'stream-risk\[notify\]'"):
        asyncio.run(sender.setup())


def test_apprise_rejects_urls_it_does_not_understand() -> None:
    sender = AppriseSender(AppriseChannel(type="apprise", urls_env="CHAT_URLS"), "nonsense://x")
    with pytest.raises(ValueError, match="CHAT_URLS holds no usable apprise URL"):
        asyncio.run(sender.setup())


# --- the retry loop -----------------------------------------------------------------------------

ROUTES = """
defaults:
  retry: {attempts: 4, base_seconds: 0.01, max_seconds: 0.02}
channels:
  hook: {type: webhook, url: "http://127.0.0.1:1/x", allow_http: true, secret_env: HOOK_SECRET}
routes:
  - {name: all, channels: [hook]}
"""


class Scripted:
    """A sender that fails with the given errors first, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.attempts: list[float] = []

    async def setup(self) -> None:
        return None

    async def send(self, note: Notification) -> None:
        self.attempts.append(time.monotonic())
        if self.errors:
            raise self.errors.pop(0)

    async def close(self) -> None:
        return None


def _notifier(sender: Scripted) -> Notifier:
    route_file, errors = load(parse(ROUTES, "routes.yaml"))
    assert route_file is not None, errors
    assert set(build_senders(route_file.config, {"HOOK_SECRET": "s"})) == {"hook"}
    return Notifier(route_file, Settings(), {"hook": sender})


@pytest.mark.parametrize(
    ("errors", "attempts", "failed"),
    [
        ([], 1, False),
        ([DeliveryError("HTTP 500")] * 2, 3, False),
        ([DeliveryError("HTTP 500")] * 4, 4, True),  # attempts exhausted
        ([DeliveryError("HTTP 404", permanent=True)], 1, True),  # no retry can help
        ([RuntimeError("sender bug"), DeliveryError("HTTP 502")], 3, False),
    ],
)
def test_retries_with_backoff(errors: list[Exception], attempts: int, failed: bool) -> None:
    sender = Scripted(*errors)
    notifier = _notifier(sender)
    used, error = asyncio.run(notifier._send_with_retries(NOTE))
    assert used == attempts == len(sender.attempts)
    assert (error is not None) is failed
    gaps = [b - a for a, b in zip(sender.attempts, sender.attempts[1:], strict=False)]
    assert all(g >= 0.009 for g in gaps)  # it waited between attempts


def test_constructing_a_notifier_touches_nothing() -> None:
    # No Redis, Kafka or HTTP: nothing listens on these and nothing is contacted.
    settings = Settings(
        redis_url="redis://127.0.0.1:1/0",
        kafka_bootstrap="127.0.0.1:1",
        redis_prefix="risk",
        topic_prefix="stream-risk",
        topics={},
    )
    route_file, _ = load(parse(ROUTES, "routes.yaml"))
    assert route_file is not None
    notifier = Notifier(route_file, settings, {"hook": Scripted()})
    assert notifier.stream_key == "risk:warnings"
    assert notifier.dead_letters.topic == "stream-risk.notification-dead-letters"


def test_redis_down_is_logged_and_retried_until_stopped(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{_free_port()}/0", redis_prefix="risk")
    route_file, _ = load(parse(ROUTES, "routes.yaml"))
    assert route_file is not None
    every_line = NotifierOptions(log_interval_seconds=0.0)
    notifier = Notifier(route_file, settings, {"hook": Scripted()}, every_line)

    async def scenario() -> None:
        setup = asyncio.create_task(notifier.setup())
        while caplog.text.count("Redis unavailable") < 2:
            assert not setup.done(), "setup gave up instead of backing off"
            await asyncio.sleep(0.05)
        notifier.stop()
        with pytest.raises(Stopping):
            await setup
        await notifier.close()

    with caplog.at_level("WARNING", logger="stream_risk.notify.service"):
        asyncio.run(scenario())
    assert "cannot create the consumer group" in caplog.text
    # The second pause is jittered within [0.5, 1.0] s: growing, never in lock step.
    assert re.search(r"retry 2 in (0\.[5-9]|1\.0)s", caplog.text), caplog.text


def test_an_outage_logs_a_line_per_interval_not_per_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{_free_port()}/0", redis_prefix="risk")
    route_file, _ = load(parse(ROUTES, "routes.yaml"))
    assert route_file is not None
    fast = NotifierOptions(max_backoff_seconds=0.02, log_interval_seconds=60.0)
    notifier = Notifier(route_file, settings, {"hook": Scripted()}, fast)

    async def scenario() -> None:
        setup = asyncio.create_task(notifier.setup())
        while notifier.stats["redis_retries"] < 6:
            assert not setup.done()
            await asyncio.sleep(0.02)
        notifier.stop()
        with pytest.raises(Stopping):
            await setup
        await notifier.close()

    with caplog.at_level("WARNING", logger="stream_risk.notify.service"):
        asyncio.run(scenario())
    assert caplog.text.count("Redis unavailable") == 1


# --- transport security ---------------------------------------------------------------------------


def test_webhook_does_not_follow_redirects() -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.path)
        if request.path == "/in":
            raise web.HTTPTemporaryRedirect("/elsewhere")
        return web.Response(status=200)

    async def scenario() -> DeliveryError:
        async with http_server(handler) as base:
            channel = WebhookChannel(
                type="webhook", allow_http=True, url=f"{base}/in", secret_env="S"
            )
            return await failure(WebhookSender(channel, "s"))

    error = asyncio.run(scenario())
    assert seen == ["/in"]  # the body and its signature never went to the other address
    assert error.permanent
    assert "HTTP 307" in str(error) and "redirects are not followed" in str(error)


def test_webhook_header_secrets_come_from_the_environment() -> None:
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(status=200)

    async def scenario() -> None:
        async with http_server(handler) as base:
            text = (
                "channels:\n  hook:\n    type: webhook\n    allow_http: true\n"
                f"    url: {base}/in\n    secret_env: S\n"
                "    header_env: {Authorization: HOOK_AUTH}\nroutes: []\n"
            )
            route_file, errors = load(parse(text, "r.yaml"))
            assert route_file is not None, errors
            env = {"S": "s", "HOOK_AUTH": "Bearer t0ken"}
            assert missing_env(route_file, {"S": "s"})[0].message.endswith("HOOK_AUTH is not set")
            sender = build_senders(route_file.config, env)["hook"]
            await sender.setup()
            try:
                await sender.send(NOTE)
            finally:
                await sender.close()

    asyncio.run(scenario())
    assert seen[0]["Authorization"] == "Bearer t0ken"


def test_smtp_credentials_are_never_sent_without_tls() -> None:
    # The test server offers no STARTTLS: a channel with credentials must fail, not log in.
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        channel = SmtpChannel.model_validate(
            {
                "type": "smtp",
                "host": "127.0.0.1",
                "port": controller.port,
                "from": "risk@example.com",
                "to": ["a@example.com"],
                "starttls": True,
                "username_env": "U",
                "password_env": "P",
                "timeout_seconds": 5,
            }
        )
        error = asyncio.run(failure(SmtpSender(channel, "user", "hunter2")))
    finally:
        controller.stop()
    assert "STARTTLS" in str(error) or "starttls" in str(error).lower()
    assert inbox.envelopes == []
    with pytest.raises(ValueError, match="credentials need an encrypted connection"):
        SmtpChannel.model_validate(
            {**channel.model_dump(by_alias=True), "starttls": False, "tls": False}
        )
