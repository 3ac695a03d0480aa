"""``stream-risk bench-latency``: time from producing an event to its warning in Redis.

Expects Kafka and Redis to answer at the configured addresses (start them with
``docker/services.sh start``). On fresh topics it starts one worker, then
produces a stream of orders of ``--customers`` background customers and, as
``--trigger-share`` of the events, a delinquent statement (45 days past due)
for a new customer, which fires ``overdue_30_days`` on that very event. The
stream runs for ``--warmup`` seconds first, until those warnings have arrived
(start-up work is not steady state).

Without ``--rate``, the latency is measured at a share (``--load``, one half) of
the most the worker sustains of this very traffic: a burst of ``--probe-events``
is produced at once, and the rate is those events over the time until the last
of their warnings is readable. Then the stream runs steadily for ``--duration``
measured seconds. A reader follows the Redis warnings stream (``XREAD``) and
matches each warning to its triggering event by customer. The latency of a
warning is the time from handing its triggering event to the producer to the
warning being readable in the stream; p50, p90, p99 and max are printed, and
the same split at the warnings topic (the record's timestamp, set when the
worker sent it). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stream_risk.worker_process import WorkerDidNotStart, start_worker


def percentiles(values: Sequence[float], qs: Sequence[float]) -> list[float]:
    """Nearest-rank percentiles of ``values`` (``nan`` when there are none).

    >>> percentiles([5, 1, 4, 2, 3], [50, 90, 100])
    [3, 5, 5]
    >>> percentiles([], [50])
    [nan]
    """
    ordered = sorted(values)
    if not ordered:
        return [math.nan for _ in qs]
    return [ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] for q in qs]


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _customer_event(customer: str) -> dict[str, Any]:
    return {
        "type": "customer",
        "event_id": f"{customer}-c",
        "customer_id": customer,
        "occurred_at": _now_iso(),
        "credit_limit": 1_000_000,
        "currency": "EUR",
        "payment_terms_days": 30,
        "segment": {"industry": "wholesale", "size": "sme", "region": "DACH"},
    }


def _order(customer: str, n: str) -> dict[str, Any]:
    return {
        "type": "order",
        "event_id": f"{customer}-o{n}",
        "customer_id": customer,
        "occurred_at": _now_iso(),
        "order_id": f"{customer}-o{n}",
        "amount": 100.0,
        "currency": "EUR",
        "status": "placed",
    }


def _late_statement(customer: str) -> dict[str, Any]:
    return {
        "type": "statement",
        "event_id": f"{customer}-s",
        "customer_id": customer,
        "occurred_at": _now_iso(),
        "statement_id": f"{customer}-s",
        "balance": 500.0,
        "currency": "EUR",
        "days_past_due": 45,
        "status": "delinquent",
    }


class _StreamWatcher(threading.Thread):
    """Records when each customer's first firing warning becomes readable in the stream."""

    def __init__(self, redis_url: str, stream: str) -> None:
        super().__init__(daemon=True)
        import redis

        self._client = redis.Redis.from_url(redis_url, decode_responses=True)
        self.stream = stream
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        last = "0-0"
        while not self.stop.is_set():
            reply: Any = self._client.xread({self.stream: last}, count=1000, block=200)
            # Wall clock, as the producer's and the warnings topic's timestamps are.
            now = time.time()
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    if fields.get("status") == "firing":
                        self.seen.setdefault(fields["customer_id"], now)


