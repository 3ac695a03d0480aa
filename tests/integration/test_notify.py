"""The notifier against a real worker, Kafka and Redis, and real HTTP and SMTP servers.

One worker serves every test of this module (each test has its own customers,
segment region, notifier consumer group and routing file). The webhook
receiver is an aiohttp server on loopback that records every request; the
mail server is aiosmtpd on loopback. Notifiers run as ``stream-risk notify run``
subprocesses.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from stream_risk.notify.message import verify

from .conftest import Env, deployment_env, wait_for

SECRET = "notify-test-secret"
SECRET_ENV = "STREAM_RISK_TEST_WEBHOOK_SECRET"
OVERDUE = "overdue_30_days"


# --- a webhook receiver ---------------------------------------------------------------------------


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None

    @property
    def key(self) -> str:
        return self.headers["Idempotency-Key"]

    def signed(self) -> bool:
        return verify(
            SECRET.encode(),
            self.headers["X-Stream-Risk-Timestamp"],
            self.body,
            self.headers["X-Stream-Risk-Signature"],
            now=time.time(),
        )

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """An HTTP server on loopback, in its own thread: answers 200, or ``fail`` paths with
    500; the ``hold_at``-th request on ``hold_path`` waits until :meth:`release`."""

    fail: set[str] = field(default_factory=set)
    hold_path: str | None = None
    hold_at: int = 0
    #: Called (in the receiver's thread) just before the 200 of the first request on a path.
    before_first_200: dict[str, Any] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    port: int = 0

    def start(self) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "webhook receiver did not start"

    def _serve(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        self._held = asyncio.Event()
        app = web.Application()
        app.router.add_post("/{name}", self._handle)
        self._runner = web.AppRunner(app)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())

    async def _handle(self, request: web.Request) -> web.Response:
        req = Request(request.path, dict(request.headers), await request.read())
        with self._lock:
            self.requests.append(req)
            n = sum(1 for r in self.requests if r.path == req.path)
        if req.path == self.hold_path and n == self.hold_at:
            await self._held.wait()
            req.status = 503  # never answered to the notifier: it was killed meanwhile
        else:
            req.status = 500 if req.path in self.fail else 200
            if n == 1 and req.path in self.before_first_200:
                self.before_first_200[req.path]()
        return web.Response(status=req.status)

    def release(self) -> None:
        self._loop.call_soon_threadsafe(self._held.set)

    def on(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.release()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


class RedisGate:
    """A TCP proxy in front of Redis, in its own thread, that can hold what clients send.

    :meth:`hold` stops forwarding client bytes (and counts what it holds);
    :meth:`cut_and_open` drops the held bytes with every open connection, then
    forwards again: what a killed client had not yet delivered never arrives.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.held: list[bytes] = []
        self.port = 0

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._open = asyncio.Event()
            self._open.set()
            self._generation = 0
            self._writers: list[asyncio.StreamWriter] = []
            server = self._loop.run_until_complete(
                asyncio.start_server(self._client, "127.0.0.1", 0)
            )
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
            server.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert ready.wait(10), "Redis gate did not start"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, up_writer]
        generation = self._generation

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            try:
                while chunk := await src.read(65536):
                    if up and not self._open.is_set():
                        self.held.append(chunk)
                        await self._open.wait()
                    if generation != self._generation:
                        break  # cut: nothing held is delivered
                    dst.write(chunk)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))

    def hold(self) -> None:
        self._loop.call_soon_threadsafe(self._open.clear)

    def cut_and_open(self) -> None:
        def cut() -> None:
            self._generation += 1
            for w in self._writers:
                w.close()
            self._writers.clear()
            self._open.set()

        self._loop.call_soon_threadsafe(cut)

    def stop(self) -> None:
        self.cut_and_open()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    try:
        yield r
    finally:
        r.stop()


# --- the deployment: one worker for the module ----------------------------------------------------


