"""The API as a service of the worker: started after table recovery, stopped with it."""

from __future__ import annotations

from typing import Any

from mode import Service

from stream_risk.api.server import ApiServer


class ApiService(Service):  # type: ignore[misc]  # mode ships no type information
    """Runs an :class:`ApiServer` for as long as the Faust worker runs."""

    def __init__(self, server: ApiServer, **kwargs: Any) -> None:
        self.server = server
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        await self.server.start()

    async def on_stop(self) -> None:
        await self.server.stop()
