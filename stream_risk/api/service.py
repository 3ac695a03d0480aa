"""The API as a service of the worker: started after table recovery, stopped with it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mode import Service

from stream_risk.api.server import ApiDeps, ApiServer
from stream_risk.config import Settings
from stream_risk.metrics import WorkerMetrics


class ApiService(Service):  # type: ignore[misc]  # mode ships no type information
    """Runs an :class:`ApiServer` for as long as the Faust worker runs."""

    def __init__(self, server: ApiServer, **kwargs: Any) -> None:
        self.server = server
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        await self.server.start()

    async def on_stop(self) -> None:
        await self.server.stop()


def latest_event_time(watermarks: Mapping[int, float]) -> datetime | None:
    """The furthest event time among a worker's partitions (``None`` before any event).

    >>> latest_event_time({0: 86_400.0, 1: 0.0})
    datetime.datetime(1970, 1, 2, 0, 0, tzinfo=datetime.timezone.utc)
    >>> latest_event_time({}) is None
    True
    """
    latest = max(watermarks.values(), default=None)
    return None if latest is None else datetime.fromtimestamp(latest, UTC)


def serve_api(
    app: Any,
    *,
    settings: Settings,
    metrics: WorkerMetrics,
    watermarks: Mapping[int, float],
) -> ApiServer:
    """Run the API inside the Faust worker ``app``, producing through its producer.

    ``watermarks`` is the monitor's live map of event time per partition; the
    API's stream clock reads it.
    """

    async def produce(topic: str, key: bytes, value: bytes) -> Any:
        # The worker's own producer: one connection, flushed before every commit.
        return await app.producer.send_and_wait(
            topic=topic, key=key, value=value, partition=None, timestamp=None, headers=None
        )

    deps = ApiDeps(settings, metrics, produce, stream_time=lambda: latest_event_time(watermarks))
    server = ApiServer(deps, settings.web_host, settings.web_port)
    app.web_server(ApiService(server))
    return server