@pytest.fixture(scope="module")
def deployment(services: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with deployment_env(tmp_path_factory.mktemp("notify")) as env:
        env.publish_utilisation_pack()
        env.worker().start()
        yield env


@dataclass
class NotifierProcess:
    """``stream-risk notify run`` as a subprocess."""

    env: dict[str, str]
    args: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self, timeout: float = 60.0) -> None:
        self.starts += 1
        marker = f"===== start {self.starts} ====="
        with self.log_path.open("ab") as log:
            log.write(f"\n{marker}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stream_risk.cli", "notify", "run", *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while "notifier ready" not in self.log()[self.log().rfind(marker) :]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"notifier did not start:\n{self.log()[-4000:]}")
            time.sleep(0.1)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return int(self.proc.returncode)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Scenario:
    """One test's slice of the deployment: its region, group, routes and notifiers."""

    env: Env
    name: str
    notifiers: list[NotifierProcess] = field(default_factory=list)

    @property
    def region(self) -> str:
        return f"region-{self.name}"

    @property
    def group(self) -> str:
        return f"notify-{self.name}"

    @property
    def stream(self) -> str:
        return f"{self.env.settings_env['STREAM_RISK_REDIS_PREFIX']}:warnings"

    def customer(self, n: int) -> str:
        return f"{self.name}-{n}"

    def notifier(self, routes: str, *extra: str) -> NotifierProcess:
        path = self.env.tmp / f"{self.name}-routes.yaml"
        path.write_text(routes)
        n = NotifierProcess(
            dict(self.env.settings_env, **{SECRET_ENV: SECRET}),
            [
                "--routes",
                str(path),
                "--group",
                self.group,
                "--consumer",
                "c1",
                "--block-ms",
                "200",
                *extra,
            ],
            self.env.tmp / f"{self.name}-notifier.log",
        )
        self.notifiers.append(n)
        return n

    def onboard(self, customers: list[str], credit_limit: float = 1_000_000) -> None:
        """Customer events with this scenario's region; wait until Redis profiles show it."""
        for c in customers:
            self.env.send(
                {
                    "type": "customer",
                    "event_id": f"{c}-onboarding",
                    "customer_id": c,
                    "occurred_at": "2026-01-01T00:00:00+00:00",
                    "credit_limit": credit_limit,
                    "currency": "EUR",
                    "payment_terms_days": 30,
                    "segment": {"industry": "retail", "size": "sme", "region": self.region},
                }
            )
        self.env.flush()
        prefix = self.env.settings_env["STREAM_RISK_REDIS_PREFIX"]

        def region(c: str) -> str | None:
            raw = self.env.redis.hget(f"{prefix}:profile:{c}", "features")
            return json.loads(raw).get("segment_region") if raw else None

        # A fresh worker may take a while for its first batches (partitions, models).
        wait_for(
            lambda: all(region(c) == self.region for c in customers), timeout=180, what="profiles"
        )

    def make_overdue(self, customer: str) -> None:
        """A statement 65 days past due: ``overdue_30_days`` fires on it, escalated to high."""
        self.env.send(
            {
                "type": "statement",
                "event_id": f"{customer}-late",
                "customer_id": customer,
                "occurred_at": "2026-02-01T00:00:00+00:00",
                "statement_id": f"{customer}-st",
                "balance": 500.0,
                "currency": "EUR",
                "days_past_due": 65,
                "status": "delinquent",
            }
        )

    def warnings_in_stream(
        self, customers: list[str], rule: str | None = None
    ) -> list[dict[str, str]]:
        """Stream entries of these customers (of one rule: other rules may fire too)."""
        entries = [f for _, f in self.env.redis.xrange(self.stream)]
        return [
            f
            for f in entries
            if f["customer_id"] in customers
            and (rule is None or json.loads(f["warning"])["rule"] == rule)
        ]

    def pending(self) -> int:
        return int(self.env.redis.xpending(self.stream, self.group)["pending"])

    def stop(self) -> None:
        for n in self.notifiers:
            if n.proc is not None:
                n.stop()


