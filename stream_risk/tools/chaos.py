"""``stream-risk chaos``: faults against real workers, graded against ``replay``.

Starts worker processes (``stream-risk worker``) on fresh topics of the
configured Kafka and Redis, produces a simulated portfolio in phases, and
injects one fault per phase:

* ``kill -9``: a random worker is killed at a random moment and restarted
  (3 in the fast mode, 24 in ``--long``);
* ``broker stop``: Kafka is stopped for a while and started again
  (``docker/services.sh stop kafka`` / ``start kafka`` on the configured port);
* ``redis outage``: Redis is stopped and started again (its append-only file
  keeps the stream and the de-duplication keys);
* ``poison``: the messages that once stopped workers (integers beyond 64 bits,
  250 kB of control characters, a 1 MB industry, an event stamped 2099, ...)
  and messages generated from the contract with hypothesis, among valid ones.

After each phase the checker waits until the workers caught up with the input
so far, recomputes the truth with the core in process (``replay`` of the same
events) and prints, cumulatively up to that phase:

* ``lost`` / ``twice``: orders and payments missing from, or counted more than
  once in, the customers' 90-day counts (the portfolio spans less than 90 days);
* ``off``: customers whose open balance or 90-day order and payment counts and
  amounts differ from replay's;
* ``warn`` / ``missing``: warnings replay raises (those compared), and those
  that never reached the warnings topic
  (warnings of the score rules are left out: each worker's segment behaviour
  detector sees only its own customers, so scores may differ from replay's);
* ``dup topic`` / ``dup redis``: repeats of one (warning, status, level) on
  the warnings topic and in the Redis stream, beyond replay's own;
* ``notified`` / ``2x``: notifications a webhook receiver got from the
  run's notifier (``stream-risk notify run``, every warning routed to it; it is
  killed with -9 once in each kill phase too), counted by idempotency key, and
  the requests beyond the first per key (delivery is at least once: a notifier
  killed between the receiver's answer and its ``sent`` record sends again);
* ``poison``: poison messages neither dead-lettered nor applied;
* ``alive``: every worker process up (none exited on its own);
* ``log lines``: lines the workers logged during the phase.

Exit status 0 when nothing was lost, counted twice, missing, repeated in Redis
or left unaccounted, and every worker stayed alive; 1 otherwise (notifications
sent twice are reported, not graded). The topics and Redis keys of the run are
removed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

#: Features that must equal replay's whichever worker applied the events: sums over
#: every event of a portfolio shorter than 90 days, whatever a partition's clock.
CHECKED_FEATURES = (
    "open_balance",
    "order_count_90d",
    "order_amount_90d",
    "payment_count_90d",
    "payment_amount_90d",
)
#: Rule groups whose warnings depend on the risk score (not compared, see above).
SCORE_GROUPS = frozenset({"scores"})


@dataclass(frozen=True)
class Mode:
    """Size of a run: the portfolio, the workers and the faults."""

    customers: int
    days: int
    workers: int
    partitions: int
    kills: int
    kill_phases: int
    broker_down: float
    redis_down: float
    generated_poison: int
    catch_up: float


FAST = Mode(
    customers=30,
    days=80,
    workers=2,
    partitions=4,
    kills=3,
    kill_phases=1,
    broker_down=10.0,
    redis_down=10.0,
    generated_poison=40,
    catch_up=180.0,
)
LONG = Mode(
    customers=120,
    days=85,
    workers=3,
    partitions=6,
    kills=24,
    kill_phases=4,
    broker_down=30.0,
    redis_down=60.0,
    generated_poison=200,
    catch_up=300.0,
)


@dataclass
class Figures:
    """What the checker found after one phase (cumulative over the run so far)."""

    fault: str
    events: int
    warnings: int = 0
    lost: int = 0
    twice: int = 0
    off: int = 0
    missing: int = 0
    dup_topic: int = 0
    dup_redis: int = 0
    poison_sent: int = 0
    poison_unaccounted: int = 0
    dead_letters: int = 0
    alive: bool = True
    exits: int = 0
    log_lines: int = 0
    caught_up: bool = True
    seconds: float = 0.0
    #: Notifications the webhook receiver got (distinct idempotency keys), and the
    #: requests beyond the first per key.
    notified: int = 0
    notified_twice: int = 0
    #: The notifier had acknowledged every warning of the stream when counted.
    notifier_drained: bool = True
    #: Dead letters of valid events, by reason (there should be none).
    valid_dead: Counter[str] = field(default_factory=Counter)

    def clean(self) -> bool:
        """Nothing lost, doubled, missing, repeated in Redis or unaccounted; all alive."""
        return (
            self.lost == self.twice == self.off == self.missing == self.dup_redis == 0
            and not self.valid_dead
            and self.poison_unaccounted == 0
            and self.alive
            and self.caught_up
        )


# ------------------------------------------------------------------ the poison corpus


@dataclass(frozen=True)
class Poison:
    """A message that must end as a dead letter (or, if valid after all, applied)."""

    topic: str
    key: bytes
    value: bytes
    customer_id: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.value).hexdigest()


def _event(type_: str, cid: str, at: str, **fields: Any) -> dict[str, Any]:
    head = {"type": type_, "event_id": f"{cid}-{type_}", "customer_id": cid, "occurred_at": at}
    return head | fields


def known_poison(at: str, victim: str) -> list[Poison]:
    """The cases that stopped workers, each for its own customer but the 2099 one.

    >>> [p.topic for p in known_poison("2026-01-01T00:00:00+00:00", "c1")][:3]
    ['customer', 'statement', 'customer']
    """
    customer = {"credit_limit": 1000.0, "currency": "EUR", "payment_terms_days": 30}
    cases: list[tuple[str, str, dict[str, Any] | bytes]] = [
        (
            "customer",
            "poison-terms",
            _event("customer", "poison-terms", at, **customer) | {"payment_terms_days": 10**30},
        ),
        (
            "statement",
            "poison-dpd",
            _event(
                "statement",
                "poison-dpd",
                at,
                statement_id="s",
                balance=1.0,
                currency="EUR",
                days_past_due=10**30,
                status="revolving",
            ),
        ),
        (
            "customer",
            "poison-fin",
            _event("customer", "poison-fin", at, **customer) | {"financials": {"x": {"y": 10**30}}},
        ),
        (
            "order",
            "poison-ctrl",
            b'{"type": "order", "event_id": "poison-ctrl", '
            b'"customer_id": "poison-ctrl", "note": "' + b"\x01" * 250_000 + b'"}',
        ),
        (
            "customer",
            "poison-industry",
            _event("customer", "poison-industry", at, **customer)
            | {"segment": {"industry": "x" * 1_000_000}},
        ),
        (
            "order",
            victim,
            _event(
                "order",
                victim,
                "2099-01-01T00:00:00+00:00",
                order_id="o2099",
                amount=1.0,
                currency="EUR",
                status="placed",
            )
            | {"event_id": f"{victim}-2099"},
        ),
        (
            "order",
            "poison-nul",
            _event(
                "order",
                "poison-nul\x00\u202e",
                at,
                order_id="o",
                amount=1.0,
                currency="EUR",
                status="placed",
            ),
        ),
        ("payment", "poison-json", b'{"type": "payment", "customer_id": "poison-json", '),
        (
            "invoice",
            "poison-nan",
            b'{"type": "invoice", "event_id": "poison-nan", '
            b'"customer_id": "poison-nan", "occurred_at": "' + at.encode() + b'", '
            b'"invoice_id": "i", "amount": NaN, "currency": "EUR", "due_at": "'
            + at.encode()
            + b'"}',
        ),
        (
            "order",
            "poison-deep",
            _event(
                "order",
                "poison-deep",
                at,
                order_id="o",
                amount=1.0,
                currency="EUR",
                status="placed",
            )
            | {"note": _nested(200)},
        ),
    ]
    out = []
    for topic, cid, body in cases:
        value = body if isinstance(body, bytes) else json.dumps(body).encode()
        out.append(Poison(topic, cid.encode(), value, cid))
    return out


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"n": value}
    return value


def generated_poison(count: int, at: str, seed: int) -> list[Poison]:
    """``count`` hostile variants of valid events, drawn by hypothesis from the contract.

    Each takes a valid event of one type and replaces one field with a value
    from outside the contract's bounds (integers beyond 64 bits, huge or
    negative amounts, long or control-character strings, deep nesting, wrong
    types, dates far ahead or malformed); every message has its own customer.
    """
    try:
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st
    except ImportError:
        print("chaos: hypothesis is not installed: no generated poison", file=sys.stderr)
        return []
    bases: dict[str, dict[str, Any]] = {
        "order": {"order_id": "o", "amount": 10.0, "currency": "EUR", "status": "placed"},
        "invoice": {"invoice_id": "i", "amount": 10.0, "currency": "EUR", "due_at": at},
        "payment": {"payment_id": "p", "amount": 10.0, "currency": "EUR"},
        "customer": {"credit_limit": 1000.0, "currency": "EUR", "payment_terms_days": 30},
        "statement": {
            "statement_id": "s",
            "balance": 1.0,
            "currency": "EUR",
            "days_past_due": 0,
            "status": "revolving",
        },
    }
    hostile = st.one_of(
        st.integers(min_value=2**63),
        st.integers(max_value=-(2**63) - 1),
        st.floats(min_value=1e300, allow_infinity=False),
        st.floats(max_value=-1e6, min_value=-1e300),
        st.text(min_size=5000, max_size=20000),
        st.text(alphabet=st.characters(max_codepoint=31), min_size=1, max_size=200),
        st.recursive(
            st.integers(),
            lambda c: st.dictionaries(st.text(max_size=3), c, min_size=1, max_size=2),
            max_leaves=400,
        ),
        st.lists(st.integers(), min_size=1000, max_size=3000),
        st.sampled_from(["2099-01-01T00:00:00+00:00", "yesterday", "", "9999-12-31T23:59:59Z"]),
        st.none(),
        st.booleans(),
    )
    drawn: list[tuple[str, str, Any]] = []

    @settings(
        max_examples=count,
        database=None,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        st.sampled_from(sorted(bases)),
        st.sampled_from(
            [
                "amount",
                "currency",
                "occurred_at",
                "event_id",
                "credit_limit",
                "payment_terms_days",
                "days_past_due",
                "balance",
                "due_at",
                "status",
                "segment",
                "financials",
            ]
        ),
        hostile,
    )
    def draw(type_: str, name: str, value: Any) -> None:
        drawn.append((type_, name, value))

    draw()
    rng = random.Random(seed)
    out: list[Poison] = []
    for n, (type_, name, value) in enumerate(drawn[:count]):
        cid = f"poison-gen-{n}"
        body = _event(type_, cid, at, **bases[type_]) | {"event_id": f"{cid}-{rng.random()}"}
        body[name] = value
        raw = json.dumps(body, default=str).encode()
        out.append(Poison(type_, cid.encode(), raw, cid))
    return out


# ------------------------------------------------------------------ the deployment


@dataclass
class Services:
    """Stops and starts the configured broker and Redis with ``docker/services.sh``."""

    script: Path
    bootstrap: str
    redis_url: str

    def _env(self) -> dict[str, str]:
        kafka_port = int(self.bootstrap.split(",")[0].rpartition(":")[2])
        redis_port = urlparse(self.redis_url).port or 6379
        return dict(
            os.environ,
            KAFKA_PORT=str(kafka_port),
            KAFKA_CONTROLLER_PORT=os.environ.get("KAFKA_CONTROLLER_PORT", str(kafka_port + 1)),
            REDIS_PORT=str(redis_port),
        )

    def run(self, verb: str, what: str) -> None:
        """``services.sh verb what``; a stop must really close the port."""
        env = self._env()
        subprocess.run(
            ["bash", str(self.script), verb, what],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        port = int(env["KAFKA_PORT"] if what == "kafka" else env["REDIS_PORT"])
        if verb == "stop" and _listening(port):
            raise RuntimeError(
                f"{what} on port {port} is still up after 'services.sh stop {what}': only "
                "services the script started can be stopped (start them with it)"
            )


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


@dataclass
class Workers:
    """The worker processes of one run; each logs to its own file."""

    env: dict[str, str]
    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    exits: int = 0

    def start(self, n: int) -> None:
        from stream_risk.worker_process import start_worker

        # One log file per start (start_worker truncates its file).
        starts = len(list(self.logs.glob(f"worker-{n}.*.log")))
        proc = start_worker(self.env, self.logs / f"worker-{n}.{starts}.log", timeout=300.0)
        if n < len(self.procs):
            self.procs[n] = proc
        else:
            self.procs.append(proc)

    def kill9(self, n: int) -> None:
        proc = self.procs[n]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def check(self) -> bool:
        """True when all are up; a worker that exited on its own is counted and restarted."""
        alive = True
        for n, proc in enumerate(self.procs):
            if proc.poll() is not None:
                alive = False
                self.exits += 1
                print(f"chaos: worker {n} exited with {proc.returncode}; restarting", flush=True)
                self.start(n)
        return alive

    def log_lines(self) -> int:
        return sum(
            len(p.read_bytes().splitlines()) for p in self.logs.glob("worker-*.log") if p.is_file()
        )

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


# ------------------------------------------------------------------ the notifier

#: The variable holding the run's webhook signing secret (the notifier requires one).
NOTIFY_SECRET_ENV = "STREAM_RISK_CHAOS_WEBHOOK_SECRET"
#: The notifier's consumer group on the warnings stream.
NOTIFY_GROUP = "chaos-notifier"


class WebhookReceiver:
    """A webhook endpoint on loopback: answers 200 and counts each idempotency key."""

    def __init__(self) -> None:
        self.keys: Counter[str] = Counter()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get("Idempotency-Key") or "(none)"
                with receiver._lock:
                    receiver.keys[key] += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # one line per request would drown the figures

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> None:
        self._thread.start()

    def counts(self) -> Counter[str]:
        """Requests received so far, by idempotency key."""
        with self._lock:
            return Counter(self.keys)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def notify_routes(url: str) -> str:
    """A routing file that sends every warning (all levels and statuses) to ``url``.

    >>> "min_level: low" in notify_routes("http://127.0.0.1:1/hook")
    True
    """
    return (
        "version: 1\n"
        "defaults:\n"
        "  retry: {attempts: 8, base_seconds: 0.5, max_seconds: 4}\n"
        "  rate_limit: null\n"
        "channels:\n"
        "  collections:\n"
        "    type: webhook\n"
        f"    url: {url}\n"
        "    allow_http: true\n"
        f"    secret_env: {NOTIFY_SECRET_ENV}\n"
        "    timeout_seconds: 10\n"
        "routes:\n"
        "  - name: everything\n"
        "    match: {min_level: low}\n"
        "    channels: [collections]\n"
    )


@dataclass
class Notifier:
    """The run's ``stream-risk notify run`` process (one stable consumer name)."""

    env: dict[str, str]
    routes: Path
    logs: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    exits: int = 0

    def start(self, timeout: float = 120.0) -> None:
        self.starts += 1
        log_path = self.logs / f"notifier.{self.starts}.log"
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "stream_risk.cli",
                    "notify",
                    "run",
                    "--routes",
                    str(self.routes),
                    "--group",
                    NOTIFY_GROUP,
                    "--consumer",
                    "chaos",
                    "--from-start",
                    "--block-ms",
                    "200",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while "notifier ready" not in log_path.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "chaos: the notifier did not start:\n"
                    + log_path.read_text(errors="replace")[-3000:]
                )
            time.sleep(0.1)

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def check(self) -> bool:
        """True when it is up; one that exited on its own is counted and restarted."""
        if self.proc is None or self.proc.poll() is None:
            return True
        self.exits += 1
        print(f"chaos: the notifier exited with {self.proc.returncode}; restarting", flush=True)
        self.start()
        return False

    def stop(self) -> None:
        from stream_risk.worker_process import stop_process

        stop_process(self.proc)


