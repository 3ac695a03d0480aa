"""``stream-risk demo``: the whole engine on one machine, with zero configuration.

Uses the configured Kafka and Redis when they answer; otherwise starts the
project's own single-node Apache Kafka (KRaft, jars from Maven Central) and
Debian's redis-server through ``docker/services.sh``. Then it starts a worker,
runs the traffic simulator (a few hundred customers, some deteriorating) at a
few simulated days per second, slowing down whenever the worker falls more than
``LAG_LIMIT`` events behind, and prints warnings as they arrive, in their level
colours. The worker serves the live dashboard and the HTTP API on
127.0.0.1 without authentication (a local demo only). Ctrl-C stops everything
it started.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stream_risk.config import Settings
from stream_risk.core.units import DAY
from stream_risk.kafka_admin import broker_reachable, drop_run_topics
from stream_risk.schemas.outputs import LEVELS
from stream_risk.worker_process import WorkerDidNotStart, start_worker

COLOURS = {
    "low": "\033[34m",
    "medium": "\033[33m",
    "high": "\033[38;5;208m",
    "critical": "\033[31m",
}
RESET = "\033[0m"
SERVICES = Path(__file__).resolve().parents[2] / "docker" / "services.sh"


#: Seconds between progress lines.
PROGRESS_EVERY = 5.0
#: Seconds between readings of the worker's lag, which paces the simulator.
LAG_EVERY = 1.0
#: Input records the worker may be behind before the simulator waits for it: a few
#: seconds of its work, so warnings stay live whatever the machine sustains.
LAG_LIMIT = 3000
#: After the simulation, the demo gives up on a worker that processes nothing this long.
STALL_LIMIT = 120.0


def _say(text: str) -> None:
    print(f"demo: {text}", file=sys.stderr, flush=True)


def _redis_up(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def _services(verb: str, what: str) -> bool:
    if not SERVICES.is_file():
        _say(
            f"cannot start {what}: {SERVICES.name} is not beside this installation "
            "(run the demo from a source checkout, or configure STREAM_RISK_KAFKA_BOOTSTRAP)"
        )
        return False
    return subprocess.run(["bash", str(SERVICES), verb, what]).returncode == 0


def format_warning(w: dict[str, Any], colour: bool) -> str:
    level = w["level"]
    reason = w["reasons"][0]["text"] if w.get("reasons") else ""
    head = f"{level.upper():8}"
    if colour:
        head = f"{COLOURS.get(level, '')}{head}{RESET}"
    status = "" if w["status"] == "firing" else " (resolved)"
    return (
        f"{head} {w['customer_id']:<10} {w['rule']:<24}{status} score {w['risk_score']:.2f} "
        f"tier {w['tier']:<6} event time {w['occurred_at'][:10]}  {reason}"
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    # SIGTERM cleans up like Ctrl-C: stop the worker and the services we started.
    signal.signal(signal.SIGTERM, _interrupt)
    settings = Settings()
    started: list[str] = []
    if not broker_reachable(settings.kafka_bootstrap):
        if "STREAM_RISK_KAFKA_BOOTSTRAP" in os.environ:
            _say(f"no Kafka at the configured {settings.kafka_bootstrap}")
            return 1
        _say("no Kafka configured or running: starting the embedded single-node Apache Kafka")
        if not _services("start", "kafka"):
            return 1
        started.append("kafka")
    redis_enabled = True
    if not _redis_up(settings.redis_url):
        if "STREAM_RISK_REDIS_URL" not in os.environ and _services("start", "redis"):
            started.append("redis")
        else:
            _say("Redis is not available: warnings go to Kafka only")
            redis_enabled = False

    run_id = f"demo{time.strftime('%Y%m%d%H%M%S')}{uuid.uuid4().hex[:4]}"
    env = dict(
        os.environ,
        STREAM_RISK_TOPIC_PREFIX=run_id,
        STREAM_RISK_APP_ID=f"{run_id}-app",
        # Its own Redis keys: warning ids are deterministic, so a rerun with the same
        # seed would otherwise be taken for redeliveries of the last run.
        STREAM_RISK_REDIS_PREFIX=f"{run_id}:risk",
        STREAM_RISK_BASE_CURRENCY="EUR",
        STREAM_RISK_REDIS_ENABLED=str(redis_enabled).lower(),
        STREAM_RISK_PARTITIONS=str(args.partitions),
        STREAM_RISK_DATA_DIR=str(Path(args.data_dir) / run_id),
    )
    if args.no_web:
        env["STREAM_RISK_WEB_ENABLED"] = "false"
    else:
        env.update(
            STREAM_RISK_WEB_ENABLED="true",
            STREAM_RISK_WEB_HOST="127.0.0.1",
            STREAM_RISK_WEB_PORT=str(args.web_port),
            # A local demo: no API key, bound to loopback only.
            STREAM_RISK_API_AUTH="false",
            # The simulator runs on simulated time: dashboard actions join it there.
            STREAM_RISK_API_EVENT_TIME="stream",
        )
    demo_settings = Settings(
        topic_prefix=run_id,
        app_id=f"{run_id}-app",
        partitions=args.partitions,
        kafka_bootstrap=settings.kafka_bootstrap,
    )
    log_path = Path(args.data_dir) / f"{run_id}-worker.log"
    _say(f"topics {run_id}.*, Redis keys {run_id}:risk:*, worker log {log_path}")
    counts: Counter[str] = Counter()
    stop = threading.Event()
    worker: subprocess.Popen[bytes] | None = None
    try:
        # Its own session: Ctrl-C reaches the demo only, which then stops the worker cleanly.
        worker = start_worker(env, log_path, own_session=True)
        if not args.no_web:
            # The worker logs where it serves (the port may have been chosen freely).
            served = re.search(r'HTTP API and dashboard on ([^\s"]+)', log_path.read_text())
            _say(f"dashboard: {served.group(1) if served else '(not served; see the log)'}")
        _say(
            "worker ready; simulating "
            f"{args.customers} customers over {args.days} days at {args.speed:g} days/s"
        )
        sent: dict[str, Any] = {"sent": 0, "event_time": None}
        sim = threading.Thread(
            target=_simulate, args=(demo_settings, args, stop, sent), daemon=True
        )
        sim.start()
        _print_warnings(demo_settings, args, counts, sim, stop, sent)
    except KeyboardInterrupt:
        _say("stopping")
    except WorkerDidNotStart as exc:
        _say(f"the worker did not start:\n{exc}")
        return 1
    finally:
        stop.set()
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        if not args.keep_topics:
            drop_run_topics(settings.kafka_bootstrap, run_id, _say)
        for what in reversed(started):
            if not args.keep_services:
                _services("stop", what)
    levels = LEVELS
    summary = ", ".join(f"{counts[k]} {k}" for k in levels)
    fired = sum(counts[k] for k in levels)
    _say(f"{fired} warnings fired ({summary}); {counts['resolved']} resolutions")
    return 0


def _simulate(
    settings: Settings,
    args: argparse.Namespace,
    stop: threading.Event,
    progress: dict[str, Any] | None = None,
) -> None:
    from stream_risk.tools.simulate import Progress, generate, produce

    def report(p: Progress) -> None:
        if progress is not None:
            progress["sent"], progress["event_time"] = p.sent, p.event_time

    def events() -> Iterator[dict[str, Any]]:
        for event in generate(customers=args.customers, days=args.days, seed=args.seed):
            if stop.is_set():
                return
            yield event

    def worker_behind() -> bool:
        return progress is not None and progress.get("lag", 0) > LAG_LIMIT

    try:
        produce(
            events(),
            settings.kafka_bootstrap,
            settings.input_topics(),
            speed=args.speed * DAY,
            progress=report,
            hold_back=worker_behind,
        )
    except Exception as exc:  # the demo keeps printing what arrived
        _say(f"simulator stopped: {exc}")


def _print_warnings(
    settings: Settings,
    args: argparse.Namespace,
    counts: Counter[str],
    sim: threading.Thread,
    stop: threading.Event,
    sent: dict[str, Any] | None = None,
) -> None:
    from kafka import KafkaConsumer

    from stream_risk.tools.bench import committed_lag, records_written

    consumer = KafkaConsumer(
        settings.topic("warnings"),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    colour = sys.stdout.isatty() and not args.no_colour
    ends = time.monotonic() + args.duration if args.duration else None
    inputs = list(settings.input_topics().values())
    next_report = time.monotonic() + PROGRESS_EVERY
    next_lag = time.monotonic() + LAG_EVERY
    holding = told = False
    caught_up_since: float | None = None
    stalled_since: float | None = None
    last_processed = -1
    try:
        while not stop.is_set():
            got = False
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    w = json.loads(record.value)
                    counts[w["level"] if w["status"] == "firing" else "resolved"] += 1
                    print(format_warning(w, colour), flush=True)
                    got = True
            now = time.monotonic()
            if ends is not None and now > ends:
                return
            report = now >= next_report
            # One reading of the lag serves the simulator's pacing and the progress line.
            if now >= next_lag or report:
                next_lag = now + LAG_EVERY
                # Read by the simulator, which waits while the worker is too far behind.
                lag = committed_lag(settings.kafka_bootstrap, settings.app_id, inputs)
                if sent is not None:
                    sent["lag"] = lag
                holding = lag > LAG_LIMIT and sim.is_alive()
                if holding and not told:
                    told = True
                    _say(
                        f"the worker is {lag:,} events behind: the simulator waits for it "
                        f"whenever it is more than {LAG_LIMIT:,} behind (simulated time slows "
                        "down; a lower --speed avoids this)"
                    )
            if not report:
                continue
            next_report = now + PROGRESS_EVERY
            # Progress from the broker: what the simulator sent, what the worker committed.
            produced = records_written(settings.kafka_bootstrap, *inputs)
            dead = records_written(settings.kafka_bootstrap, settings.topic("dead-letters"))
            processed = produced - lag
            day = (sent or {}).get("event_time") or "-"
            _say(
                f"simulated day {str(day)[:10]}: {processed:,} events processed "
                f"({processed - dead:,} applied, {dead:,} dead letters), lag {lag:,}"
                + ("; the simulator waits for the worker" if holding else "")
            )
            if sim.is_alive():
                continue
            # The simulation is over: finish once the worker has processed everything
            # (and its last warnings were printed), never on a pause.
            if lag == 0 and not got:
                caught_up_since = caught_up_since or now
                if now - caught_up_since >= PROGRESS_EVERY:
                    return
            else:
                caught_up_since = None
            if processed != last_processed:
                stalled_since, last_processed = None, processed
            else:
                stalled_since = stalled_since or now
                if now - stalled_since > STALL_LIMIT:
                    _say(f"the worker processed nothing for {STALL_LIMIT:.0f}s; stopping")
                    return
    finally:
        consumer.close()


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--customers", type=int, default=300, help="simulated customers (default 300)")
    p.add_argument("--days", type=int, default=240, help="simulated days (default 240)")
    p.add_argument(
        "--speed",
        type=float,
        default=4.0,
        help="simulated days per second at most; slower while the worker is behind (default 4)",
    )
    p.add_argument("--seed", type=int, default=7, help="simulator seed (default 7)")
    p.add_argument("--partitions", type=int, default=2, help="partitions per topic (default 2)")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: when the simulation ends)",
    )
    p.add_argument("--data-dir", default="stream-risk-data", help="worker state and logs")
    p.add_argument(
        "--web-port",
        type=int,
        default=6066,
        help="port of the dashboard and the HTTP API on 127.0.0.1 (default 6066; 0: any free port)",
    )
    p.add_argument("--no-web", action="store_true", help="no dashboard and no HTTP API")
    p.add_argument(
        "--keep-services",
        action="store_true",
        help="leave Kafka/Redis running if the demo started them",
    )
    p.add_argument(
        "--keep-topics",
        action="store_true",
        help="keep the run's topics after the demo (default: delete them; they are throwaway)",
    )
    p.add_argument("--no-colour", action="store_true", help="plain output")