@pytest.fixture
def scenario(deployment: Env, request: pytest.FixtureRequest) -> Iterator[Scenario]:
    s = Scenario(deployment, request.node.name.removeprefix("test_")[:20])
    try:
        yield s
    finally:
        s.stop()


def _webhook_routes(region: str, channels: dict[str, str], retry: str = "") -> str:
    hooks = "".join(
        f"  {name}:\n    type: webhook\n    url: {url}\n    allow_http: true\n"
        f"    secret_env: {SECRET_ENV}\n"
        f"    timeout_seconds: 5\n{retry}"
        for name, url in channels.items()
    )
    return (
        f"channels:\n{hooks}"
        f"routes:\n  - name: this-region\n"
        # Only the rule the test triggers: other rules may fire on the same events.
        f"    match: {{rules: [overdue_30_days], segment: {{region: {region}}}}}\n"
        f"    channels: [{', '.join(channels)}]\n"
    )


# --- the tests ------------------------------------------------------------------------------------


def test_each_warning_reaches_the_webhook_once_across_a_kill9(
    scenario: Scenario, receiver: Receiver
) -> None:
    customers = [scenario.customer(i) for i in range(8)]
    scenario.onboard(customers)
    receiver.hold_path, receiver.hold_at = "/hook", 4
    notifier = scenario.notifier(
        _webhook_routes(scenario.region, {"collections": receiver.url("/hook")}),
        "--concurrency",
        "1",
    )
    # The first start creates the group (at the end of the stream) and stops on SIGTERM.
    notifier.start()
    assert notifier.stop() == 0
    assert "notifier stopped" in notifier.log()

    for c in customers:
        scenario.make_overdue(c)
    scenario.env.flush()
    wait_for(
        lambda: len(scenario.warnings_in_stream(customers, OVERDUE)) == 8,
        timeout=180,
        what="8 warnings",
    )
    in_stream = len(scenario.warnings_in_stream(customers))

    # All eight are read in one batch; three are sent, the fourth is held, then kill -9.
    notifier.start()
    wait_for(lambda: len(receiver.on("/hook")) == 4, timeout=120, what="4 webhook requests")
    notifier.kill9()
    receiver.release()
    assert scenario.pending() == in_stream  # nothing of the batch was acknowledged

    notifier.start()
    wait_for(lambda: scenario.pending() == 0, what="every warning acknowledged")
    assert notifier.stop() == 0

    requests = receiver.on("/hook")
    assert all(r.signed() for r in requests)
    answered = Counter(r.key for r in requests if r.status == 200)
    expected = {
        f"{f['warning_id']}:firing:high:collections"
        for f in scenario.warnings_in_stream(customers, OVERDUE)
    }
    assert set(answered) == expected
    assert set(answered.values()) == {1}, answered
    # Only the request in flight at the kill was sent twice (same key; it got no answer).
    held = [r for r in requests if r.status == 503]
    assert len(held) == 1 and len(requests) == 9
    assert Counter(r.key for r in requests)[held[0].key] == 2
    bodies = [r.json() for r in requests if r.status == 200]
    assert {b["warning"]["customer_id"] for b in bodies} == set(customers)
    assert {b["kind"] for b in bodies} == {"firing"}
    assert all(b["segment"]["region"] == scenario.region for b in bodies)
    # After the restart the three sent before the kill were recognised, not sent again.
    last_run = notifier.log().split("===== start 3 =====")[1]
    assert "duplicate 3" in last_run and "sent_firing 5" in last_run