def _say(text: str) -> None:
    print(f"bench-latency: {text}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    import redis
    from kafka import KafkaProducer

    from stream_risk.config import Settings
    from stream_risk.kafka_admin import KafkaUnavailable, drop_run_topics, ensure_topics

    problem = _bad_arguments(args)
    if problem:
        print(f"stream-risk bench-latency: {problem}", file=sys.stderr)
        return 2
    base = Settings()
    prefix = f"latency{uuid.uuid4().hex[:8]}"
    settings = Settings(
        topic_prefix=prefix,
        app_id=f"{prefix}-app",
        partitions=args.partitions,
        kafka_bootstrap=args.bootstrap or base.kafka_bootstrap,
        redis_url=base.redis_url,
        redis_prefix=f"{prefix}:risk",
    )
    try:
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3).ping()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        print(
            f"stream-risk bench-latency: Redis at {settings.redis_url} does not answer ({exc}); "
            "start it with 'docker/services.sh start' or set STREAM_RISK_REDIS_URL",
            file=sys.stderr,
        )
        return 1
    try:
        ensure_topics(settings)
    except KafkaUnavailable as exc:
        print(f"stream-risk bench-latency: {exc}", file=sys.stderr)
        return 1
    env = dict(
        os.environ,
        STREAM_RISK_TOPIC_PREFIX=prefix,
        STREAM_RISK_APP_ID=settings.app_id,
        STREAM_RISK_PARTITIONS=str(args.partitions),
        STREAM_RISK_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        STREAM_RISK_REDIS_URL=settings.redis_url,
        STREAM_RISK_REDIS_PREFIX=settings.redis_prefix,
        STREAM_RISK_REDIS_ENABLED="true",
        # Serves its API as in production, on any free port: 6066 may be taken.
        STREAM_RISK_WEB_PORT="0",
    )
    topics = settings.input_topics()
    rng = random.Random(5)
    background = [f"{prefix}-c{i}" for i in range(args.customers)]
    watcher = _StreamWatcher(settings.redis_url, f"{settings.redis_prefix}:warnings")
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks=1, linger_ms=2)

    def send(event: dict[str, Any]) -> None:
        producer.send(
            topics[event["type"]],
            key=event["customer_id"].encode(),
            value=json.dumps(event, separators=(",", ":")).encode(),
        )

    with tempfile.TemporaryDirectory() as tmp:
        env["STREAM_RISK_DATA_DIR"] = tmp
        _say(f"starting a worker on {prefix}.*")
        try:
            proc = start_worker(env, Path(tmp) / "worker.log")
        except WorkerDidNotStart as exc:
            _say(f"the worker did not start:\n{exc}")
            return 1
        every = max(1, round(1 / args.trigger_share)) if args.trigger_share > 0 else 0

        def drive(count: int, rate: float, tag: str) -> tuple[dict[str, float], float]:
            """``count`` events at ``rate`` (``inf``: at once): trigger customer -> produce
            time, and the seconds it took."""
            produced: dict[str, float] = {}
            started = time.perf_counter()
            for i in range(count):
                pause = started + i / rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                if every and i % every == 0:
                    customer = f"{prefix}-{tag}{i}"
                    produced[customer] = time.time()
                    send(_late_statement(customer))
                else:
                    send(_order(rng.choice(background), f"{tag}{i}"))
            producer.flush()
            return produced, time.perf_counter() - started

        def settle(produced: dict[str, float], seconds: float) -> bool:
            deadline = time.monotonic() + seconds
            while not set(produced) <= set(watcher.seen):
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
            return True

        try:
            for customer in background:
                send(_customer_event(customer))
            producer.flush()
            watcher.start()
            # Warm up with the same traffic until its warnings arrive: start-up work
            # (partition assignment, first batches, models) is not steady-state latency.
            warm_rate = args.rate or WARMUP_RATE
            warm, _ = drive(int(args.warmup * warm_rate), warm_rate, "warm")
            if not settle(warm, args.warmup_timeout):
                _say(
                    f"warm-up warnings did not all arrive in {args.warmup_timeout:g}s; "
                    "measuring anyway"
                )
            rate = args.rate
            maximum: float | None = None
            if rate is None:
                maximum = probe(drive, settle, watcher.seen, args.probe_events, args.warmup_timeout)
                if maximum is None:
                    _say("the burst's warnings did not all arrive; no rate to measure at")
                    return 1
                rate = args.load * maximum
                _say(
                    f"the worker sustained {maximum:.0f} events/s of this traffic (a burst "
                    f"of {args.probe_events}); measuring at {args.load:g} of that"
                )
            _say(
                f"{int(rate * args.duration)} events at {rate:.0f}/s for {args.duration:g}s, "
                f"every {every}th a warning trigger"
            )
            produced, elapsed = drive(int(rate * args.duration), rate, "late")
            settle(produced, args.settle)
            sent = _sent_times(settings, produced)
        finally:
            watcher.stop.set()
            producer.close(timeout=10)
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    watcher.join(timeout=5)
    total = int(rate * args.duration)
    # In production order: a latency that grows from the first to the last tenth means the
    # worker fell behind the rate (a backlog), not that one warning was slow.
    latencies = [(watcher.seen[c] - t) * 1000 for c, t in produced.items() if c in watcher.seen]
    p50, p90, p99, top = percentiles(latencies, [50, 90, 99, 100])
    tenth = max(1, len(latencies) // 10)
    [first_p50] = percentiles(latencies[:tenth], [50])
    [last_p50] = percentiles(latencies[-tenth:], [50])
    # Where the time went: up to the worker sending the warning, and from there to Redis.
    to_topic = [(sent[c] - produced[c]) * 1000 for c in sent]
    to_redis = [(watcher.seen[c] - sent[c]) * 1000 for c in sent if c in watcher.seen]
    stages = {
        stage: dict(zip(("p50", "p99"), percentiles(values, [50, 99]), strict=True))
        for stage, values in (
            ("to_warnings_topic", to_topic),
            ("warnings_topic_to_redis", to_redis),
        )
    }
    if not args.keep:
        client = redis.Redis.from_url(settings.redis_url)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        drop_run_topics(settings.kafka_bootstrap, prefix, _say)
    result = {
        "events": total,
        "rate_per_s": round(total / elapsed, 1),
        "max_rate_per_s": None if maximum is None else round(maximum, 1),
        "partitions": args.partitions,
        "warnings_expected": len(produced),
        "warnings_seen": len(latencies),
        "latency_ms": {
            "p50": round(p50, 1),
            "p90": round(p90, 1),
            "p99": round(p99, 1),
            "max": round(top, 1),
            "p50_first_tenth": round(first_p50, 1),
            "p50_last_tenth": round(last_p50, 1),
        },
        "stages_ms": {
            stage: {q: round(v, 1) for q, v in values.items()} for stage, values in stages.items()
        },
    }
    print(
        f"bench-latency: {total} events in {elapsed:.1f}s ({total / elapsed:.0f}/s), "
        f"{len(latencies)} of {len(produced)} warnings seen in the Redis stream"
    )
    print(
        f"latency produce -> Redis stream (ms): p50 {p50:.1f}  p90 {p90:.1f}  "
        f"p99 {p99:.1f}  max {top:.1f}"
    )
    for label, stage in (
        ("produce -> warnings topic", "to_warnings_topic"),
        ("warnings topic -> Redis stream", "warnings_topic_to_redis"),
    ):
        values = stages[stage]
        print(f"  {label} (ms): p50 {values['p50']:.1f}  p99 {values['p99']:.1f}")
    print(
        f"p50 of the first tenth {first_p50:.1f} ms, of the last tenth {last_p50:.1f} ms"
        + ("  (growing: the worker fell behind the rate)" if last_p50 > 2 * first_p50 + 100 else "")
    )
    print(json.dumps(result))
    return 0 if len(latencies) == len(produced) else 1


def _bad_arguments(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, in words (None: nothing).

    >>> import argparse
    >>> _bad_arguments(argparse.Namespace(rate=None, load=1.5, probe_events=6000,
    ...                                   trigger_share=0.1, duration=30))
    '--load must be above 0 and at most 1 (a share of the measured maximum)'
    >>> _bad_arguments(argparse.Namespace(rate=None, load=0.5, probe_events=6000,
    ...                                   trigger_share=0.0, duration=30))
    'measuring the maximum needs warning triggers: give --trigger-share above 0, or --rate'
    """
    if args.rate is not None and not args.rate > 0:
        return "--rate must be above 0"
    if not args.duration > 0:
        return "--duration must be above 0"
    if not 0 <= args.trigger_share <= 1:
        return "--trigger-share must be between 0 and 1"
    if args.rate is None:
        if not 0 < args.load <= 1:
            return "--load must be above 0 and at most 1 (a share of the measured maximum)"
        if args.probe_events < 100:
            return "--probe-events must be at least 100"
        if not args.trigger_share > 0:
            return (
                "measuring the maximum needs warning triggers: give --trigger-share above 0, "
                "or --rate"
            )
    return None


#: Events per second of the warm-up traffic (below what a 2-core machine sustains).
WARMUP_RATE = 200.0

Drive = Callable[[int, float, str], tuple[dict[str, float], float]]
Settle = Callable[[dict[str, float], float], bool]


def probe(
    drive: Drive, settle: Settle, seen: Mapping[str, float], events: int, timeout: float
) -> float | None:
    """The most events per second the worker sustains of the traffic: ``events`` produced
    at once, over the time until the last of their warnings is readable (``seen``: when
    each customer's warning was). None: they did not all arrive within ``timeout`` s."""
    produced, _ = drive(events, math.inf, "probe")
    started = min(produced.values())
    if not settle(produced, timeout):
        return None
    finished = max(seen[c] for c in produced)
    # The backlog's last outputs (profiles) drain before the measured traffic starts.
    time.sleep(2.0)
    return events / max(finished - started, 1e-3)


def _sent_times(settings: Any, produced: Mapping[str, float]) -> dict[str, float]:
    """When the worker sent each trigger's firing warning: the warnings topic records'
    timestamps (the producer's send time), per customer."""
    from stream_risk.kafka_admin import read_topic

    try:
        records = read_topic(settings.kafka_bootstrap, settings.topic("warnings"), timeout=30)
    except TimeoutError as exc:
        _say(f"{exc}: no split at the warnings topic")
        return {}
    sent: dict[str, float] = {}
    for record in records:
        warning = json.loads(record.value)
        customer = warning.get("customer_id")
        if customer in produced and warning.get("status") == "firing":
            sent.setdefault(customer, record.timestamp / 1000)
    return sent


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rate",
        type=float,
        help="events per second (default: --load times the most the worker sustains, "
        "measured first with a burst of --probe-events)",
    )
    p.add_argument(
        "--load",
        type=float,
        default=0.5,
        help="share of the measured maximum to run at without --rate (default 0.5)",
    )
    p.add_argument(
        "--probe-events",
        type=int,
        default=6000,
        help="events of the burst that measures the maximum (default 6000)",
    )
    p.add_argument("--duration", type=float, default=30.0, help="seconds of traffic (default 30)")
    p.add_argument(
        "--trigger-share",
        type=float,
        default=0.1,
        help="share of events that fire a warning (default 0.1)",
    )
    p.add_argument("--customers", type=int, default=500, help="background customers (default 500)")
    p.add_argument("--partitions", type=int, default=4, help="partitions per topic (default 4)")
    p.add_argument(
        "--warmup",
        type=float,
        default=5.0,
        help="seconds of the same traffic before measuring, until its warnings arrive (default 5)",
    )
    p.add_argument(
        "--warmup-timeout",
        type=float,
        default=180.0,
        help="longest wait for the warm-up warnings (default 180)",
    )
    p.add_argument(
        "--settle",
        type=float,
        default=30.0,
        help="seconds to wait for the last warnings after producing (default 30)",
    )
    p.add_argument("--bootstrap", help="Kafka bootstrap (default STREAM_RISK_KAFKA_BOOTSTRAP)")
    p.add_argument("--keep", action="store_true", help="keep the run's topics and Redis keys")
