"""``stream-risk bench``: end-to-end worker throughput against its baselines.

Produces simulated traffic to fresh topics, then, in the same run and on the
same topics, measures:

* the ceiling: raw aiokafka ``getmany`` + ``json.loads`` of every message;
* the engine: one ``stream-risk worker`` process from "ready" until its
  committed offsets reach the end of every input partition; events applied and
  dead letters are counted separately;
* the baselines, each a process of its own measured the same way (from its
  ready line until its group committed every input record): a bare Faust agent
  that only decodes, and the minimal stateful job (per-customer count and sum of
  order amounts, a warning above a threshold) in Quix Streams, the peer engine
  (skipped, and said so, without ``pip install 'stream-risk[bench]'``);
* with ``--restart``: restart-to-processing after ``kill -9`` of that worker (a
  new one with the same static group membership, more events produced meanwhile,
  until all of them are committed);
* with ``--workers N`` (N > 1): scaling. One worker, then N workers with one app id,
  each group on topics of its own: the group is stable (every worker joined) before
  the same events are produced, and its time runs from the first event produced
  until every input record is committed. Both rates and their ratio are printed.

Numbers are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from stream_risk.tools.bench_engines import READY
from stream_risk.tools.simulate import positive_int
from stream_risk.worker_process import (
    READY_MARKER,
    WorkerDidNotStart,
    start_worker,
    stop_process,
)


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system, all threads) process ``pid`` has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


#: One encoded input record: topic, key, value.
Encoded = tuple[str, bytes, bytes]


def encoded_events(
    topics: dict[str, str], events: int, customers: int, seed: int = 11
) -> list[Encoded]:
    """The first ``events`` simulated events, encoded for their input topics."""
    from stream_risk.tools.simulate import generate

    records: list[Encoded] = []
    for event in generate(customers=customers, days=3650, seed=seed):
        value = json.dumps(event, separators=(",", ":")).encode()
        records.append((topics[event["type"]], event["customer_id"].encode(), value))
        if len(records) >= events:
            break
    return records


def send_all(bootstrap: str, records: list[Encoded]) -> int:
    """Send ``records`` and wait until the broker has them all."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=20,
        batch_size=256 * 1024,
        acks=1,
        compression_type=None,
    )
    for topic, key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()
    return len(records)


def produce(
    bootstrap: str, topics: dict[str, str], events: int, customers: int, seed: int = 11
) -> int:
    return send_all(bootstrap, encoded_events(topics, events, customers, seed))


async def raw_ceiling(bootstrap: str, topics: list[str], expected: int) -> float:
    """Seconds for raw aiokafka to fetch and parse ``expected`` messages."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        parts = [
            TopicPartition(t, p)
            for t in topics
            for p in (consumer.partitions_for_topic(t) or await _partitions(consumer, t))
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        count = 0
        started = time.perf_counter()
        while count < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                for record in records:
                    json.loads(record.value)
                    count += 1
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def _partitions(consumer: Any, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


def committed_lag(bootstrap: str, group: str, topics: list[str]) -> int:
    """Messages in ``topics`` not yet committed by consumer group ``group``."""
    from kafka import KafkaConsumer, TopicPartition

    # A consumer that never subscribes only reads the group's committed offsets.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        parts = [
            TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
        ]
        ends = consumer.end_offsets(parts)
        return sum(end - (consumer.committed(tp) or 0) for tp, end in ends.items())
    finally:
        consumer.close()


def records_written(bootstrap: str, *topics: str) -> int:
    """Records ever written to ``topics`` (the sum of their partitions' end offsets)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [
            TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
        ]
        return sum(consumer.end_offsets(parts).values()) if parts else 0
    finally:
        consumer.close()


#: CPU seconds of a measured process when its group had committed everything.
CPU_AT_END: dict[int, float] = {}
#: CPU seconds each engine used from ready to all committed (filled by the run).
ENGINE_CPU: dict[str, float] = {}


