"""The peer baselines of ``stream-risk bench``, each run as its own process.

``python -m stream_risk.tools.bench_engines ENGINE BOOTSTRAP GROUP OUTPUT ORDERS TOPIC...``
consumes ``TOPIC...`` (``ORDERS`` is the one of orders) as consumer group ``GROUP``
from the earliest offset and keeps running until killed; ``bench`` measures it from
its ready line until the group has committed every input record. Engines:

``faust-decode``
    a bare faust-streaming agent that only decodes every message (JSON);
``quix-job``
    the minimal stateful job in Quix Streams: per customer, the count and sum of
    order amounts in state, and a warning to ``OUTPUT`` for every order while the
    sum is above :data:`THRESHOLD`.

Quix Streams is an optional dependency (``pip install 'stream-risk[bench]'``).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

#: Sum of a customer's order amounts above which the minimal job warns.
THRESHOLD = 50_000.0
#: What an engine prints (with the wall clock) once it processes records.
READY = "bench-engine ready at"
#: How often the baselines commit, as the worker does.
COMMIT_INTERVAL = 1.0


class MissingBaseline(ImportError):
    """A baseline engine's library is not installed."""


def ready_line() -> str:
    """The line an engine prints when it starts processing."""
    return f"{READY} {time.time():.3f}"


def faust_decode(bootstrap: str, group: str, topics: list[str]) -> None:
    """A bare Faust agent over ``topics`` that decodes each message and nothing else."""
    import faust

    app = faust.App(
        group,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=COMMIT_INTERVAL,
        topic_disable_leader=True,
    )
    source = app.topic(
        *topics, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )

    @app.agent(source)
    async def decode(stream: Any) -> None:
        async for value in stream:
            json.loads(value)

    # Faust logs "Worker]: Ready" once its partitions are assigned: that is the ready line.
    worker = faust.Worker(app, loglevel="INFO", quiet=True)
    worker.execute_from_commandline()


def quix_job(bootstrap: str, group: str, topics: list[str], output: str, orders: str) -> None:
    """The minimal stateful job in Quix Streams over ``topics``; warnings go to ``output``."""
    try:
        from quixstreams import Application
    except ImportError as exc:
        raise MissingBaseline(
            "the Quix Streams baseline needs quixstreams: pip install 'stream-risk[bench]'"
        ) from exc
    import tempfile

    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        commit_interval=COMMIT_INTERVAL,
        state_dir=tempfile.mkdtemp(prefix="bench-quix-"),
        loglevel="WARNING",
    )
    warnings = app.topic(output, value_serializer="json")
    started = [False]

    def announce(value: Any) -> Any:
        if not started[0]:
            started[0] = True
            print(ready_line(), flush=True)
        return value

    def add_order(value: dict[str, Any], state: Any) -> dict[str, Any] | None:
        count = state.get("count", 0) + 1
        total = state.get("sum", 0.0) + float(value["amount"])
        state.set("count", count)
        state.set("sum", total)
        if total > THRESHOLD:
            return {"customer_id": value["customer_id"], "orders": count, "sum": total}
        return None

    for name in topics:
        sdf = app.dataframe(app.topic(name, value_deserializer="json")).update(announce)
        if name == orders:
            sdf = sdf.apply(add_order, stateful=True).filter(lambda w: w is not None)
            sdf.to_topic(warnings)
    app.run()


def main(argv: list[str]) -> int:
    engine, bootstrap, group, output, orders, *topics = argv
    if engine == "faust-decode":
        faust_decode(bootstrap, group, topics)
    elif engine == "quix-job":
        try:
            quix_job(bootstrap, group, topics, output, orders)
        except MissingBaseline as exc:
            print(f"bench-engine: {exc}", file=sys.stderr, flush=True)
            return 3
    else:
        print(f"bench-engine: unknown engine {engine!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