def notifier_drained(client: Any, stream: str, group: str) -> bool:
    """Whether ``group`` has read and acknowledged every entry of ``stream``."""
    import redis

    try:
        last = client.xinfo_stream(stream)["last-generated-id"]
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:  # no stream yet: nothing to notify
        return True
    for g in groups:
        if g["name"] == group:
            return bool(g["pending"] == 0 and g["last-delivered-id"] == last)
    return False


# ------------------------------------------------------------------ the checker


def _replay_truth(
    events: Sequence[dict[str, Any]], workdir: Path
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Warnings and final profiles of ``events`` from the core, in process."""
    import io

    import orjson

    from stream_risk.config import load_settings
    from stream_risk.core import Context
    from stream_risk.replay import replay
    from stream_risk.schemas.events import EVENT_TYPES

    paths = []
    for type_ in EVENT_TYPES:
        path = workdir / f"truth-{type_}.jsonl"
        path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events if e["type"] == type_))
        paths.append(path)
    warnings_out, profiles_out = io.BytesIO(), io.BytesIO()
    settings = load_settings()
    replay(
        paths,
        warnings_out,
        profiles_out,
        Context.from_settings(settings),
        lambda bad: None,
        progress=False,
        max_ahead=settings.replay_max_ahead_days * 86_400.0,
    )
    warnings = [orjson.loads(line) for line in warnings_out.getvalue().splitlines()]
    profiles = {
        p["customer_id"]: p for p in map(orjson.loads, profiles_out.getvalue().splitlines())
    }
    return warnings, profiles


def _read_topic(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes]]:
    """Every record of ``topic`` up to its end now, as (key, value)."""
    from stream_risk.kafka_admin import read_topic

    return [(m.key, m.value) for m in read_topic(bootstrap, topic)]


def _latest_profiles(bootstrap: str, topic: str) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for _, value in _read_topic(bootstrap, topic):
        profile = json.loads(value)
        latest[profile["customer_id"]] = profile
    return latest


def _transition(w: dict[str, Any]) -> tuple[str, str, str]:
    return (str(w["warning_id"]), str(w["status"]), str(w.get("level")))


def _repeats(got: Iterable[tuple[str, str, str]], truth: Counter[tuple[str, str, str]]) -> int:
    counted = Counter(got)
    return sum(max(0, n - max(truth.get(k, 0), 1)) for k, n in counted.items())


@dataclass
class Checker:
    """Compares what the workers published with replay of the same input."""

    bootstrap: str
    redis_url: str
    prefix: str
    workdir: Path
    #: The notifier's webhook endpoint (None: no notifier in the run).
    receiver: WebhookReceiver | None = None

    def topic(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def wait_notified(self, timeout: float) -> bool:
        """Wait until the notifier acknowledged every warning in Redis (False: it did not)."""
        import redis

        client = redis.Redis.from_url(self.redis_url, decode_responses=True)
        deadline = time.monotonic() + timeout
        try:
            while not notifier_drained(client, f"{self.prefix}:risk:warnings", NOTIFY_GROUP):
                if time.monotonic() > deadline:
                    return False
                time.sleep(1.0)
            return True
        finally:
            client.close()

    def wait_caught_up(self, truth: dict[str, dict[str, Any]], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            latest = _latest_profiles(self.bootstrap, self.topic("profiles"))
            if all(
                latest.get(cid, {}).get("updated_at") == p["updated_at"] for cid, p in truth.items()
            ):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(2.0)

    def grade(
        self,
        figures: Figures,
        events: Sequence[dict[str, Any]],
        poison: Sequence[Poison],
        timeout: float,
    ) -> None:
        import redis

        warnings, truth = _replay_truth(events, self.workdir)
        figures.caught_up = self.wait_caught_up(truth, timeout)
        latest = _latest_profiles(self.bootstrap, self.topic("profiles"))
        for cid, want in truth.items():
            got = latest.get(cid, {}).get("features", {})
            wf = want["features"]
            count_want = int(wf.get("order_count_90d", 0)) + int(wf.get("payment_count_90d", 0))
            count_got = int(got.get("order_count_90d", 0)) + int(got.get("payment_count_90d", 0))
            figures.lost += max(0, count_want - count_got)
            figures.twice += max(0, count_got - count_want)
            if any(got.get(name) != wf.get(name) for name in CHECKED_FEATURES):
                figures.off += 1
        on_topic = [json.loads(v) for _, v in _read_topic(self.bootstrap, self.topic("warnings"))]
        compared = [w for w in warnings if w.get("group") not in SCORE_GROUPS]
        truth_transitions = Counter(map(_transition, warnings))
        seen = {_transition(w) for w in on_topic}
        figures.warnings = len(compared)
        figures.missing = sum(1 for w in compared if _transition(w) not in seen)
        figures.dup_topic = _repeats(map(_transition, on_topic), truth_transitions)
        client = redis.Redis.from_url(self.redis_url, decode_responses=True)
        try:
            entries: list[tuple[str, dict[str, str]]] = list(
                client.xrange(f"{self.prefix}:risk:warnings")  # type: ignore[arg-type]
            )
        finally:
            client.close()
        figures.dup_redis = _repeats(
            ((e["warning_id"], e["status"], e["level"]) for _, e in entries), truth_transitions
        )
        if self.receiver is not None:
            figures.notifier_drained = self.wait_notified(timeout)
            received = self.receiver.counts()
            figures.notified = len(received)
            figures.notified_twice = sum(n - 1 for n in received.values())
        dead = _read_topic(self.bootstrap, self.topic("dead-letters"))
        letters = [json.loads(v) for _, v in dead]
        figures.dead_letters = len(letters)
        lettered = {d.get("original_sha256") for d in letters}
        shas = {p.sha256 for p in poison}
        figures.valid_dead = Counter(
            str(d.get("reason", ""))[:80] for d in letters if d.get("original_sha256") not in shas
        )
        figures.poison_sent = len(poison)
        figures.poison_unaccounted = sum(
            1
            for p in poison
            if p.sha256 not in lettered and (p.customer_id not in latest or p.customer_id in truth)
        )


# ------------------------------------------------------------------ the run


#: A record to produce: topic, key, value, and the day of its event (None: poison,
#: sent with the records around it).
Record = tuple[str, bytes, bytes, "str | None"]


def _record(prefix: str, event: dict[str, Any]) -> Record:
    return (
        f"{prefix}.{event['type']}",
        event["customer_id"].encode(),
        json.dumps(event).encode(),
        str(event["occurred_at"])[:10],
    )


def _produce(producer: Any, records: Iterable[Record]) -> None:
    """Produce ``records`` day by day; each day is on the broker before the next is sent.

    The producer batches per partition, and batches of different topics reach the
    broker in any order: sent at once, a payment could land after its customer's
    invoice of a week later, and the worker would rightly find it late. Upstream
    systems publish as things happen, so a day's records are acknowledged before
    the next day's are sent (a day is well within the allowed lateness). A send the
    broker refused (one just restarted refuses some) is sent again: the checker's
    truth is the whole input, so the input must really be on the broker.
    """
    day: list[Record] = []
    current: str | None = None
    for record in records:
        if record[3] is not None and current is not None and record[3] != current:
            _confirmed(producer, day)
            day = []
        current = record[3] or current
        day.append(record)
    _confirmed(producer, day)


def _confirmed(producer: Any, records: list[Record], attempts: int = 20) -> None:
    pending = records
    for _ in range(attempts):
        sent = [(r, producer.send(r[0], key=r[1], value=r[2])) for r in pending]
        producer.flush(timeout=120)
        pending = [r for r, future in sent if future.failed()]
        if not pending:
            return
        time.sleep(1.0)
    raise RuntimeError(f"the broker refused {len(pending)} records {attempts} times")


def _send(producer: Any, prefix: str, events: Iterable[dict[str, Any]]) -> None:
    _produce(producer, (_record(prefix, event) for event in events))


def _send_paced(
    producer: Any, prefix: str, events: Sequence[dict[str, Any]], seconds: float
) -> threading.Thread:
    """Send ``events`` over about ``seconds`` from a thread (faults happen meanwhile)."""

    def go() -> None:
        step = max(1, len(events) // 20)
        for start in range(0, len(events), step):
            _send(producer, prefix, events[start : start + step])
            time.sleep(seconds / 20)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


def _phases(mode: Mode) -> list[str]:
    return [*(["kill -9"] * mode.kill_phases), "broker stop", "redis outage", "poison"]


def run_chaos(
    mode: Mode,
    seed: int,
    services_script: Path,
    workdir: Path,
    say: Callable[[str], None],
    keep: bool = False,
) -> list[Figures]:
    """Run every phase of ``mode``; the figures after each.

    The run's topics and Redis keys are removed after it unless ``keep`` (to trace
    a finding: the worker and notifier logs are in ``workdir``).
    """
    import redis
    from kafka import KafkaProducer

    from stream_risk.config import load_settings
    from stream_risk.kafka_admin import drop_run_topics, ensure_topics
    from stream_risk.tools.simulate import generate

    base = load_settings()
    prefix = f"chaos{uuid.uuid4().hex[:8]}"
    env = dict(
        os.environ,
        STREAM_RISK_KAFKA_BOOTSTRAP=base.kafka_bootstrap,
        STREAM_RISK_REDIS_URL=base.redis_url,
        STREAM_RISK_APP_ID=f"{prefix}-app",
        STREAM_RISK_TOPIC_PREFIX=prefix,
        STREAM_RISK_REDIS_PREFIX=f"{prefix}:risk",
        STREAM_RISK_PARTITIONS=str(mode.partitions),
        STREAM_RISK_DATA_DIR=str(workdir / "data"),
        STREAM_RISK_WEB_ENABLED="false",
    )
    settings = base.model_copy(
        update={"topic_prefix": prefix, "partitions": mode.partitions, "app_id": f"{prefix}-app"}
    )
    ensure_topics(settings)
    rng = random.Random(seed)
    events = [e for e in generate(customers=mode.customers, days=mode.days, seed=seed) if e]
    phases = _phases(mode)
    # Equal slices of the input in event-time order, one per phase.
    cuts = [len(events) * (i + 1) // len(phases) for i in range(len(phases))]
    services = Services(services_script, base.kafka_bootstrap, base.redis_url)
    workers = Workers(env, workdir)
    receiver = WebhookReceiver()
    receiver.start()
    routes = workdir / "notify-routes.yaml"
    routes.write_text(notify_routes(receiver.url))
    notifier = Notifier(dict(env, **{NOTIFY_SECRET_ENV: uuid.uuid4().hex}), routes, workdir)
    checker = Checker(base.kafka_bootstrap, base.redis_url, prefix, workdir, receiver)
    producer = KafkaProducer(
        bootstrap_servers=base.kafka_bootstrap,
        acks="all",
        linger_ms=5,
        retries=20,
        max_request_size=1_048_000,
    )
    all_figures: list[Figures] = []
    poison: list[Poison] = []
    try:
        for n in range(mode.workers):
            workers.start(n)
        notifier.start()
        say(f"chaos: {len(events)} events, {mode.workers} workers, prefix {prefix}")
        sent = 0
        kills_left = mode.kills
        for index, fault in enumerate(phases):
            started = time.monotonic()
            lines_before = workers.log_lines()
            chunk = events[sent : cuts[index]]
            exits_before = workers.exits + notifier.exits
            if fault == "kill -9":
                kills = kills_left // (mode.kill_phases - index) if mode.kill_phases > index else 0
                kills_left -= kills
                sender = _send_paced(producer, prefix, chunk, seconds=4.0 * kills)
                for n in range(kills):
                    time.sleep(rng.uniform(0.5, 4.0))
                    victim = rng.randrange(mode.workers)
                    workers.kill9(victim)
                    workers.start(victim)
                    if n == kills // 2:
                        # The notifier too, once a phase, while warnings flow.
                        notifier.kill9()
                        notifier.start()
                sender.join()
                fault = f"kill -9 x{kills}"
            elif fault == "broker stop":
                half = len(chunk) // 2
                _send(producer, prefix, chunk[:half])
                services.run("stop", "kafka")
                time.sleep(mode.broker_down)
                services.run("start", "kafka")
                _send(producer, prefix, chunk[half:])
                fault = f"broker stop {mode.broker_down:.0f}s"
            elif fault == "redis outage":
                services.run("stop", "redis")
                _send(producer, prefix, chunk)
                time.sleep(mode.redis_down)
                services.run("start", "redis")
                fault = f"redis outage {mode.redis_down:.0f}s"
            else:
                at = chunk[0]["occurred_at"]
                victim_id = chunk[0]["customer_id"]
                poison = known_poison(at, victim_id) + generated_poison(
                    mode.generated_poison, at, seed
                )
                # Poison at random places; the valid events keep their order.
                mixed: list[dict[str, Any] | Poison] = list(chunk)
                for bad in poison:
                    mixed.insert(rng.randrange(len(mixed) + 1), bad)
                _produce(
                    producer,
                    (
                        (f"{prefix}.{item.topic}", item.key, item.value, None)
                        if isinstance(item, Poison)
                        else _record(prefix, item)
                        for item in mixed
                    ),
                )
                fault = f"poison x{len(poison)}"
            sent = cuts[index]
            figures = Figures(fault=fault, events=sent)
            checker.grade(figures, events[:sent], poison, mode.catch_up)
            figures.alive = workers.check() & notifier.check()
            figures.exits = workers.exits + notifier.exits - exits_before
            figures.log_lines = workers.log_lines() - lines_before
            figures.seconds = time.monotonic() - started
            all_figures.append(figures)
            say(format_row(figures))
            for reason, count in figures.valid_dead.most_common(3):
                say(f"  {count} valid events dead-lettered: {reason}")
    finally:
        workers.stop()
        notifier.stop()
        receiver.stop()
        producer.close()
        if keep:
            say(f"chaos: kept the topics and Redis keys of prefix {prefix}, logs in {workdir}")
        else:
            client = redis.Redis.from_url(base.redis_url)
            try:
                for key in client.scan_iter(f"{prefix}:*"):
                    client.delete(key)
            except redis.RedisError as exc:
                say(f"chaos: could not remove the run's Redis keys: {exc}")
            drop_run_topics(base.kafka_bootstrap, prefix, say)
    return all_figures


HEADER = (
    f"{'fault':<22}{'events':>7}{'warn':>6}{'lost':>6}{'twice':>6}{'off':>5}{'missing':>8}"
    f"{'dup topic':>10}{'dup redis':>10}{'poison':>8}{'dead':>6}{'notified':>9}{'2x':>4}"
    f"{'alive':>6}{'log lines':>10}{'s':>6}"
)


def format_row(f: Figures) -> str:
    """One line of the figures table.

    >>> format_row(Figures("kill -9 x3", 100)).split()[3:]
    ['100', '0', '0', '0', '0', '0', '0', '0', '0/0', '0', '0', '0', 'yes', '0', '0']
    """
    alive = "yes" if f.alive else f"no({f.exits})"
    late = "" if f.caught_up else "  (not caught up)"
    undrained = "" if f.notifier_drained else "  (notifier behind)"
    return (
        f"{f.fault:<22}{f.events:>7}{f.warnings:>6}{f.lost:>6}{f.twice:>6}{f.off:>5}{f.missing:>8}"
        f"{f.dup_topic:>10}{f.dup_redis:>10}{f'{f.poison_unaccounted}/{f.poison_sent}':>8}"
        f"{f.dead_letters:>6}{f.notified:>9}{f.notified_twice:>4}"
        f"{alive:>6}{f.log_lines:>10}{f.seconds:>6.0f}{late}{undrained}"
    )


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--long", action="store_true", help="24 kills, 30 s broker stop, 60 s Redis")
    p.add_argument("--seed", type=int, default=7, help="portfolio, fault times and poison")
    p.add_argument(
        "--services",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "docker" / "services.sh",
        help="script that stops and starts Kafka and Redis (default: docker/services.sh)",
    )
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    p.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep the worker and notifier logs in DIR, and the run's topics and Redis keys",
    )


def run(args: argparse.Namespace) -> int:
    if not args.services.is_file():
        print(f"stream-risk chaos: no such script: {args.services}", file=sys.stderr)
        return 2
    mode = LONG if args.long else FAST
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="stream-risk-chaos-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        print(HEADER, flush=True)
        figures = run_chaos(
            mode,
            args.seed,
            args.services,
            workdir,
            lambda s: print(s, flush=True),
            keep=args.keep is not None,
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                # asdict would rebuild the Counter from its items: kept as a plain dict.
                [{**asdict(f), "valid_dead": dict(f.valid_dead)} for f in figures],
                indent=2,
            )
        )
    clean = all(f.clean() for f in figures)
    verdict = "clean" if clean else "FAULTS FOUND"
    print(f"chaos: {verdict} in {time.monotonic() - started:.0f}s ({mode.kills} kills)")
    return 0 if clean else 1