def _wait_committed(
    bootstrap: str, group: str, topics: list[str], timeout: float, pid: int
) -> tuple[float, float] | None:
    """Seconds until ``group`` has committed every input record, and the peak RSS of ``pid``.

    ``pid``'s CPU seconds at that moment go to :data:`CPU_AT_END` (keyed by ``pid``).
    """
    started = time.perf_counter()
    peak_rss = 0.0
    while True:
        lag = committed_lag(bootstrap, group, topics)
        peak_rss = max(peak_rss, _rss_mib(pid))
        if lag == 0:
            CPU_AT_END[pid] = _cpu_seconds(pid)
            return time.perf_counter() - started, peak_rss
        if time.perf_counter() - started > timeout:
            _say(f"worker did not finish in {timeout}s (lag {lag})")
            return None
        time.sleep(0.5)


def run_baseline(
    engine: str,
    bootstrap: str,
    group: str,
    inputs: list[str],
    orders: str,
    output: str,
    log_path: Path,
    timeout: float,
) -> float | None:
    """Seconds ``engine`` takes from ready to all committed.

    The engines are in :mod:`stream_risk.tools.bench_engines`.

    None when it did not finish (or its library is missing); the reason is printed.
    """
    with log_path.open("wb") as log:
        module = "stream_risk.tools.bench_engines"
        command = [sys.executable, "-m", module, engine, bootstrap, group]
        proc = subprocess.Popen(
            [*command, output, orders, *inputs],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout
        started: float | None = None
        while started is None:
            text = log_path.read_text(errors="replace")
            if READY_MARKER in text:
                started = time.time()
            elif READY in text:
                started = float(text.split(READY, 1)[1].split()[0])
            elif proc.poll() is not None or time.monotonic() > deadline:
                _say(f"{engine} did not start:\n{text[-2000:]}")
                return None
            else:
                time.sleep(0.1)
        # Quix announces its first record (already processing), Faust its assignment.
        cpu_ready = _cpu_seconds(proc.pid)
        done = _wait_committed(bootstrap, group, inputs, timeout, proc.pid)
        if done is None:
            return None
        ENGINE_CPU[engine] = CPU_AT_END[proc.pid] - cpu_ready
        return time.time() - started
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def group_stable(bootstrap: str, group: str, members: int) -> bool:
    """Whether consumer group ``group`` is stable with exactly ``members`` members."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        info = admin.describe_groups([group]).get(group, {})
    finally:
        admin.close()
    return info.get("group_state") == "Stable" and len(info.get("members") or ()) == members


def _wait_stable(bootstrap: str, group: str, members: int, timeout: float, hold: float) -> bool:
    """Wait until ``group`` has been stable with ``members`` members for ``hold`` seconds."""
    deadline = time.monotonic() + timeout
    since: float | None = None
    while time.monotonic() < deadline:
        if group_stable(bootstrap, group, members):
            since = since or time.monotonic()
            if time.monotonic() - since >= hold:
                return True
        else:
            since = None
        time.sleep(0.5)
    return False


def measure_group(
    env: dict[str, str], prefix: str, workers: int, args: argparse.Namespace, tmp: Path
) -> tuple[float, int, float] | None:
    """Events per second of ``workers`` workers of one group, joined before the load.

    The group gets topics of its own (``prefix``); once it is stable the same
    simulated events as the main run are produced, and the time runs from the first
    one produced until the group has committed every input record. Returns the rate,
    the dead letters and the events per CPU second of all its workers together, or
    None (the reason is printed). Per CPU second tells whether more workers cost
    more CPU per event, or only found too few free cores to run at once.
    """
    from stream_risk.config import Settings
    from stream_risk.kafka_admin import ensure_topics

    settings = Settings(
        topic_prefix=prefix,
        app_id=f"{prefix}-app",
        partitions=args.partitions,
        kafka_bootstrap=env["STREAM_RISK_KAFKA_BOOTSTRAP"],
    )
    ensure_topics(settings)
    inputs = list(settings.input_topics().values())
    # Encoded before the clock starts: on a small machine the bench's own work would
    # compete with the workers for the cores.
    records = encoded_events(settings.input_topics(), args.events, args.customers)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(1, workers + 1):
            data = tmp / f"{prefix}-{n}"
            data.mkdir()
            worker_env = dict(
                env,
                STREAM_RISK_TOPIC_PREFIX=prefix,
                STREAM_RISK_APP_ID=settings.app_id,
                STREAM_RISK_GROUP_INSTANCE_ID=f"{prefix}-worker-{n}",
                STREAM_RISK_DATA_DIR=str(data),
                # Each on a port of its own: the run's port is one, and a second
                # worker on it would not start.
                STREAM_RISK_WEB_PORT="0",
            )
            procs.append(start_worker(worker_env, data / "worker.log"))
        # Every worker joined and its partitions assigned, before any event exists.
        if not _wait_stable(settings.kafka_bootstrap, settings.app_id, workers, 120.0, 3.0):
            _say(f"the group of {workers} workers did not become stable")
            return None
        cpu_before = sum(_cpu_seconds(proc.pid) for proc in procs)
        started = time.perf_counter()
        sent = send_all(settings.kafka_bootstrap, records)
        done = _wait_committed(
            settings.kafka_bootstrap, settings.app_id, inputs, args.timeout, procs[0].pid
        )
        if done is None:
            return None
        elapsed = time.perf_counter() - started
        cpu = sum(_cpu_seconds(proc.pid) for proc in procs) - cpu_before
        dead = records_written(settings.kafka_bootstrap, settings.topic("dead-letters"))
        return sent / elapsed, dead, sent / cpu
    except WorkerDidNotStart as exc:
        _say(f"a worker did not start:\n{exc}")
        return None
    finally:
        for proc in procs:
            stop_process(proc)


def scaling(
    env: dict[str, str], prefix: str, args: argparse.Namespace, tmp: Path
) -> tuple[dict[str, Any], list[str]]:
    """One worker, then ``args.workers``, each group joined before its load.

    Returns the figures (for the JSON line) and the lines to print.
    """
    result: dict[str, Any] = {}
    lines: list[str] = []
    rates: dict[int, float] = {}
    for workers in (1, args.workers):
        _say(f"scaling: {workers} worker(s) joined before {args.events} events are produced")
        measured = measure_group(env, f"{prefix}-w{workers}", workers, args, tmp)
        label = f"{workers} worker(s) joined before load".ljust(34)
        if measured is None:
            lines.append(f"{label}: not measured (see above)")
            continue
        rate, dead, per_cpu = measured
        rates[workers] = rate
        result[f"workers_{workers}_events_per_s"] = round(rate)
        result[f"workers_{workers}_events_per_cpu_s"] = round(per_cpu)
        result[f"workers_{workers}_dead_letters"] = dead
        lines.append(
            f"{label}: {rate:>9,.0f} events/s ({per_cpu:,.0f} per CPU second of its "
            f"workers, {dead} dead letters)"
        )
    if len(rates) == 2:
        ratio = rates[args.workers] / rates[1]
        result[f"ratio {args.workers} workers / 1"] = round(ratio, 3)
        lines.append(f"ratio {args.workers} workers / 1".ljust(34) + f": {ratio:>9.3f}")
    return result, lines


def _say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from stream_risk.config import Settings
    from stream_risk.kafka_admin import KafkaUnavailable, drop_run_topics, ensure_topics

    prefix = f"bench{uuid.uuid4().hex[:8]}"
    env = dict(
        os.environ,
        STREAM_RISK_TOPIC_PREFIX=prefix,
        STREAM_RISK_APP_ID=f"{prefix}-app",
        STREAM_RISK_PARTITIONS=str(args.partitions),
        STREAM_RISK_REDIS_PREFIX=f"{prefix}:risk",
        STREAM_RISK_REDIS_ENABLED="true" if args.redis else "false",
        # Serves its API as in production, on a free port (6066 may be taken), without
        # API keys on this loopback run: the bench reads its metrics.
        STREAM_RISK_WEB_PORT=str(_free_port()),
        STREAM_RISK_API_AUTH="false",
        # Static membership: a worker restarted after kill -9 takes its partitions back
        # without waiting for the group to drop the dead one.
        STREAM_RISK_GROUP_INSTANCE_ID=f"{prefix}-worker-1",
    )
    settings = Settings(
        topic_prefix=prefix,
        app_id=f"{prefix}-app",
        partitions=args.partitions,
        kafka_bootstrap=args.bootstrap or Settings().kafka_bootstrap,
    )
    env["STREAM_RISK_KAFKA_BOOTSTRAP"] = settings.kafka_bootstrap
    try:
        ensure_topics(settings)
    except KafkaUnavailable as exc:
        print(f"stream-risk bench: {exc}", file=sys.stderr)
        return 1
    topics = settings.input_topics()
    print(
        f"bench: producing {args.events} simulated events to {prefix}.* "
        f"({args.partitions} partitions)",
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    sent = produce(settings.kafka_bootstrap, topics, args.events, args.customers)
    produce_s = time.perf_counter() - t0

    raw_cpu = time.process_time()
    raw_s = asyncio.run(raw_ceiling(settings.kafka_bootstrap, list(topics.values()), sent))
    raw_cpu = time.process_time() - raw_cpu

    with tempfile.TemporaryDirectory() as tmp:
        env["STREAM_RISK_DATA_DIR"] = tmp
        try:
            proc = start_worker(env, Path(tmp) / "worker.log")
        except WorkerDidNotStart as exc:
            _say(f"the worker did not start:\n{exc}")
            return 1
        inputs = list(topics.values())
        restart_s: float | None = None
        restart_ready_s = restart_all_s = 0.0
        try:
            cpu_ready = _cpu_seconds(proc.pid)
            done = _wait_committed(
                settings.kafka_bootstrap, settings.app_id, inputs, args.timeout, proc.pid
            )
            if done is None:
                return 1
            worker_s, peak_rss = done
            worker_cpu = CPU_AT_END[proc.pid] - cpu_ready
            loop_lag = _loop_lag(int(env["STREAM_RISK_WEB_PORT"]))
            dead = records_written(settings.kafka_bootstrap, settings.topic("dead-letters"))
            if args.restart:
                proc.kill()  # kill -9: no leave-group, no final commit
                proc.wait(timeout=30)
                killed = time.perf_counter()
                produce(settings.kafka_bootstrap, topics, args.restart, args.customers, seed=12)
                behind = committed_lag(settings.kafka_bootstrap, settings.app_id, inputs)
                try:
                    proc = start_worker(env, Path(tmp) / "worker-restarted.log")
                except WorkerDidNotStart as exc:
                    _say(f"the restarted worker did not start:\n{exc}")
                    return 1
                restart_ready_s = time.perf_counter() - killed
                # Processing again: its first commit past what was left behind.
                while committed_lag(settings.kafka_bootstrap, settings.app_id, inputs) >= behind:
                    if time.perf_counter() - killed > args.timeout:
                        _say("the restarted worker committed nothing")
                        return 1
                    time.sleep(0.2)
                restart_s = time.perf_counter() - killed
                again = _wait_committed(
                    settings.kafka_bootstrap, settings.app_id, inputs, args.timeout, proc.pid
                )
                if again is None:
                    return 1
                restart_all_s = time.perf_counter() - killed
            # The baselines run alone, on every record the worker read.
            proc.terminate()
            proc.wait(timeout=30)
            scaled: tuple[dict[str, Any], list[str]] = ({}, [])
            if args.workers > 1:
                scaled = scaling(env, prefix, args, Path(tmp))
            total = records_written(settings.kafka_bootstrap, *inputs)
            output = settings.topic("bench-warnings")
            baselines: dict[str, float | None] = {}
            for engine in args.baselines:
                _say(f"running the {engine} baseline on {total} events")
                baselines[engine] = run_baseline(
                    engine,
                    settings.kafka_bootstrap,
                    f"{prefix}-{engine}",
                    inputs,
                    topics["order"],
                    output,
                    Path(tmp) / f"{engine}.log",
                    args.timeout,
                )
            job_warnings = records_written(settings.kafka_bootstrap, output)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            if not args.keep:
                drop_run_topics(settings.kafka_bootstrap, prefix, _say)
                _drop_changelogs(settings.kafka_bootstrap, prefix)

    result = {
        "events": sent,
        "partitions": args.partitions,
        "produce_events_per_s": round(sent / produce_s),
        "raw_aiokafka_json_events_per_s": round(sent / raw_s),
        "worker_events_per_s": round(sent / worker_s),
        "worker_applied_events_per_s": round((sent - dead) / worker_s),
        "worker_dead_letters": dead,
        "worker_seconds": round(worker_s, 2),
        "worker_peak_rss_mib": round(peak_rss, 1),
        "redis_sink": bool(args.redis),
        "restart_to_processing_seconds": None if restart_s is None else round(restart_s, 2),
        "restart_to_ready_seconds": round(restart_ready_s, 2),
        "restart_to_all_committed_seconds": round(restart_all_s, 2),
    }
    result["worker_event_loop"] = loop_lag
    result["raw_aiokafka_json_events_per_cpu_s"] = _per(sent, raw_cpu)
    result["worker_events_per_cpu_s"] = _per(sent, worker_cpu)
    print(
        "raw aiokafka getmany + json.loads : "
        f"{result['raw_aiokafka_json_events_per_s']:>9,} events/s "
        f"({result['raw_aiokafka_json_events_per_cpu_s']:,} per CPU second)"
    )
    print(
        f"stream-risk worker (end to end)   : {result['worker_events_per_s']:>9,} events/s "
        f"({sent} events in {worker_s:.1f}s, {result['worker_events_per_cpu_s']:,} per CPU "
        f"second, peak RSS {peak_rss:.0f} MiB)"
    )
    print(
        f"  of which applied                : {result['worker_applied_events_per_s']:>9,} events/s "
        f"({sent - dead} applied, {dead} dead letters)"
    )
    print(f"  its event loop                  : {_stalls(loop_lag)}")
    for engine, seconds in baselines.items():
        rate = None if seconds is None else round(total / seconds)
        result[f"{engine}_events_per_s"] = rate
        label = BASELINE_LABELS.get(engine, engine)
        if rate is None or seconds is None:
            print(f"{label:<34}: not measured (see above)")
            continue
        per_cpu = result[f"{engine}_events_per_cpu_s"] = _per(total, ENGINE_CPU[engine])
        print(
            f"{label:<34}: {rate:>9,} events/s ({total} events in {seconds:.1f}s, "
            f"{per_cpu:,} per CPU second)"
        )
    if "quix-job" in baselines:
        result["quix_job_warnings"] = job_warnings
    result["baseline_events"] = total
    rates = {
        "worker": sent / worker_s,
        "worker applied": (sent - dead) / worker_s,
        "raw aiokafka": sent / raw_s,
    }
    rates.update(
        (BASELINE_NAMES.get(e, e), total / t) for e, t in baselines.items() if t is not None
    )
    # The same per CPU second: what the other load of a shared machine moves least.
    cpu_rates = {"worker": sent / worker_cpu, "raw aiokafka": sent / raw_cpu}
    cpu_rates["worker applied"] = (sent - dead) / worker_cpu
    cpu_rates.update((BASELINE_NAMES.get(e, e), total / t) for e, t in ENGINE_CPU.items())
    for top, bottom in RATIOS:
        if top in rates and bottom in rates:
            ratio = rates[top] / rates[bottom]
            cpu_ratio = cpu_rates[top] / cpu_rates[bottom]
            result[f"ratio {top} / {bottom}"] = round(ratio, 3)
            result[f"cpu ratio {top} / {bottom}"] = round(cpu_ratio, 3)
            print(
                f"ratio {top} / {bottom}".ljust(34)
                + f": {ratio:>9.3f} (per CPU second {cpu_ratio:.3f})"
            )
    result.update(scaled[0])
    for line in scaled[1]:
        print(line)
    if restart_s is not None:
        print(
            f"restart after kill -9: ready in {restart_ready_s:.1f}s, processing (first "
            f"commit) in {restart_s:.1f}s, the {args.restart} events produced meanwhile "
            f"all committed in {restart_all_s:.1f}s"
        )
    print(json.dumps(result))
    return 0


#: The baselines, as the ratios and the printout name them.
BASELINE_NAMES = {"faust-decode": "bare Faust", "quix-job": "Quix job"}
BASELINE_LABELS = {
    "faust-decode": "bare Faust agent (decode only)",
    "quix-job": "Quix Streams minimal job",
}
#: Ratios printed, where both rates were measured.
RATIOS = [
    ("worker", "bare Faust"),
    ("worker applied", "bare Faust"),
    ("worker", "Quix job"),
    ("worker applied", "Quix job"),
    ("worker", "raw aiokafka"),
    ("bare Faust", "raw aiokafka"),
    ("Quix job", "raw aiokafka"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _loop_lag(port: int) -> dict[str, Any] | None:
    """The worker's event-loop lag histogram, read from its metrics (None: unreadable)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            return loop_stalls(reply.read().decode())
    except OSError as exc:
        _say(f"could not read the worker's metrics: {exc}")
        return None


def loop_stalls(metrics: str, over: float = 0.1) -> dict[str, Any]:
    """From Prometheus text: how many loop-lag probes ran, how many woke more than
    ``over`` seconds late, and the bounds of the bucket the longest stall fell in.

    >>> text = "\\n".join([
    ...     'stream_risk_event_loop_lag_seconds_bucket{le="0.05"} 40.0',
    ...     'stream_risk_event_loop_lag_seconds_bucket{le="0.1"} 42.0',
    ...     'stream_risk_event_loop_lag_seconds_bucket{le="0.25"} 44.0',
    ...     'stream_risk_event_loop_lag_seconds_bucket{le="0.5"} 44.0',
    ...     'stream_risk_event_loop_lag_seconds_bucket{le="+Inf"} 44.0'])
    >>> loop_stalls(text)
    {'probes': 44, 'over_0.1_s': 2, 'worst_at_most_s': 0.25, 'worst_above_s': 0.1}
    """
    counts: list[tuple[float, int]] = []
    for line in metrics.splitlines():
        if line.startswith("stream_risk_event_loop_lag_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            counts.append((float(le), int(float(line.rsplit(" ", 1)[1]))))
    counts.sort()
    probes = counts[-1][1] if counts else 0
    within = max((n for upper, n in counts if upper <= over), default=0)
    worst, above = 0.0, 0.0
    previous = (0.0, 0)
    for upper, n in counts:
        if n > previous[1]:
            worst, above = upper, previous[0]
        previous = (upper, n)
    return {
        "probes": probes,
        f"over_{over:g}_s": probes - within,
        # None: above the largest bucket
        "worst_at_most_s": worst if worst != float("inf") else None,
        "worst_above_s": above,
    }


def _stalls(lag: dict[str, Any] | None) -> str:
    if lag is None:
        return "not measured"
    top = lag["worst_at_most_s"]
    worst = (
        f"above {lag['worst_above_s']:g} s"
        if top is None
        else f"{lag['worst_above_s']:g}-{top:g} s"
    )
    return (
        f"{lag['probes']} probes every 0.25 s, {lag['over_0.1_s']} woke more than 0.1 s "
        f"late; the longest stall {worst}"
    )


def _per(count: int, seconds: float) -> int | None:
    """``count`` per second of ``seconds`` (None when not measured)."""
    return round(count / seconds) if seconds > 0 else None


def _drop_changelogs(bootstrap: str, prefix: str) -> None:
    """Delete the topics a baseline named after its group (Quix: ``changelog__<group>--...``)."""
    from kafka.admin import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    except Exception as exc:  # a cleanup: report, never fail the run
        _say(f"could not delete the baselines' topics: {exc}")
        return
    try:
        leftover = [t for t in admin.list_topics() if f"{prefix}-" in t]
        if leftover:
            admin.delete_topics(leftover)
    except Exception as exc:
        _say(f"could not delete the baselines' topics: {exc}")
    finally:
        admin.close()


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events", type=int, default=100_000, help="events to produce (default 100000)")
    p.add_argument(
        "--customers", type=int, default=2_000, help="simulated customers (default 2000)"
    )
    p.add_argument("--partitions", type=int, default=4, help="partitions per topic (default 4)")
    p.add_argument("--redis", action="store_true", help="also deliver to Redis during the run")
    p.add_argument("--bootstrap", help="Kafka bootstrap (default STREAM_RISK_KAFKA_BOOTSTRAP)")
    p.add_argument("--timeout", type=float, default=900, help="give up after this many seconds")
    p.add_argument(
        "--keep", action="store_true", help="keep the run's topics (default: delete them)"
    )
    p.add_argument(
        "--restart",
        type=int,
        default=0,
        metavar="N",
        help="then kill -9 the worker, produce N more events, start a new one and print "
        "the seconds from the kill until all are committed",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="with N > 1, also measure scaling: one worker, then N workers of one group "
        "(each group on topics of its own, stable with every worker joined before the same "
        "events are produced) and print both rates and their ratio (default 1: the single "
        "worker only)",
    )
    p.add_argument(
        "--baselines",
        nargs="*",
        default=list(BASELINE_NAMES),
        choices=list(BASELINE_NAMES),
        metavar="ENGINE",
        help="baselines to run after the worker on the same topics (default: "
        "faust-decode quix-job; none: --baselines with no name)",
    )