def test_a_failing_webhook_is_retried_then_dead_lettered(
    scenario: Scenario, receiver: Receiver
) -> None:
    receiver.fail.add("/broken")
    customer = scenario.customer(0)
    scenario.onboard([customer])
    retry = "    retry: {attempts: 3, base_seconds: 0.05, max_seconds: 0.1}\n"
    notifier = scenario.notifier(
        _webhook_routes(
            scenario.region,
            {"broken": receiver.url("/broken"), "working": receiver.url("/ok")},
            retry,
        )
    )
    notifier.start()
    scenario.make_overdue(customer)
    scenario.env.flush()

    letters = scenario.env.consume(
        "notification-dead-letters",
        lambda rs: any(r["value"]["warning"]["customer_id"] == customer for r in rs),
        timeout=120,
    )
    wait_for(lambda: scenario.pending() == 0 and receiver.on("/ok"), what="acknowledged")
    mine = [r for r in letters if r["value"]["warning"]["customer_id"] == customer]
    assert len(mine) == 1
    letter = mine[0]["value"]
    assert letter["channel"] == "broken"
    assert letter["channel_type"] == "webhook"
    assert letter["attempts"] == 3
    assert "HTTP 500" in letter["last_error"]
    assert letter["warning"]["rule"] == "overdue_30_days"
    assert mine[0]["key"] == customer.encode()
    broken = receiver.on("/broken")
    assert len(broken) == 3
    assert {r.key for r in broken} == {letter["idempotency_key"]}
    assert len(receiver.on("/ok")) == 1  # the other channel is unaffected


def test_escalation_repeat_and_rate_limit(scenario: Scenario, receiver: Receiver) -> None:
    customer = scenario.customer(0)
    scenario.onboard([customer])
    routes = _webhook_routes(
        scenario.region, {"hook": receiver.url("/hook"), "limited": receiver.url("/limited")}
    ).replace(
        f"  limited:\n    type: webhook\n    url: {receiver.url('/limited')}\n",
        f"  limited:\n    type: webhook\n    url: {receiver.url('/limited')}\n"
        "    rate_limit: {max: 1, window_seconds: 3600}\n",
    )
    notifier = scenario.notifier(routes)
    notifier.start()
    scenario.make_overdue(customer)
    scenario.env.flush()
    wait_for(lambda: len(receiver.on("/limited")) == 1, timeout=120, what="the first notification")

    # The warning again at a higher level under the same id, as the sink appends an
    # escalation, then the original once more (a repeat the sink let through).
    [fields] = scenario.warnings_in_stream([customer], OVERDUE)
    original = json.loads(fields["warning"])
    for warning in (dict(original, level="critical"), original):
        scenario.env.redis.xadd(
            scenario.stream,
            {
                "warning": json.dumps(warning),
                "warning_id": warning["warning_id"],
                "customer_id": customer,
                "level": warning["level"],
                "status": warning["status"],
            },
        )
    wait_for(lambda: len(receiver.on("/hook")) == 2, what="the escalation")
    wait_for(lambda: scenario.pending() == 0, what="every entry acknowledged")
    assert notifier.stop() == 0

    hook = [r.json() for r in receiver.on("/hook")]
    assert [(b["kind"], b["warning"]["level"]) for b in hook] == [
        ("firing", "high"),
        ("escalated", "critical"),
    ]
    assert hook[1]["title"].startswith("Escalated to CRITICAL")
    # The rate-limited channel heard of the first only; the escalation was counted.
    assert [r.json()["kind"] for r in receiver.on("/limited")] == ["firing"]
    prefix = scenario.env.settings_env["STREAM_RISK_REDIS_PREFIX"]
    suppressed = scenario.env.redis.hgetall(f"{prefix}:notify:{scenario.group}:suppressed")
    assert suppressed == {"limited": "1"}
    log = notifier.log()
    assert "rate limit on limited: suppressed" in log
    assert "duplicate 2" in log  # the repeat, on both channels


