"""Verbs that drive services: worker, topics, simulate, demo."""

from __future__ import annotations

import argparse
import logging
import sys
from types import ModuleType


def cmd_worker(args: argparse.Namespace) -> int:
    from faust.worker import Worker

    from stream_risk.agents import build
    from stream_risk.config import load_settings
    from stream_risk.kafka_admin import KafkaUnavailable, ensure_topics
    from stream_risk.logs import limit_repeats, worker_logging_config

    settings = load_settings()
    if args.partitions:
        settings.partitions = args.partitions
    try:
        created = ensure_topics(settings)
    except (KafkaUnavailable, ValueError) as exc:
        print(f"stream-risk worker: {exc}", file=sys.stderr)
        return 1
    if created:
        print(f"stream-risk worker: created topics {', '.join(created)}", file=sys.stderr)
    topology = build(settings)
    level = args.log_level or settings.log_level
    logging_config = worker_logging_config(settings.log_format, level)

    class BoundedLogWorker(Worker):  # type: ignore[misc]
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            # A broker outage makes the clients retry in a loop: a few lines per kind
            # and interval, with the count of the ones left out.
            limit_repeats(logger)

    worker = BoundedLogWorker(
        topology.app, loglevel=level, quiet=True, logging_config=logging_config
    )
    worker.execute_from_commandline()
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from stream_risk.config import load_settings
    from stream_risk.kafka_admin import KafkaUnavailable, ensure_topics

    settings = load_settings()
    try:
        created = ensure_topics(settings)
    except (KafkaUnavailable, ValueError) as exc:
        print(f"stream-risk topics: {exc}", file=sys.stderr)
        return 1
    for name in created:
        print(f"created {name}")
    print(
        f"{len(created)} topics created; inputs: "
        + ", ".join(f"{k}={v}" for k, v in settings.input_topics().items())
    )
    return 0


def add_module_verb(
    verbs: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    module: ModuleType,
    help_text: str,
) -> None:
    """A verb implemented by a module with ``configure_parser(p)`` and ``run(args)``;
    its docstring is the verb's description."""
    p = verbs.add_parser(
        name,
        help=help_text,
        description=module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.configure_parser(p)
    p.set_defaults(func=module.run)


def register(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = verbs.add_parser(
        "worker",
        help="run a streaming worker (Faust) against Kafka",
        description=(
            "Consume the input topics, keep per-customer state in a changelog-backed table, "
            "and publish warnings, profiles and dead letters; also deliver them to Redis. "
            "Settings come from STREAM_RISK_* variables (STREAM_RISK_KAFKA_BOOTSTRAP, "
            "STREAM_RISK_REDIS_URL, STREAM_RISK_PARTITIONS, ...). Start several workers "
            "with the same STREAM_RISK_APP_ID to share the partitions."
        ),
    )
    p.add_argument("--partitions", type=int, help="override STREAM_RISK_PARTITIONS")
    p.add_argument("-l", "--log-level", help="log level (default: STREAM_RISK_LOG_LEVEL or info)")
    p.set_defaults(func=cmd_worker)

    p = verbs.add_parser(
        "topics",
        help="create the engine's topics with the configured partition count",
        description="Create every input and output topic that does not exist yet.",
    )
    p.set_defaults(func=cmd_topics)

    from stream_risk.tools import bench, bench_restart, chaos, demo, simulate

    add_module_verb(
        verbs,
        "demo",
        demo,
        "run Kafka, Redis, a worker and the simulator on this machine; print warnings",
    )
    add_module_verb(
        verbs,
        "simulate",
        simulate,
        "produce realistic order/invoice/payment traffic to Kafka (or a file)",
    )
    add_module_verb(
        verbs, "bench", bench, "measure worker throughput against a raw aiokafka ceiling"
    )
    add_module_verb(
        verbs,
        "bench-restart",
        bench_restart,
        "measure restart-to-processing after kill -9 with the memory and RocksDB stores",
    )
    add_module_verb(
        verbs,
        "chaos",
        chaos,
        "kill workers, stop the broker and Redis, send poison; grade against replay",
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
