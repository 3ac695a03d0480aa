"""``stream-risk bench-restart``: restart-to-processing after ``kill -9``, per state store.

For each state store (``--stores``, default: memory then rocksdb), on fresh topics:

1. produce the state of ``--customers`` customers in bulk (a customer record and
   ``--orders`` orders each);
2. run one worker (static group membership, its own data directory) until its
   group has committed every input record;
3. ``kill -9`` it, produce ``--after`` more orders for some of the customers;
4. start a worker with the same group instance id and data directory, and time
   from its start to the first of the new orders applied (the first profile of
   one of those customers on the profiles topic), as well as to its "ready" line.

It prints, per store, those times, the time the restarted worker took to rebuild
its timers from the stored states, and the state changelog records it read to
recover (its log lines), against the records the changelog holds.
The issue's goal: at most 10 s restart-to-processing with 100,000 customers.
Numbers are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stream_risk.tools.bench import committed_lag, records_written
from stream_risk.tools.simulate import positive_int, whole_number
from stream_risk.worker_process import WorkerDidNotStart, start_worker, stop_process

#: The restarted worker's log line with the changelog records it read (agents.state_store).
RECOVERED = re.compile(r"customer states recovered: (\d+) changelog records read")
#: Its log line after the timers were rebuilt from the stored states (agents.app).
REBUILT = re.compile(r"timers rebuilt from the stored states in ([0-9.]+)s")


def _say(text: str) -> None:
    print(f"bench-restart: {text}", file=sys.stderr, flush=True)


def customer_events(customers: int, orders: int, start: datetime) -> Any:
    """A customer record and ``orders`` orders per customer, in event-time order."""
    for c in range(customers):
        cid = f"c{c:06d}"
        yield {
            "type": "customer",
            "event_id": f"{cid}-c",
            "customer_id": cid,
            "occurred_at": start.isoformat(),
            "credit_limit": 10_000,
            "currency": "EUR",
            "payment_terms_days": 30,
        }
    for n in range(orders):
        at = (start + timedelta(hours=1 + n)).isoformat()
        for c in range(customers):
            cid = f"c{c:06d}"
            yield _order(cid, f"{cid}-o{n}", at, 100.0 + n)


def _order(cid: str, order_id: str, at: str, amount: float) -> dict[str, Any]:
    return {
        "type": "order",
        "event_id": order_id,
        "customer_id": cid,
        "occurred_at": at,
        "order_id": order_id,
        "amount": amount,
        "currency": "EUR",
        "status": "placed",
    }


def produce_events(bootstrap: str, topics: dict[str, str], events: Any) -> int:
    """Send ``events`` to their input topics, keyed by customer; return how many."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024, acks=1
    )
    sent = 0
    for event in events:
        producer.send(
            topics[event["type"]],
            key=event["customer_id"].encode(),
            value=json.dumps(event, separators=(",", ":")).encode(),
        )
        sent += 1
        if sent % 50_000 == 0:
            _say(f"  {sent:,} events produced")
    producer.flush()
    producer.close()
    return sent


class ProfileWatch:
    """Reads the profiles topic from its current end, to see the first new order applied."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        parts = [TopicPartition(topic, p) for p in self.consumer.partitions_for_topic(topic) or ()]
        self.consumer.assign(parts)
        self.consumer.seek_to_end(*parts)
        for tp in parts:  # resolve the lazy seek now, before anything new is written
            self.consumer.position(tp)

    def first_of(self, customers: set[str], timeout: float) -> float | None:
        """``time.monotonic()`` when a profile of one of ``customers`` was read, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for batch in self.consumer.poll(timeout_ms=100).values():
                for record in batch:
                    if record.key is not None and record.key.decode() in customers:
                        return time.monotonic()
        return None

    def close(self) -> None:
        self.consumer.close()


def wait_all_committed(bootstrap: str, group: str, inputs: list[str], timeout: float) -> bool:
    """Wait until ``group`` committed every input record, with a progress line now and then."""
    started = last = time.monotonic()
    while True:
        lag = committed_lag(bootstrap, group, inputs)
        if lag == 0:
            return True
        now = time.monotonic()
        if now - started > timeout:
            _say(f"  the worker did not finish in {timeout:.0f}s (lag {lag:,})")
            return False
        if now - last >= 10:
            last = now
            _say(f"  {now - started:.0f}s: {lag:,} input records not yet committed")
        time.sleep(1.0)