class Inbox:
    """An aiosmtpd handler that keeps every message."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_mail_and_a_resolution_message(scenario: Scenario, receiver: Receiver) -> None:
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    smtp.start()
    try:
        customer = scenario.customer(0)
        scenario.onboard([customer], credit_limit=1000)
        routes = (
            "channels:\n"
            f"  hook:\n    type: webhook\n    url: {receiver.url('/hook')}\n"
            f"    allow_http: true\n    secret_env: {SECRET_ENV}\n"
            f"  mail:\n    type: smtp\n    host: 127.0.0.1\n    port: {smtp.port}\n"
            "    from: risk@example.com\n    to: [collections@example.com]\n"
            "routes:\n  - name: all-of-region\n"
            "    match:\n      rules: [high_credit_utilisation]\n"
            f"      segment: {{region: {scenario.region}}}\n"
            "    channels: [mail, hook]\n"
        )
        notifier = scenario.notifier(routes)
        notifier.start()
        env = scenario.env
        base = {"customer_id": customer, "currency": "EUR"}
        # 95 % of the limit: high_credit_utilisation fires; a payment brings it to 85 %.
        env.send(
            {
                **base,
                "type": "invoice",
                "event_id": f"{customer}-i",
                "occurred_at": "2026-01-03T00:00:00+00:00",
                "invoice_id": f"{customer}-inv",
                "amount": 950,
                "due_at": "2026-02-01T00:00:00+00:00",
            }
        )
        env.flush()
        wait_for(lambda: len(inbox.messages) == 1, timeout=120, what="the firing mail")
        env.send(
            {
                **base,
                "type": "payment",
                "event_id": f"{customer}-p",
                "occurred_at": "2026-01-10T00:00:00+00:00",
                "payment_id": f"{customer}-pay",
                "amount": 100,
                "status": "settled",
            }
        )
        env.flush()
        wait_for(lambda: len(inbox.messages) == 2, timeout=120, what="the resolution mail")
        wait_for(lambda: len(receiver.on("/hook")) == 2, what="two webhook calls")
    finally:
        smtp.stop()

    fired, resolved = inbox.messages
    # (A long subject is folded; the parser keeps the folding space.)
    subjects = [str(m["Subject"]).strip() for m in inbox.messages]
    assert subjects == [
        f"[stream-risk] MEDIUM warning: {customer}, high_credit_utilisation",
        f"[stream-risk] Resolved: {customer}, high_credit_utilisation",
    ]
    assert fired["To"] == "collections@example.com"
    assert fired["References"] == resolved["References"]  # one thread per warning
    # The reasons, in words, and what to do.
    assert "Why: " in fired.get_content() and "0.95" in fired.get_content()
    assert "Recommended: contact customer" in fired.get_content()
    assert "Was: " in resolved.get_content()
    kinds = [r.json()["kind"] for r in receiver.on("/hook")]
    assert kinds == ["firing", "resolved"]
    assert all(r.signed() for r in receiver.on("/hook"))


def _stream_warning(scenario: Scenario, customer: str) -> dict[str, Any]:
    return {
        "warning_id": f"{customer}-overdue",
        "customer_id": customer,
        "rule": OVERDUE,
        "level": "high",
        "status": "firing",
        "occurred_at": "2026-02-01T00:00:00+00:00",
        "risk_score": 0.4,
        "tier": "medium",
        "reasons": [{"text": "oldest open item is 35 days past due (threshold 30)"}],
        "actions": [{"kind": "contact_customer"}],
        "segment": {"industry": "retail", "size": "sme", "region": scenario.region},
    }


def test_a_kill_between_the_receivers_200_and_the_ledger_write_resends_with_the_same_key(
    scenario: Scenario, receiver: Receiver
) -> None:
    """What the README promises: at least once, a repeat carries the same idempotency key."""
    redis_url = urlsplit(scenario.env.settings_env["STREAM_RISK_REDIS_URL"])
    gate = RedisGate(redis_url.hostname or "127.0.0.1", redis_url.port or 6379)
    gate.start()
    try:
        notifier = scenario.notifier(
            _webhook_routes(scenario.region, {"collections": receiver.url("/hook")}),
            "--concurrency",
            "1",
        )
        # The notifier talks to Redis through the gate; the test reads Redis directly.
        notifier.env["STREAM_RISK_REDIS_URL"] = f"redis://127.0.0.1:{gate.port}{redis_url.path}"
        notifier.start()  # creates the group at the end of the stream
        assert notifier.stop() == 0

        warnings = [_stream_warning(scenario, scenario.customer(i)) for i in range(3)]
        for w in warnings:
            scenario.env.redis.xadd(
                scenario.stream,
                {"warning": json.dumps(w), **{k: w[k] for k in ("warning_id", "customer_id")}}
                | {"level": w["level"], "status": w["status"]},
            )
        # The first request is answered 200, and from then on Redis hears nothing more.
        receiver.before_first_200["/hook"] = gate.hold
        notifier.start()
        wait_for(
            lambda: any(b"sent" in chunk for chunk in gate.held),
            timeout=120,
            what="the ledger write after the receiver's 200",
        )
        notifier.kill9()
        gate.cut_and_open()  # the write the killed notifier had begun never lands
        (first,) = receiver.on("/hook")
        assert first.status == 200
        prefix = scenario.env.settings_env["STREAM_RISK_REDIS_PREFIX"]
        done_key = f"{prefix}:notify:{scenario.group}:done:{first.key}"
        left = scenario.env.redis.get(done_key)
        assert left is not None and left.startswith("sending|c1|")  # a reservation, no record

        notifier.start()
        wait_for(lambda: scenario.pending() == 0, what="every warning acknowledged")
        assert notifier.stop() == 0
    finally:
        gate.stop()

    requests = receiver.on("/hook")
    assert all(r.status == 200 and r.signed() for r in requests)
    keys = Counter(r.key for r in requests)
    assert set(keys) == {f"{w['warning_id']}:firing:high:collections" for w in warnings}
    # Only the notification in the window was sent twice, both times with its own key.
    assert keys[first.key] == 2 and len(requests) == len(warnings) + 1
    assert [r.json()["idempotency_key"] for r in requests if r.key == first.key] == [first.key] * 2
    assert scenario.env.redis.get(done_key) == "sent"
    assert "taking over the reservation" in notifier.log()


def test_ledger_reservations_in_redis(services: None) -> None:
    """The reservation scripts against a real Redis: the rules the notifier relies on."""
    import redis.asyncio as aioredis

    from stream_risk.notify.ledger import Ledger

    from .conftest import REDIS_URL

    async def scenario() -> None:
        client = aioredis.from_url(REDIS_URL, decode_responses=True)
        ledger = Ledger(client, f"ledger-test-{time.time_ns()}", "g", 3600, 60)
        try:
            assert await ledger.reserve("k", "c1", "t1", 30) == ("reserved", None)
            assert await ledger.reserve("k", "c1", "t1", 30) == ("reserved", None)  # ours
            assert await ledger.reserve("k", "c2", "t9", 30) == ("busy", "sending|c1|t1")
            # A new process of c1 (another token): the holder is dead, taken over.
            assert await ledger.reserve("k", "c1", "t2", 30) == ("taken-over", "sending|c1|t1")
            assert not await ledger.extend("k", "c1", "t1", 30)  # no longer t1's
            assert await ledger.extend("k", "c1", "t2", 30)
            await ledger.release("k", "c2", "t9")  # not c2's: stays
            assert await client.get(ledger.done_key("k")) == "sending|c1|t2"
            await ledger.record_sent("k", "w", "cust", "hook", "firing", "high", 1.0)
            assert await ledger.reserve("k", "c2", "t9", 30) == ("done", "sent")
            assert 3500 < await client.ttl(ledger.done_key("k")) <= 3600
            assert (await ledger.lookup("k", "w", "cust", "hook", None, 1.0)).done
            # A lease runs out: anyone may reserve again.
            assert await ledger.reserve("short", "c1", "t1", 0.2) == ("reserved", None)
            assert not (await ledger.lookup("short", "w", "cust", "hook", None, 1.0)).done
            await asyncio.sleep(0.4)
            assert await ledger.reserve("short", "c2", "t9", 30) == ("reserved", None)
            await ledger.release("short", "c2", "t9")
            assert await client.get(ledger.done_key("short")) is None
        finally:
            await client.delete(*[k async for k in client.scan_iter(f"{ledger.base}:*")] or ["x"])
            await client.aclose()

    asyncio.run(scenario())
