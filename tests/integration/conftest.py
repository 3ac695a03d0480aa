"""Fixtures for tests against the real Kafka and Redis the test command starts.

Nothing here skips: a missing service fails the test with the command that
starts it. Every test gets its own topic prefix, consumer group and Redis key
prefix, so tests never see each other's data.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stream_risk.core.ruleset import default_files
from stream_risk.kafka_admin import drop_run_topics
from stream_risk.worker_process import stop_process

UTILISATION_RULE = (Path(__file__).parents[1] / "data" / "rules" / "utilisation.yaml").read_text()
BOOTSTRAP = os.environ.get("STREAM_RISK_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
REDIS_URL = os.environ.get("STREAM_RISK_REDIS_URL", "redis://127.0.0.1:6379/0")
START_HINT = "start the services with 'docker/services.sh start' (the README test command does)"


def free_port() -> int:
    """A TCP port nothing listens on right now (each worker serves its API on its own)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def services() -> None:
    host, _, port = BOOTSTRAP.split(",")[0].rpartition(":")
    if not _reachable(host, int(port)):
        pytest.fail(f"Kafka is not reachable at {BOOTSTRAP}: {START_HINT}")
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.ConnectionError:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {START_HINT}")


@dataclass
class Worker:
    """A ``stream-risk worker`` subprocess with its own topics and Redis prefix."""

    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self, timeout: float = 90.0) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n===== start {self.starts} =====\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream_risk.cli", "worker"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        marker = f"===== start {self.starts} ====="
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            tail = text[text.rfind(marker) :]
            if "Worker]: Ready" in tail:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{tail[-4000:]}")
            time.sleep(0.25)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.log()[-4000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        stop_process(self.proc)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def url(self) -> str:
        """Base URL of the worker's HTTP API."""
        return f"http://127.0.0.1:{self.env['STREAM_RISK_WEB_PORT']}"


@dataclass
class Env:
    """One isolated deployment: topic prefix, app id, Redis prefix, clients."""

    prefix: str
    settings_env: dict[str, str]
    tmp: Path
    producer: KafkaProducer
    redis: redis.Redis
    workers: list[Worker] = field(default_factory=list)

    def topic(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def send(
        self,
        event: dict[str, Any],
        key: bytes | None = None,
        raw: bytes | None = None,
        topic: str | None = None,
    ) -> None:
        value = raw if raw is not None else json.dumps(event).encode()
        self.producer.send(
            self.topic(topic or event["type"]),
            key=key if key is not None else event["customer_id"].encode(),
            value=value,
        )

    def flush(self) -> None:
        self.producer.flush(timeout=30)

    def publish_utilisation_pack(self) -> None:
        """Publish the default pack plus the utilisation warning (``tests/data/rules``) as
        the deployment's rule set; a worker started after it decides with it from the start.

        The default pack does not warn on utilisation alone; the tests that follow one
        warning through its whole life (fire, resolve when paid down) use this rule.
        """
        directory = self.tmp / "utilisation-pack"
        directory.mkdir(exist_ok=True)
        for name, text in {**default_files(), "utilisation.yaml": UTILISATION_RULE}.items():
            (directory / name).write_text(text)
        published = subprocess.run(
            [sys.executable, "-m", "stream_risk.cli", "rules", "publish", str(directory)],
            env=self.settings_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert published.returncode == 0, published.stderr

    def worker(self, **extra_env: str) -> Worker:
        env = {**self.settings_env, "STREAM_RISK_WEB_PORT": str(free_port()), **extra_env}
        w = Worker(env, self.tmp / f"worker-{len(self.workers)}.log")
        self.workers.append(w)
        return w

    def consume(
        self, name: str, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        """Read topic ``name`` from the start until ``until(records)`` holds."""
        consumer = KafkaConsumer(
            bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, consumer_timeout_ms=500
        )
        topic = self.topic(name)
        deadline = time.monotonic() + timeout
        try:
            while not consumer.partitions_for_topic(topic):
                if time.monotonic() > deadline:
                    raise AssertionError(f"topic {topic} never appeared")
                time.sleep(0.2)
            parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
            consumer.assign(parts)
            consumer.seek_to_beginning(*parts)
            records: list[dict[str, Any]] = []
            while True:
                for batch in consumer.poll(timeout_ms=500).values():
                    for msg in batch:
                        records.append(
                            {
                                "key": msg.key,
                                "partition": msg.partition,
                                "value": json.loads(msg.value),
                            }
                        )
                if until(records):
                    return records
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"timed out on {topic}; got {len(records)} records: "
                        f"{[r['value'] for r in records][:20]}"
                    )
        finally:
            consumer.close()


@contextmanager
def deployment_env(tmp: Path, **extra_env: str) -> Iterator[Env]:
    """An isolated deployment in ``tmp``; its workers stopped and its Redis keys removed after."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    settings_env = dict(
        os.environ,
        STREAM_RISK_KAFKA_BOOTSTRAP=BOOTSTRAP,
        STREAM_RISK_REDIS_URL=REDIS_URL,
        STREAM_RISK_APP_ID=f"{prefix}-app",
        STREAM_RISK_TOPIC_PREFIX=prefix,
        STREAM_RISK_REDIS_PREFIX=f"{prefix}:risk",
        STREAM_RISK_PARTITIONS="2",
        STREAM_RISK_DATA_DIR=str(tmp / "data"),
        STREAM_RISK_BASE_CURRENCY="EUR",
        **extra_env,
    )
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5)
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    e = Env(prefix, settings_env, tmp, producer, client)
    try:
        yield e
    finally:
        for w in e.workers:
            w.stop()
        producer.close()
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        # Throwaway topics: a broker keeping every run's would restart slowly. Cleanup
        # only: a failure is printed, the test's verdict is already in.
        drop_run_topics(BOOTSTRAP, prefix, lambda text: print(text, file=sys.stderr))


@pytest.fixture
def env(services: None, tmp_path: Path) -> Iterator[Env]:
    with deployment_env(tmp_path, STREAM_RISK_FX_RATES='{"USD": 0.9}') as e:
        yield e


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