def run_store(store: str, args: argparse.Namespace, bootstrap: str) -> dict[str, Any] | None:
    """Load, kill -9 and restart one worker with ``store``; its measurements, or None."""
    from stream_risk.config import Settings
    from stream_risk.kafka_admin import drop_run_topics, ensure_topics

    prefix = f"restart{uuid.uuid4().hex[:8]}"
    settings = Settings(
        topic_prefix=prefix,
        app_id=f"{prefix}-app",
        partitions=args.partitions,
        kafka_bootstrap=bootstrap,
    )
    ensure_topics(settings)
    topics = settings.input_topics()
    inputs = list(topics.values())
    env = dict(
        os.environ,
        STREAM_RISK_KAFKA_BOOTSTRAP=bootstrap,
        STREAM_RISK_TOPIC_PREFIX=prefix,
        STREAM_RISK_APP_ID=settings.app_id,
        STREAM_RISK_PARTITIONS=str(args.partitions),
        STREAM_RISK_REDIS_ENABLED="false",
        STREAM_RISK_WEB_PORT="0",
        STREAM_RISK_STORE=store,
        STREAM_RISK_GROUP_INSTANCE_ID=f"{prefix}-worker-1",
    )
    start = datetime.now(UTC) - timedelta(days=2)
    with tempfile.TemporaryDirectory() as tmp:
        env["STREAM_RISK_DATA_DIR"] = str(Path(tmp) / "data")
        proc = None
        try:
            _say(f"[{store}] producing {args.customers:,} customers' events to {prefix}.*")
            t0 = time.monotonic()
            loaded = produce_events(
                bootstrap, topics, customer_events(args.customers, args.orders, start)
            )
            _say(f"[{store}] {loaded:,} events in {time.monotonic() - t0:.1f}s; starting a worker")
            t0 = time.monotonic()
            proc = start_worker(env, Path(tmp) / "worker.log", timeout=args.timeout)
            if not wait_all_committed(bootstrap, settings.app_id, inputs, args.timeout):
                return None
            load_s = time.monotonic() - t0
            changelog = f"{settings.app_id}-customer-state-changelog"
            changelog_records = records_written(bootstrap, changelog)
            _say(
                f"[{store}] {loaded:,} events applied in {load_s:.1f}s "
                f"({changelog_records:,} changelog records); kill -9"
            )
            proc.kill()
            proc.wait(timeout=30)
            watch = ProfileWatch(bootstrap, settings.topic("profiles"))
            try:
                late = start + timedelta(hours=1 + args.orders)
                step = max(1, args.customers // max(1, args.after))
                chosen = [f"c{c:06d}" for c in range(0, args.customers, step)][: args.after]
                produce_events(
                    bootstrap,
                    topics,
                    (_order(cid, f"{cid}-late", late.isoformat(), 50.0) for cid in chosen),
                )
                _say(f"[{store}] {len(chosen)} new orders produced; restarting the worker")
                restarted = time.monotonic()
                proc = start_worker(env, Path(tmp) / "worker-restarted.log", timeout=args.timeout)
                ready_s = time.monotonic() - restarted
                applied = watch.first_of(set(chosen), args.timeout)
            finally:
                watch.close()
            if applied is None:
                _say(f"[{store}] no new order applied within {args.timeout:.0f}s")
                return None
            log_text = (Path(tmp) / "worker-restarted.log").read_text(errors="replace")
            read = sum(int(n) for n in RECOVERED.findall(log_text))
            rebuilt = sum(float(seconds) for seconds in REBUILT.findall(log_text))
            return {
                "store": store,
                "customers": args.customers,
                "events_loaded": loaded,
                "load_seconds": round(load_s, 1),
                "changelog_records": changelog_records,
                "restart_to_ready_seconds": round(ready_s, 2),
                "restart_to_processing_seconds": round(applied - restarted, 2),
                "changelog_records_read_at_recovery": read,
                "timers_rebuilt_seconds": round(rebuilt, 2),
            }
        except WorkerDidNotStart as exc:
            _say(f"[{store}] the worker did not start:\n{exc}")
            return None
        finally:
            stop_process(proc)
            if not args.keep:
                drop_run_topics(bootstrap, prefix, _say)


def run(args: argparse.Namespace) -> int:
    from stream_risk.config import Settings
    from stream_risk.kafka_admin import KafkaUnavailable

    bootstrap = args.bootstrap or Settings().kafka_bootstrap
    results = []
    for store in args.stores:
        try:
            result = run_store(store, args, bootstrap)
        except KafkaUnavailable as exc:
            print(f"stream-risk bench-restart: {exc}", file=sys.stderr)
            return 1
        if result is None:
            return 1
        results.append(result)
    for r in results:
        print(
            f"{r['store']:<8} store: restart to processing "
            f"{r['restart_to_processing_seconds']:6.2f}s "
            f"(ready in {r['restart_to_ready_seconds']:.2f}s, timers rebuilt in "
            f"{r['timers_rebuilt_seconds']:.2f}s); "
            f"{r['changelog_records_read_at_recovery']:,} of {r['changelog_records']:,} "
            f"changelog records read at recovery; {r['customers']:,} customers"
        )
    for r in results:
        print(json.dumps(r))
    return 0


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--customers",
        type=positive_int,
        default=100_000,
        help="customers with state (default 100000)",
    )
    p.add_argument(
        "--orders",
        type=whole_number,
        default=1,
        help="orders per customer besides its record (default 1)",
    )
    p.add_argument(
        "--after",
        type=positive_int,
        default=100,
        help="orders produced while the worker is down (default 100)",
    )
    p.add_argument(
        "--partitions", type=positive_int, default=4, help="partitions per topic (default 4)"
    )
    p.add_argument(
        "--stores",
        nargs="+",
        default=["memory", "rocksdb"],
        choices=["memory", "rocksdb"],
        help="state stores to measure, in this order (default: memory rocksdb)",
    )
    p.add_argument("--bootstrap", help="Kafka bootstrap (default STREAM_RISK_KAFKA_BOOTSTRAP)")
    p.add_argument(
        "--timeout", type=float, default=900, help="give up a step after this many seconds"
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the run's topics (default: delete them)"
    )
